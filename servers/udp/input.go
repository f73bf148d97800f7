package udp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// A reason is why Input refused a segment; Drops counts each.
type reason int

const (
	reasonShort       reason = iota // shorter than a header
	reasonBadLength                 // length field below 8 or past the segment
	reasonBadChecksum               // checksum does not verify
	reasonBadAddress                // source or destination not an IPv4 address
	reasonQueueFull                 // the socket's queue has no room
	reasonNoSocket                  // no socket for the destination
	numReasons
)

// reasonNames are the keys of Drops, by reason.
var reasonNames = [numReasons]string{
	reasonShort:       "short",
	reasonBadLength:   "bad-length",
	reasonBadChecksum: "bad-checksum",
	reasonBadAddress:  "bad-address",
	reasonQueueFull:   "queue-full",
	reasonNoSocket:    "no-socket",
}

// A DropError reports a segment that Input refused. It unwraps to
// ErrMalformed (short, bad-length, bad-checksum), ErrInvalid (bad-address),
// ErrWouldBlock (queue-full) or ErrNoSocket (no-socket).
type DropError struct {
	Reason string // the key Drops counts it under
	Err    error  // the sentinel it unwraps to
	Detail string // what was wrong, for a log
	Socket SockID // the socket it was for (queue-full); 0 when none
}

// Error returns a one-line description of the drop.
func (e *DropError) Error() string {
	return "udp: input dropped (" + e.Reason + "): " + e.Detail + ": " + e.Err.Error()
}

// Unwrap returns the sentinel error.
func (e *DropError) Unwrap() error { return e.Err }

// drop counts a refused segment and returns its error.
func (t *Stack) drop(r reason, sentinel error, format string, args ...any) *DropError {
	t.drops[r]++
	return &DropError{Reason: reasonNames[r], Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

// Drops returns how many segments Input refused, by reason: "short",
// "bad-length", "bad-checksum", "bad-address", "queue-full" and
// "no-socket". Every key is present. The map is a copy.
func (t *Stack) Drops() map[string]uint64 {
	m := make(map[string]uint64, numReasons)
	for r, n := range t.drops {
		m[reasonNames[r]] = n
	}
	return m
}

// Input takes a UDP segment that ip received from src for dst, and queues
// its payload on the socket it is for, which Wakeups then lists.
//
// The segment is checked first: it must hold a header (else "short"), its
// length field must be at least 8 and no more than the segment (else
// "bad-length"; bytes past the length field are ignored, as Linux trims
// them), and a checksum other than 0 (none sent) must verify against the
// IPv4 pseudo-header (else "bad-checksum").
//
// The socket is, among those bound to the destination port: a connected
// socket whose peer is the sender and whose local address is dst; else an
// unconnected socket bound to dst; else an unconnected socket bound to the
// unspecified address. Among equals (SetReuseAddr) the one bound last
// wins. Each datagram goes to one socket; broadcast and multicast get no
// special treatment.
//
// Errors are *DropError values, each counted in Drops. With ErrNoSocket
// ("no-socket") the server asks ip to answer with an ICMP port
// unreachable; with ErrWouldBlock ("queue-full") the datagram was for the
// DropError's Socket, whose queue had no room, and is dropped silently. The
// segment is copied; Input keeps no reference to it.
func (t *Stack) Input(src, dst netip.Addr, segment []byte) error {
	src, dst = src.Unmap(), dst.Unmap()
	if !src.Is4() || !dst.Is4() {
		return t.drop(reasonBadAddress, ErrInvalid, "from %v to %v: not IPv4 addresses", src, dst)
	}
	if len(segment) < HeaderLen {
		return t.drop(reasonShort, ErrMalformed, "from %v: %d bytes, less than a header", src, len(segment))
	}
	if len(segment) > maxSegment {
		return t.drop(reasonBadLength, ErrMalformed, "from %v: %d bytes, more than an IPv4 packet carries", src, len(segment))
	}
	length := int(binary.BigEndian.Uint16(segment[4:]))
	if length < HeaderLen || length > len(segment) {
		return t.drop(reasonBadLength, ErrMalformed, "from %v: length field %d in a segment of %d bytes", src, length, len(segment))
	}
	segment = segment[:length]
	if cs := binary.BigEndian.Uint16(segment[6:]); cs != 0 {
		if got := Checksum(src, dst, segment); got != 0 {
			return t.drop(reasonBadChecksum, ErrMalformed, "from %v: checksum %#04x does not verify", src, cs)
		}
	}
	from := netip.AddrPortFrom(src, binary.BigEndian.Uint16(segment[0:]))
	port := binary.BigEndian.Uint16(segment[2:])
	s := t.lookup(from, dst, port)
	if s == nil {
		return t.drop(reasonNoSocket, ErrNoSocket, "from %v to %v", from, netip.AddrPortFrom(dst, port))
	}
	if !s.q.push(from, segment[HeaderLen:], t.recvQ, t.recvB) {
		err := t.drop(reasonQueueFull, ErrWouldBlock, "from %v to socket %d: %d datagrams, %d bytes queued", from, s.id, s.q.rlen, s.q.dlen)
		err.Socket = s.id
		return err
	}
	t.wake(s)
	return nil
}

// Match ranks, best last.
const (
	matchNone = iota
	matchWildcard
	matchAddr
)

// lookup returns the socket a datagram from from to dst:port goes to, or
// nil.
func (t *Stack) lookup(from netip.AddrPort, dst netip.Addr, port uint16) *socket {
	list := t.ports[port]
	var best *socket
	rank := matchNone
	for i := len(list) - 1; i >= 0; i-- { // newest first, so it wins ties
		s := list[i]
		r := matchNone
		switch {
		case s.remote.IsValid():
			if s.remote == from && s.source == dst {
				return s
			}
		case s.local == dst:
			r = matchAddr
		case s.local.IsUnspecified():
			r = matchWildcard
		}
		if r > rank {
			best, rank = s, r
		}
	}
	return best
}

// Package udp keeps the UDP sockets (RFC 768) of one host: binding,
// connecting, sending and receiving datagrams, as the udp server of a
// multiserver network stack does.
//
// The package is pure protocol logic. It does no I/O, starts no
// goroutines and reads no clock: the udp server feeds a Stack calls from
// the socket library (Open, Bind, SendTo, RecvFrom, ...) and segments from
// ip (Input), and after every call drains the rest, in the shape every
// engine (ip, tcp, udp) has:
//
//   - Out: the datagrams for ip, oldest first;
//   - Wakeups: the sockets whose readiness changed (a datagram queued, an
//     ICMP error, a shutdown), for the server to retry waiting calls;
//   - Deadline: when Tick must next run (never: UDP keeps no timers).
//
// Given the same calls, a Stack always answers the same. A Stack is not
// safe for concurrent use: one server loop owns it.
//
// Only IPv4 is supported. See docs/UDP.md.
package udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/newtsim/newtsim/servers/proto"
)

// Errors. Each is distinct so that the socket library can map it to an
// errno; the errno each stands for is given beside it. Returned errors wrap
// them with context: test with errors.Is.
var (
	ErrAddrInUse    = errors.New("udp: address already in use")        // EADDRINUSE
	ErrAddrNotAvail = errors.New("udp: address not available")         // EADDRNOTAVAIL
	ErrWouldBlock   = errors.New("udp: operation would block")         // EAGAIN
	ErrNotBound     = errors.New("udp: socket not bound")              // EINVAL
	ErrNotConnected = errors.New("udp: socket not connected")          // ENOTCONN
	ErrConnRefused  = errors.New("udp: connection refused")            // ECONNREFUSED
	ErrNetUnreach   = errors.New("udp: network unreachable")           // ENETUNREACH
	ErrHostUnreach  = errors.New("udp: no route to host")              // EHOSTUNREACH
	ErrProtoUnreach = errors.New("udp: protocol unreachable")          // ENOPROTOOPT
	ErrHostDown     = errors.New("udp: host is down")                  // EHOSTDOWN
	ErrNoNet        = errors.New("udp: machine is not on the network") // ENONET
	ErrShutdown     = errors.New("udp: socket shut down for sending")  // EPIPE
	ErrBadSocket    = errors.New("udp: bad socket")                    // EBADF
	ErrNoSocket     = errors.New("udp: no socket on destination port") // ICMP port unreachable
	ErrMsgSize      = errors.New("udp: message too long")              // EMSGSIZE
	ErrDestRequired = errors.New("udp: destination address required")  // EDESTADDRREQ
	ErrInvalid      = errors.New("udp: invalid argument")              // EINVAL
	ErrMalformed    = errors.New("udp: malformed segment")             // (Input only)
)

// Limits.
const (
	HeaderLen  = proto.UDPHeaderLen     // bytes of a UDP header
	MaxPayload = 65535 - 20 - HeaderLen // 65507: the most one IPv4 packet carries
)

// Defaults and internal limits.
const (
	defaultLo  = 49152      // IANA dynamic ports, RFC 6335
	defaultHi  = 65535      // the top of the port space
	defaultRQ  = 256        // datagrams a socket queues
	defaultRB  = 212992     // bytes a socket queues: Linux's rmem_default
	maxSegment = 65535 - 20 // the longest segment one IPv4 packet carries
)

// Config describes the host a Stack serves. Zero fields take their
// defaults.
type Config struct {
	// Addrs are the host's IPv4 addresses. 127.0.0.0/8 is always local.
	// The first address outside it is the source of datagrams sent by a
	// socket bound to the unspecified address to a destination that is
	// not local.
	Addrs []netip.Addr
	// EphemeralLo and EphemeralHi bound the ports Bind chooses for port 0
	// (default 49152-65535, RFC 6335). 0 means the default for that end.
	EphemeralLo, EphemeralHi uint16
	// RecvQueue is the most datagrams a socket queues (default 256).
	RecvQueue int
	// RecvBytes is the most payload bytes a socket queues (default
	// 212992, Linux's rmem_default). A datagram that would take the queue
	// past either bound is dropped.
	RecvBytes int
}

// Validate reports what is wrong with c: an address that is not IPv4, an
// inverted ephemeral range, or a negative bound. New repairs such a Config
// rather than fail; a server reading its Config from flags calls Validate
// first.
func (c Config) Validate() error {
	for _, a := range c.Addrs {
		if !a.Unmap().Is4() || a.Unmap().IsUnspecified() {
			return fmt.Errorf("udp: config: address %v is not an IPv4 unicast address: %w", a, ErrInvalid)
		}
	}
	lo, hi := c.ephemeral()
	if lo > hi {
		return fmt.Errorf("udp: config: ephemeral range %d-%d is inverted: %w", lo, hi, ErrInvalid)
	}
	if c.RecvQueue < 0 || c.RecvBytes < 0 {
		return fmt.Errorf("udp: config: negative receive bound (%d datagrams, %d bytes): %w", c.RecvQueue, c.RecvBytes, ErrInvalid)
	}
	return nil
}

// ephemeral returns the ephemeral range with defaults applied.
func (c Config) ephemeral() (lo, hi uint16) {
	lo, hi = c.EphemeralLo, c.EphemeralHi
	if lo == 0 {
		lo = defaultLo
	}
	if hi == 0 {
		hi = defaultHi
	}
	return lo, hi
}

// SockID names a socket of a Stack. IDs start at 1; 0 is never a socket.
type SockID int32

// A Datagram is what a Stack hands ip (from Out): a UDP segment and the
// addresses of the IPv4 packet that carries it.
type Datagram struct {
	Src, Dst netip.Addr
	Segment  []byte // UDP header and payload, checksum filled in
}

// Stack holds the UDP sockets of one host.
type Stack struct {
	addrs   []netip.Addr // the host's addresses, IPv4, in Config order, no duplicates
	primary netip.Addr   // the first of them outside 127/8; invalid if none
	lo, hi  uint16       // ephemeral range
	recvQ   int
	recvB   int

	socks  map[SockID]*socket
	ports  map[uint16][]*socket // bound sockets by local port, in bind order
	nextID SockID
	nextEp uint16 // the ephemeral port to try next
	drops  [numReasons]uint64

	out   []Datagram // for ip, until Out
	wakes []SockID   // sockets to wake, until Wakeups
}

// socket is one UDP socket.
type socket struct {
	id     SockID
	reuse  bool           // SO_REUSEADDR
	bound  bool           // has a local port
	local  netip.Addr     // bound address; unspecified for any
	port   uint16         // bound port
	remote netip.AddrPort // the peer, when connected
	source netip.Addr     // when connected: the local address datagrams go from and must come to
	q      queue
	err    error // an asynchronous error (ICMP) for the next receive
	shutRD bool  // shut down for receiving: an empty queue reads as end of file
	shutWR bool  // shut down for sending
	woken  bool  // listed in the Stack's wakes
}

// New returns a Stack for the host c describes. New does not fail:
// addresses that are not IPv4 are ignored, an inverted ephemeral range is
// swapped, and negative bounds take their defaults (Validate reports these).
func New(c Config) *Stack {
	t := &Stack{
		recvQ: c.RecvQueue,
		recvB: c.RecvBytes,
		socks: make(map[SockID]*socket),
		ports: make(map[uint16][]*socket),
	}
	for _, a := range c.Addrs {
		a = a.Unmap()
		if !a.Is4() || a.IsUnspecified() || t.isLocal(a) {
			continue
		}
		t.addrs = append(t.addrs, a)
		if !t.primary.IsValid() && !a.IsLoopback() {
			t.primary = a
		}
	}
	t.lo, t.hi = c.ephemeral()
	if t.lo > t.hi {
		t.lo, t.hi = t.hi, t.lo
	}
	t.nextEp = t.lo
	if t.recvQ <= 0 {
		t.recvQ = defaultRQ
	}
	if t.recvB <= 0 {
		t.recvB = defaultRB
	}
	return t
}

// isLocal reports whether a is one of the host's addresses.
func (t *Stack) isLocal(a netip.Addr) bool {
	if a.Is4() && a.IsLoopback() {
		return true
	}
	for _, b := range t.addrs {
		if a == b {
			return true
		}
	}
	return false
}

// Open creates an unbound socket and returns its ID.
func (t *Stack) Open() SockID {
	for {
		t.nextID++
		if t.nextID <= 0 { // wrapped past the largest int32
			t.nextID = 1
		}
		if _, used := t.socks[t.nextID]; !used {
			break
		}
	}
	t.socks[t.nextID] = &socket{id: t.nextID}
	return t.nextID
}

// sock returns the socket id names.
func (t *Stack) sock(op string, id SockID) (*socket, error) {
	s, ok := t.socks[id]
	if !ok {
		return nil, fmt.Errorf("udp: %s: socket %d: %w", op, id, ErrBadSocket)
	}
	return s, nil
}

// Sockets returns the number of open sockets.
func (t *Stack) Sockets() int { return len(t.socks) }

// SetReuseAddr sets or clears the socket's SO_REUSEADDR flag. Two sockets
// may bind the same port on overlapping addresses when both have it set
// (when the second binds); a datagram that both would take then goes to
// the one bound last.
func (t *Stack) SetReuseAddr(id SockID, on bool) error {
	s, err := t.sock("set reuseaddr", id)
	if err != nil {
		return err
	}
	s.reuse = on
	return nil
}

// Bind gives the socket a local address and port. An unspecified address
// binds every local address; another must be one of the host's
// (ErrAddrNotAvail). Port 0 takes the next free ephemeral port, counting
// up from where the last one was found and wrapping, so the choice depends
// only on the calls made; ErrAddrInUse when none is free. A specific port
// already bound on an overlapping address (the same one, or either
// unspecified) gives ErrAddrInUse unless both sockets set SetReuseAddr. A
// socket binds once (ErrInvalid after).
func (t *Stack) Bind(id SockID, local netip.AddrPort) error {
	s, err := t.sock("bind", id)
	if err != nil {
		return err
	}
	if s.bound {
		return fmt.Errorf("udp: bind socket %d to %v: already bound to %v: %w", id, local, s.localAddrPort(), ErrInvalid)
	}
	addr := local.Addr().Unmap()
	if !local.Addr().IsValid() {
		addr = netip.IPv4Unspecified()
	}
	if !addr.Is4() {
		return fmt.Errorf("udp: bind socket %d to %v: not an IPv4 address: %w", id, local, ErrInvalid)
	}
	if !addr.IsUnspecified() && !t.isLocal(addr) {
		return fmt.Errorf("udp: bind socket %d to %v: not a local address: %w", id, local, ErrAddrNotAvail)
	}
	port := local.Port()
	if port == 0 {
		if port, err = t.ephemeralPort(addr); err != nil {
			return fmt.Errorf("udp: bind socket %d to %v: %w", id, local, err)
		}
	} else if c := t.conflict(addr, port, s.reuse); c != nil {
		return fmt.Errorf("udp: bind socket %d to %v: socket %d holds %v: %w", id, local, c.id, c.localAddrPort(), ErrAddrInUse)
	}
	s.bound, s.local, s.port = true, addr, port
	t.ports[port] = append(t.ports[port], s)
	return nil
}

// conflict returns a socket that keeps addr:port from being bound, or nil.
func (t *Stack) conflict(addr netip.Addr, port uint16, reuse bool) *socket {
	for _, o := range t.ports[port] {
		if overlap(o.local, addr) && !(reuse && o.reuse) {
			return o
		}
	}
	return nil
}

// overlap reports whether two bound addresses share a local address.
func overlap(a, b netip.Addr) bool {
	return a == b || a.IsUnspecified() || b.IsUnspecified()
}

// ephemeralPort returns the next ephemeral port no socket holds on an
// address overlapping addr. SO_REUSEADDR does not let two sockets share
// an ephemeral port.
func (t *Stack) ephemeralPort(addr netip.Addr) (uint16, error) {
	n := int(t.hi) - int(t.lo) + 1
	for range n {
		p := t.nextEp
		if t.nextEp == t.hi {
			t.nextEp = t.lo
		} else {
			t.nextEp++
		}
		if t.conflict(addr, p, false) == nil {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free ephemeral port in %d-%d: %w", t.lo, t.hi, ErrAddrInUse)
}

// autobind binds an unbound socket to an ephemeral port on every address.
func (t *Stack) autobind(op string, s *socket) error {
	if s.bound {
		return nil
	}
	p, err := t.ephemeralPort(netip.IPv4Unspecified())
	if err != nil {
		return fmt.Errorf("udp: %s: socket %d: %w", op, s.id, err)
	}
	s.bound, s.local, s.port = true, netip.IPv4Unspecified(), p
	t.ports[p] = append(t.ports[p], s)
	return nil
}

// checkDest validates a destination given to Connect or SendTo.
func checkDest(op string, id SockID, to netip.AddrPort) (netip.AddrPort, error) {
	a := to.Addr().Unmap()
	switch {
	case !a.Is4():
		return to, fmt.Errorf("udp: %s socket %d to %v: not an IPv4 address: %w", op, id, to, ErrInvalid)
	case a.IsUnspecified():
		return to, fmt.Errorf("udp: %s socket %d to %v: unspecified destination: %w", op, id, to, ErrInvalid)
	case to.Port() == 0:
		return to, fmt.Errorf("udp: %s socket %d to %v: port 0: %w", op, id, to, ErrInvalid)
	}
	return netip.AddrPortFrom(a, to.Port()), nil
}

// sourceFor returns the address a datagram from s to dst leaves from: the
// one fixed by Connect, else the one route picks.
func (t *Stack) sourceFor(s *socket, dst netip.Addr) (netip.Addr, error) {
	if s.source.IsValid() {
		return s.source, nil
	}
	return t.route(s, dst)
}

// route picks the source address for a datagram from s to dst: the address
// s is bound to; else for a local destination that address itself
// (127.0.0.1 for all of 127/8); else the host's primary address. This
// stands in for a routing table: the host has one interface.
func (t *Stack) route(s *socket, dst netip.Addr) (netip.Addr, error) {
	switch {
	case s.bound && !s.local.IsUnspecified():
		return s.local, nil
	case dst.IsLoopback():
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	case t.isLocal(dst):
		return dst, nil
	case t.primary.IsValid():
		return t.primary, nil
	}
	return netip.Addr{}, fmt.Errorf("no local address to send to %v from: %w", dst, ErrAddrNotAvail)
}

// Connect sets the socket's peer: from then on it accepts datagrams only
// from remote, addressed to its local address (the bound one; for a socket
// bound to any address, the one its datagrams to remote leave from, which
// Connect fixes as Linux does), and SendTo needs no address. An unbound
// socket is first bound to an ephemeral port. Connect again to change
// peers; Connect with the zero AddrPort dissolves the association (connect
// with AF_UNSPEC), leaving the socket bound. Datagrams already queued stay
// queued. A failed Connect leaves the socket as it was.
func (t *Stack) Connect(id SockID, remote netip.AddrPort) error {
	s, err := t.sock("connect", id)
	if err != nil {
		return err
	}
	if !remote.IsValid() {
		s.remote, s.source = netip.AddrPort{}, netip.Addr{}
		return nil
	}
	remote, err = checkDest("connect", id, remote)
	if err != nil {
		return err
	}
	src, err := t.route(s, remote.Addr()) // chosen afresh for each peer
	if err != nil {
		return fmt.Errorf("udp: connect socket %d to %v: %w", id, remote, err)
	}
	if err := t.autobind("connect", s); err != nil {
		return err
	}
	s.remote, s.source = remote, src
	return nil
}

// SendTo builds a datagram carrying payload from the socket to to, or to
// the connected peer when to is the zero AddrPort (ErrDestRequired when
// there is none), and queues it for Out. A connected socket may still send
// elsewhere by naming an address. An unbound socket is first bound to an
// ephemeral port. The payload is copied; the segment Out returns belongs to
// the caller. Payloads over MaxPayload give ErrMsgSize.
func (t *Stack) SendTo(id SockID, payload []byte, to netip.AddrPort) error {
	s, err := t.sock("send", id)
	if err != nil {
		return err
	}
	if s.shutWR {
		return fmt.Errorf("udp: send on socket %d: %w", id, ErrShutdown)
	}
	if len(payload) > MaxPayload {
		return fmt.Errorf("udp: send on socket %d: %d bytes, more than %d: %w", id, len(payload), MaxPayload, ErrMsgSize)
	}
	if !to.IsValid() {
		if !s.remote.IsValid() {
			return fmt.Errorf("udp: send on socket %d: no address and not connected: %w", id, ErrDestRequired)
		}
		to = s.remote
	} else if to, err = checkDest("send on", id, to); err != nil {
		return err
	}
	src, err := t.sourceFor(s, to.Addr())
	if err != nil {
		return fmt.Errorf("udp: send on socket %d to %v: %w", id, to, err)
	}
	if err := t.autobind("send", s); err != nil {
		return err
	}
	seg := make([]byte, HeaderLen+len(payload))
	binary.BigEndian.PutUint16(seg[0:], s.port)
	binary.BigEndian.PutUint16(seg[2:], to.Port())
	binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	copy(seg[HeaderLen:], payload)
	cs := Checksum(src, to.Addr(), seg)
	if cs == 0 {
		cs = 0xffff // RFC 768: a computed 0 is sent as all ones
	}
	binary.BigEndian.PutUint16(seg[6:], cs)
	t.out = append(t.out, Datagram{Src: src, Dst: to.Addr(), Segment: seg})
	return nil
}

// RecvFrom takes the socket's oldest datagram, copies its payload into buf
// and returns the bytes copied and the sender. A payload longer than buf
// is truncated: the rest is discarded and truncated is true (as Linux does
// without MSG_TRUNC). ErrWouldBlock when nothing is queued, bound or not.
func (t *Stack) RecvFrom(id SockID, buf []byte) (n int, from netip.AddrPort, truncated bool, err error) {
	s, err := t.sock("receive", id)
	if err != nil {
		return 0, netip.AddrPort{}, false, err
	}
	if s.err != nil {
		err, s.err = s.err, nil
		return 0, netip.AddrPort{}, false, fmt.Errorf("udp: receive on socket %d: %w", id, err)
	}
	n, from, truncated, ok := s.q.pop(buf)
	if !ok {
		if s.shutRD {
			return 0, netip.AddrPort{}, false, nil // end of file, as Linux reads it
		}
		return 0, netip.AddrPort{}, false, fmt.Errorf("udp: receive on socket %d: queue empty: %w", id, ErrWouldBlock)
	}
	return n, from, truncated, nil
}

// Shutdown shuts a connected socket down for receiving (its empty queue
// then reads as end of file), sending (sends fail with ErrShutdown), or
// both; ErrNotConnected for a socket with no peer, as Linux answers.
func (t *Stack) Shutdown(id SockID, read, write bool) error {
	s, err := t.sock("shutdown", id)
	if err != nil {
		return err
	}
	if !s.remote.IsValid() {
		return fmt.Errorf("udp: shutdown of socket %d: %w", id, ErrNotConnected)
	}
	if read && !s.shutRD {
		s.shutRD = true
		t.wake(s) // waiting receives read end of file now
	}
	s.shutWR = s.shutWR || write
	return nil
}

// TakeError returns and clears the socket's pending asynchronous error
// (getsockopt SO_ERROR), nil when there is none.
func (t *Stack) TakeError(id SockID) (error, error) {
	s, err := t.sock("get error", id)
	if err != nil {
		return nil, err
	}
	e := s.err
	s.err = nil
	return e, nil
}

// ReuseAddr reports the socket's SO_REUSEADDR.
func (t *Stack) ReuseAddr(id SockID) (bool, error) {
	s, err := t.sock("get reuseaddr", id)
	if err != nil {
		return false, err
	}
	return s.reuse, nil
}

// unreachErrs is what each destination unreachable code gives a connected
// socket, as Linux's icmp_err_convert (net/ipv4/icmp.c) with its fatal
// flag: only a hard error reaches the socket (Linux's __udp4_lib_err
// without IP_RECVERR). The soft ones (network and host unreachable, source
// route failed, the TOS ones) are transient by RFC 1122 3.2.2.1 and nil
// here. Fragmentation needed (code 4) is ErrMsgSize, reported as Linux
// does with its default path MTU discovery (IP_PMTUDISC_WANT).
var unreachErrs = [...]error{
	2:  ErrProtoUnreach, // protocol unreachable
	3:  ErrConnRefused,  // port unreachable
	4:  ErrMsgSize,      // fragmentation needed
	6:  ErrNetUnreach,   // destination network unknown
	7:  ErrHostDown,     // destination host unknown
	8:  ErrNoNet,        // source host isolated
	9:  ErrNetUnreach,   // network administratively prohibited
	10: ErrHostUnreach,  // host administratively prohibited
	13: ErrHostUnreach,  // communication administratively prohibited (RFC 1812)
	14: ErrHostUnreach,  // host precedence violation
	15: ErrHostUnreach,  // precedence cutoff in effect
}

// ICMPError records that a datagram from local to remote drew an ICMP
// error of type typ and code code (ip has checked that it quotes one of
// the host's datagrams). As on Linux only a connected socket hears of it,
// and only of a hard error (unreachErrs): its next receive fails with
// the error, once, and it is woken. It reports false when no
// connected socket sent such a datagram or the error is soft (a network
// or host unreachable, a time exceeded). Among sockets that all match
// (SetReuseAddr) the one bound last hears of it, the one Input would give
// the peer's answer to.
func (t *Stack) ICMPError(local, remote netip.AddrPort, typ, code uint8) bool {
	if typ != proto.ICMPDestUnreach || int(code) >= len(unreachErrs) || unreachErrs[code] == nil {
		return false // soft: Linux tells only a socket with IP_RECVERR
	}
	list := t.ports[local.Port()]
	for i := len(list) - 1; i >= 0; i-- { // newest first, as lookup
		s := list[i]
		if s.remote == remote && (!s.source.IsValid() || s.source == local.Addr()) {
			s.err = unreachErrs[code]
			t.wake(s)
			return true
		}
	}
	return false
}

// Exists reports whether the socket is open.
func (t *Stack) Exists(id SockID) bool {
	_, ok := t.socks[id]
	return ok
}

// Pending reports whether the socket has an asynchronous error (ICMP) for
// its next receive.
func (t *Stack) Pending(id SockID) bool {
	s, ok := t.socks[id]
	return ok && s.err != nil
}

// Readable reports whether the socket has a datagram queued. It is false
// for a socket that does not exist.
func (t *Stack) Readable(id SockID) bool {
	s, ok := t.socks[id]
	return ok && s.q.rlen > 0
}

// NextLen returns the payload length of the socket's oldest datagram (what
// FIONREAD reports), and false when none is queued or the socket does not
// exist.
func (t *Stack) NextLen(id SockID) (int, bool) {
	s, ok := t.socks[id]
	if !ok || s.q.rlen == 0 {
		return 0, false
	}
	return s.q.peekLen(), true
}

// Queued returns the datagrams and payload bytes the socket has queued; 0,
// 0 for a socket that does not exist.
func (t *Stack) Queued(id SockID) (datagrams, bytes int) {
	s, ok := t.socks[id]
	if !ok {
		return 0, 0
	}
	return s.q.rlen, s.q.dlen
}

// LocalAddr returns the socket's local address and port: the address it
// is bound to, or once connected the one its datagrams leave from.
// ErrNotBound for a socket without a port (getsockname then reports
// 0.0.0.0:0).
func (t *Stack) LocalAddr(id SockID) (netip.AddrPort, error) {
	s, err := t.sock("local address", id)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if !s.bound {
		return netip.AddrPort{}, fmt.Errorf("udp: local address of socket %d: %w", id, ErrNotBound)
	}
	if s.source.IsValid() {
		return netip.AddrPortFrom(s.source, s.port), nil
	}
	return s.localAddrPort(), nil
}

// RemoteAddr returns the socket's peer; ErrNotConnected when it has none.
func (t *Stack) RemoteAddr(id SockID) (netip.AddrPort, error) {
	s, err := t.sock("remote address", id)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if !s.remote.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("udp: remote address of socket %d: %w", id, ErrNotConnected)
	}
	return s.remote, nil
}

// localAddrPort returns the bound address and port.
func (s *socket) localAddrPort() netip.AddrPort { return netip.AddrPortFrom(s.local, s.port) }

// Close closes the socket, discarding what it has queued, and frees its
// port. Its ID may be given to a later socket once IDs wrap around.
func (t *Stack) Close(id SockID) error {
	s, err := t.sock("close", id)
	if err != nil {
		return err
	}
	if s.bound {
		list := t.ports[s.port]
		if i := slices.Index(list, s); i >= 0 {
			list = slices.Delete(list, i, i+1)
		}
		if len(list) == 0 {
			delete(t.ports, s.port)
		} else {
			t.ports[s.port] = list
		}
	}
	s.q.reset()
	delete(t.socks, id)
	return nil
}

// wake lists the socket for Wakeups, once until they are drained.
func (t *Stack) wake(s *socket) {
	if !s.woken {
		s.woken = true
		t.wakes = append(t.wakes, s.id)
	}
}

// Out returns the datagrams made since the last call, oldest first, for
// ip. The slice is the Stack's until the next call into it; the segments
// are the caller's.
func (t *Stack) Out() []Datagram {
	out := t.out
	t.out = t.out[:0]
	return out
}

// Wakeups returns the sockets whose readiness changed since the last call,
// each once, in the order they changed: a server retries the calls
// waiting on them. The slice is the Stack's until the next call into it.
func (t *Stack) Wakeups() []SockID {
	w := t.wakes
	for _, id := range w {
		if s, ok := t.socks[id]; ok {
			s.woken = false
		}
	}
	t.wakes = t.wakes[:0]
	return w
}

// Deadline returns when Tick must next run. UDP keeps no timers: ok is
// always false. It is here so that every engine drains the same way.
func (t *Stack) Deadline() (deadline time.Time, ok bool) { return time.Time{}, false }

// Tick runs the timers due at now; UDP has none.
func (t *Stack) Tick(now time.Time) {}

package ip

import (
	"bytes"
	"encoding/binary"
	"slices"
	"time"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
)

// Fragment reassembly (RFC 791, section 3.2). Each datagram in progress
// keeps its fragments in a list sorted by offset that never overlaps:
// finding a fragment's place is a binary search, and the datagram is whole
// when the bytes held equal its length, once the last fragment has given
// that length. Overlaps are not resolved but refused, dropping the datagram
// (as RFC 5722 requires for IPv6 and Linux does for IPv4), so no byte ever
// has two candidate values.

// fragKey identifies a datagram's fragments (RFC 791).
type fragKey struct {
	src, dst uint32
	id       uint16
	proto    uint8
}

// frag is a fragment's data, at [start, end) of the datagram's payload.
type frag struct {
	start, end int
	data       []byte
}

// reasmEntry is a datagram being reassembled.
type reasmEntry struct {
	key      fragKey
	deadline time.Time // when it times out: first fragment + ReasmTimeout
	frags    []frag    // sorted by start, disjoint
	hdr      []byte    // the header of the fragment at offset 0; nil until it comes
	end      int       // the payload's length, from the last fragment; -1 until it comes
	maxEnd   int       // the largest end of a fragment held
	have     int       // payload bytes held
	charged  int       // bytes counted against ReasmMaxBytes: each fragment with its header
	listed   bool
	prev     *reasmEntry
	next     *reasmEntry
}

// rlist is a list of datagrams being reassembled, oldest first. As every
// one times out ReasmTimeout after it began, oldest is also first to time
// out.
type rlist struct{ head, tail *reasmEntry }

// pushBack appends e.
func (l *rlist) pushBack(e *reasmEntry) {
	e.listed, e.prev, e.next = true, l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
}

// remove takes e off the list.
func (l *rlist) remove(e *reasmEntry) {
	if !e.listed {
		return
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.listed, e.prev, e.next = false, nil, nil
}

// reassemble adds a fragment, an IPv4 packet with a header of hlen bytes,
// to its datagram. When that completes the datagram it returns the whole
// datagram, in the arena, and its header length; else nil.
func (s *Stack) reassemble(now time.Time, pkt []byte, hlen int) ([]byte, int) {
	fo := binary.BigEndian.Uint16(pkt[6:])
	more := fo&flagMF != 0
	start := int(fo&offsetMask) * 8
	data := pkt[hlen:]
	end := start + len(data)
	if len(data) == 0 || more && len(data)%8 != 0 {
		s.drop(dropBadFragment)
		return nil, 0
	}
	key := fragKey{
		src:   binary.BigEndian.Uint32(pkt[12:]),
		dst:   binary.BigEndian.Uint32(pkt[16:]),
		id:    binary.BigEndian.Uint16(pkt[4:]),
		proto: pkt[9],
	}
	e := s.reasm[key]
	if e != nil && !now.Before(e.deadline) { // due, and Tick has not run yet
		s.timeout(now, e)
		e = nil
	}
	hdrLen := HeaderLen // the final header's length, as far as known
	switch {
	case start == 0:
		hdrLen = hlen
	case e != nil && e.hdr != nil:
		hdrLen = len(e.hdr)
	}
	if hdrLen+max(end, s.maxEnd(e)) > maxDatagram {
		s.refuse(e, dropReasmTooBig)
		return nil, 0
	}
	i := 0
	if e != nil {
		if e.end >= 0 && (end > e.end || !more && end != e.end) || !more && e.maxEnd > end {
			s.refuse(e, dropReasmInconsistent)
			return nil, 0
		}
		var found bool
		i, found = slices.BinarySearchFunc(e.frags, start, func(f frag, start int) int { return f.start - start })
		if found && e.frags[i].end == end {
			s.drop(dropReasmDuplicate)
			return nil, 0
		}
		if found || i > 0 && e.frags[i-1].end > start || i < len(e.frags) && e.frags[i].start < end {
			s.refuse(e, dropReasmOverlap)
			return nil, 0
		}
	}
	charge := hlen + len(data)
	if charge > s.reasmMax {
		s.refuse(e, dropReasmOverflow)
		return nil, 0
	}
	for s.reasmBytes+charge > s.reasmMax { // drop the oldest datagrams to make room
		old := s.reasmList.head
		s.discard(old, dropReasmOverflow)
		if old == e {
			return nil, 0 // this fragment's datagram was the oldest
		}
	}
	if e == nil {
		e = &reasmEntry{key: key, deadline: now.Add(s.reasmTO), end: -1}
		s.reasm[key] = e
		s.reasmList.pushBack(e)
	}
	e.frags = slices.Insert(e.frags, i, frag{start: start, end: end, data: bytes.Clone(data)})
	e.have += len(data)
	e.maxEnd = max(e.maxEnd, end)
	e.charged += charge
	s.reasmBytes += charge
	if !more {
		e.end = end
	}
	if start == 0 {
		e.hdr = bytes.Clone(pkt[:hlen])
	}
	s.stats.FragmentsReceived++
	if e.hdr == nil || e.end < 0 || e.have != e.end {
		return nil, 0
	}
	// Whole: the fragments are disjoint and within [0, end), and cover it.
	hl := len(e.hdr)
	out := s.arena.alloc(hl + e.end)
	copy(out, e.hdr)
	for _, f := range e.frags {
		copy(out[hl+f.start:], f.data)
	}
	binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
	binary.BigEndian.PutUint16(out[6:], binary.BigEndian.Uint16(out[6:])&flagDF)
	out[10], out[11] = 0, 0
	binary.BigEndian.PutUint16(out[10:], checksum.Of(out[:hl]))
	s.forget(e)
	s.stats.Reassembled++
	return out, hl
}

// maxEnd returns the largest end of e's fragments; 0 for no entry.
func (s *Stack) maxEnd(e *reasmEntry) int {
	if e == nil {
		return 0
	}
	return e.maxEnd
}

// refuse drops a fragment for reason r: with its datagram, e, if there is
// one, else alone.
func (s *Stack) refuse(e *reasmEntry, r reason) {
	if e == nil {
		s.drop(r)
		return
	}
	s.discard(e, r)
}

// discard drops datagram e, counting it once under r.
func (s *Stack) discard(e *reasmEntry, r reason) {
	s.forget(e)
	s.drop(r)
}

// forget removes e and releases what it held.
func (s *Stack) forget(e *reasmEntry) {
	delete(s.reasm, e.key)
	s.reasmList.remove(e)
	s.reasmBytes -= e.charged
}

// timeout drops e, which has timed out, and sends its sender an ICMP time
// exceeded if its first fragment had come (RFC 1122 3.3.2).
func (s *Stack) timeout(now time.Time, e *reasmEntry) {
	s.discard(e, dropReasmTimeout)
	if e.hdr == nil || e.frags[0].start != 0 {
		return
	}
	var buf [maxQuote]byte
	n := copy(buf[:], e.hdr)
	n += copy(buf[n:], e.frags[0].data[:min(len(e.frags[0].data), icmpQuoteData)])
	s.icmpError(now, buf[:n], proto.ICMPTimeExceeded, codeReasmTimeout)
}

// reasmTick times out the datagrams that are due.
func (s *Stack) reasmTick(now time.Time) {
	for e := s.reasmList.head; e != nil && !now.Before(e.deadline); e = s.reasmList.head {
		s.timeout(now, e)
	}
}

package udp

import "net/netip"

// A queue holds one socket's received datagrams, oldest first: their
// payloads one after another in a ring of bytes, and a ring of records
// giving each one's sender and length. Both rings start small and double
// as needed up to the socket's bounds, so a socket that receives little
// costs little, and a busy one enqueues and dequeues without allocating.
type queue struct {
	recs  []record // ring of records; len(recs) is its capacity
	rhead int      // index of the oldest record
	rlen  int      // records queued

	data  []byte // ring of payload bytes; len(data) is its capacity
	dhead int    // index of the oldest payload's first byte
	dlen  int    // payload bytes queued
}

// A record describes one queued datagram.
type record struct {
	from netip.AddrPort
	n    int
}

// Initial ring sizes, so the first datagrams do not grow the rings at each
// step.
const (
	minRecs  = 8
	minBytes = 2048
)

// push appends a datagram unless that would take the queue past maxRecs
// datagrams or maxBytes payload bytes, and reports whether it did.
func (q *queue) push(from netip.AddrPort, payload []byte, maxRecs, maxBytes int) bool {
	n := len(payload)
	if q.rlen >= maxRecs || n > maxBytes-q.dlen {
		return false
	}
	if q.rlen == len(q.recs) {
		q.growRecs(maxRecs)
	}
	if q.dlen+n > len(q.data) {
		q.growData(q.dlen+n, maxBytes)
	}
	q.recs[(q.rhead+q.rlen)%len(q.recs)] = record{from: from, n: n}
	q.rlen++
	if n > 0 {
		tail := (q.dhead + q.dlen) % len(q.data)
		c := copy(q.data[tail:], payload)
		copy(q.data, payload[c:])
		q.dlen += n
	}
	return true
}

// pop removes the oldest datagram, copying as much of its payload as fits
// into buf and discarding the rest. It returns the bytes copied, the
// sender and whether the payload was longer than buf; ok is false when the
// queue is empty.
func (q *queue) pop(buf []byte) (n int, from netip.AddrPort, truncated, ok bool) {
	if q.rlen == 0 {
		return 0, netip.AddrPort{}, false, false
	}
	r := q.recs[q.rhead]
	q.recs[q.rhead] = record{}
	q.rhead = (q.rhead + 1) % len(q.recs)
	q.rlen--
	n = min(r.n, len(buf))
	if n > 0 {
		c := copy(buf[:n], q.data[q.dhead:])
		copy(buf[c:n], q.data)
	}
	if r.n > 0 {
		q.dhead = (q.dhead + r.n) % len(q.data)
		q.dlen -= r.n
	}
	if q.rlen == 0 {
		q.rhead, q.dhead = 0, 0 // keep the next datagrams contiguous
	}
	return n, r.from, r.n > len(buf), true
}

// peekLen returns the length of the oldest datagram, or -1 when the queue
// is empty.
func (q *queue) peekLen() int {
	if q.rlen == 0 {
		return -1
	}
	return q.recs[q.rhead].n
}

// growRecs doubles the record ring, to at most maxRecs.
func (q *queue) growRecs(maxRecs int) {
	c := min(max(2*len(q.recs), minRecs), maxRecs)
	recs := make([]record, c)
	for i := range q.rlen {
		recs[i] = q.recs[(q.rhead+i)%len(q.recs)]
	}
	q.recs, q.rhead = recs, 0
}

// growData doubles the byte ring until it holds need bytes, to at most
// maxBytes (need <= maxBytes), and moves the queued bytes to its start.
func (q *queue) growData(need, maxBytes int) {
	c := max(len(q.data), minBytes)
	for c < need {
		c *= 2
	}
	c = min(c, maxBytes)
	data := make([]byte, c)
	if q.dlen > 0 {
		k := copy(data[:q.dlen], q.data[q.dhead:])
		copy(data[k:q.dlen], q.data)
	}
	q.data, q.dhead = data, 0
}

// reset empties the queue and lets its memory go.
func (q *queue) reset() { *q = queue{} }

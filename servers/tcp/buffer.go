package tcp

import (
	"slices"
	"sort"
)

// ring is a byte ring buffer of fixed capacity. The send side keeps data
// from SND.UNA on; the receive side keeps readable data from its head and
// writes out-of-order data past it, at its offset from RCV.NXT. Its memory
// is taken on the first write and given back by drop, so that idle
// sockets, listeners' embryos and connections in TIME-WAIT cost nothing.
// It is taken from the Stack's spare buffers (ringMem), not made afresh:
// a connection's buffers are hundreds of kilobytes, and making them, zeroed,
// for each connection was the largest cost of a short one.
type ring struct {
	buf  []byte
	size int
	head int      // index of the first byte
	n    int      // bytes held from head
	mem  *ringMem // the Stack's buffer memory
}

// ringMem is a Stack's buffer memory: the bytes its rings hold, and the
// buffers rings gave back, kept by size for the next ring of that size.
// A spare buffer keeps the bytes of the connection that held it; a ring
// reads only what it wrote.
type ringMem struct {
	held       int // bytes of buffers rings hold
	spare      map[int][][]byte
	spareBytes int
}

// maxSpare bounds the bytes of buffers kept spare.
const maxSpare = 16 << 20

func (m *ringMem) get(size int) []byte {
	m.held += size
	if l := m.spare[size]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		m.spare[size] = l[:len(l)-1]
		m.spareBytes -= size
		return b
	}
	return make([]byte, size)
}

func (m *ringMem) put(b []byte) {
	m.held -= len(b)
	if m.spareBytes+len(b) > maxSpare {
		return
	}
	if m.spare == nil {
		m.spare = map[int][][]byte{}
	}
	m.spare[len(b)] = append(m.spare[len(b)], b)
	m.spareBytes += len(b)
}

// newRing returns a ring of size bytes whose memory s counts.
func (s *Stack) newRing(size int) ring { return ring{size: size, mem: &s.mem} }

func (r *ring) cap() int  { return r.size }
func (r *ring) free() int { return r.size - r.n }

func (r *ring) alloc() {
	if r.buf == nil {
		r.buf = r.mem.get(r.size)
	}
}

// held returns the memory the ring holds.
func (r *ring) held() int { return len(r.buf) }

// drop gives the memory back when nothing is held.
func (r *ring) drop() {
	if r.n == 0 {
		r.release()
	}
}

// release gives the memory back, with whatever it holds.
func (r *ring) release() {
	if r.buf != nil {
		r.mem.put(r.buf)
	}
	r.buf, r.head, r.n = nil, 0, 0
}

// writeAt copies b to offset off from the head (off+len(b) <= cap) without
// changing n.
func (r *ring) writeAt(off int, b []byte) {
	if len(b) == 0 {
		return
	}
	r.alloc()
	i := (r.head + off) % len(r.buf)
	k := copy(r.buf[i:], b)
	copy(r.buf, b[k:])
}

// readAt copies bytes from offset off into b.
func (r *ring) readAt(off int, b []byte) {
	if len(b) == 0 {
		return
	}
	i := (r.head + off) % len(r.buf)
	k := copy(b, r.buf[i:])
	copy(b[k:], r.buf[:len(b)-k])
}

// append adds b at the end; the caller checks room.
func (r *ring) append(b []byte) {
	r.writeAt(r.n, b)
	r.n += len(b)
}

// consume drops n bytes from the head.
func (r *ring) consume(n int) {
	if n == 0 {
		return
	}
	r.head = (r.head + n) % len(r.buf)
	r.n -= n
}

// resize changes the capacity, keeping the data (size >= n).
func (r *ring) resize(size int) {
	if r.buf == nil {
		r.size = size
		return
	}
	b := r.mem.get(size)
	r.readAt(0, b[:r.n])
	r.mem.put(r.buf)
	r.buf, r.head, r.size = b, 0, size
}

// maxRanges bounds the ranges a connection keeps: the out-of-order
// ranges it holds as a receiver and the peer's SACK blocks it keeps as a
// sender. Data or a block that would make one more is dropped and counted
// (Drops: ooo-limit, sack-limit), so that a peer sending a byte in every
// other position costs a bounded amount of work per segment, not work that
// grows with what it sent before. Linux bounds its out-of-order queue by
// memory (tcp_prune_ofo_queue, TCPOFODrop); FreeBSD by count
// (net.inet.tcp.reass.maxqueuelen, 100 segments).
const maxRanges = 128

// ranges is a sorted set of disjoint, non-adjacent byte ranges within one
// window: the out-of-order data held in the receive ring past RCV.NXT, or
// the sender's SACK scoreboard above SND.UNA. Lookups are binary searches.
type ranges []Block

// add inserts [s, e), merging it with the ranges it overlaps or touches.
// It reports false, and leaves the set as it was, when [s, e) touches none
// and the set holds maxRanges already.
func (rs ranges) add(s, e Seq) (ranges, bool) {
	i := rs.from(s) // the first range that could merge: it ends at s or later
	j := sort.Search(len(rs), func(k int) bool { return e.Before(rs[k].Start) })
	if i == j {
		if len(rs) >= maxRanges {
			return rs, false
		}
		return slices.Insert(rs, i, Block{s, e}), true
	}
	if rs[i].Start.Before(s) {
		s = rs[i].Start
	}
	if e.Before(rs[j-1].End) {
		e = rs[j-1].End
	}
	rs[i] = Block{s, e}
	return slices.Delete(rs, i+1, j), true
}

// from returns the index of the first range that ends at seq or later.
func (rs ranges) from(seq Seq) int {
	return sort.Search(len(rs), func(k int) bool { return !rs[k].End.Before(seq) })
}

// holding returns the range that holds seq.
func (rs ranges) holding(seq Seq) (Block, bool) {
	i := sort.Search(len(rs), func(k int) bool { return seq.Before(rs[k].End) })
	if i < len(rs) && !seq.Before(rs[i].Start) {
		return rs[i], true
	}
	return Block{}, false
}

// after returns the first range that starts after seq.
func (rs ranges) after(seq Seq) (Block, bool) {
	i := sort.Search(len(rs), func(k int) bool { return seq.Before(rs[k].Start) })
	if i < len(rs) {
		return rs[i], true
	}
	return Block{}, false
}

package tcp

// ring is a byte ring buffer of fixed capacity. The send side keeps data
// from SND.UNA on; the receive side keeps readable data from its head and
// writes out-of-order data past it, at its offset from RCV.NXT. Its memory
// is taken on the first write and given back by drop, so that idle
// sockets, listeners' embryos and connections in TIME-WAIT cost nothing.
type ring struct {
	buf  []byte
	size int
	head int // index of the first byte
	n    int // bytes held from head
}

func newRing(size int) ring { return ring{size: size} }

func (r *ring) cap() int  { return r.size }
func (r *ring) free() int { return r.size - r.n }

func (r *ring) alloc() {
	if r.buf == nil {
		r.buf = make([]byte, r.size)
	}
}

// drop gives the memory back when nothing is held.
func (r *ring) drop() {
	if r.n == 0 {
		r.buf, r.head = nil, 0
	}
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
	b := make([]byte, size)
	r.readAt(0, b[:r.n])
	r.buf, r.head, r.size = b, 0, size
}

// ranges is a sorted set of disjoint, non-adjacent byte ranges past
// RCV.NXT: the out-of-order data held in the receive ring.
type ranges []Block

// add inserts [s, e), merging.
func (rs ranges) add(s, e Seq) ranges {
	out := rs[:0:0]
	placed := false
	for _, r := range rs {
		switch {
		case r.End.Before(s):
			out = append(out, r)
		case e.Before(r.Start):
			if !placed {
				out = append(out, Block{s, e})
				placed = true
			}
			out = append(out, r)
		default: // overlapping or adjacent: merge into [s, e)
			if r.Start.Before(s) {
				s = r.Start
			}
			if e.Before(r.End) {
				e = r.End
			}
		}
	}
	if !placed {
		out = append(out, Block{s, e})
	}
	return out
}

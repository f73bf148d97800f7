package tcp

import "testing"

// TestRingBuffersReused checks that a ring's memory comes back to the
// Stack's spares when the ring gives it up and goes to the next ring of
// its size, with no allocation, and that the held count follows.
func TestRingBuffersReused(t *testing.T) {
	var m ringMem
	const size = 256 << 10
	r := ring{size: size, mem: &m}
	r.append([]byte("first"))
	if m.held != size {
		t.Fatalf("held %d, want %d", m.held, size)
	}
	first := &r.buf[0]
	r.consume(5)
	r.drop()
	if m.held != 0 || m.spareBytes != size {
		t.Fatalf("after drop: held %d spare %d, want 0 and %d", m.held, m.spareBytes, size)
	}
	r2 := ring{size: size, mem: &m}
	r2.append([]byte("second"))
	if &r2.buf[0] != first {
		t.Error("the second ring made a new buffer instead of taking the spare")
	}
	got := make([]byte, 6)
	r2.readAt(0, got)
	if string(got) != "second" {
		t.Errorf("read %q, want %q", got, "second")
	}
	r2.release()
	if a := testing.AllocsPerRun(100, func() {
		r := ring{size: size, mem: &m}
		r.append([]byte("x"))
		r.release()
	}); a != 0 {
		t.Errorf("%v allocations per ring with a spare there, want 0", a)
	}
}

// TestSpareBound checks that the spares stop growing at maxSpare.
func TestSpareBound(t *testing.T) {
	var m ringMem
	const size = 1 << 20
	var rs []ring
	for range 2 * maxSpare / size {
		r := ring{size: size, mem: &m}
		r.append([]byte("x"))
		rs = append(rs, r)
	}
	for i := range rs {
		rs[i].release()
	}
	if m.held != 0 || m.spareBytes != maxSpare {
		t.Errorf("held %d spare %d, want 0 and %d", m.held, m.spareBytes, maxSpare)
	}
}

// TestSegmentsFromArena checks that the segments of one Out have their
// own bytes, and that once taken, the next ones cost no allocation.
func TestSegmentsFromArena(t *testing.T) {
	var s Stack
	a, b := s.segBuf(100), s.segBuf(100)
	a[0], b[0] = 1, 2
	if a[0] != 1 || cap(a) != 100 {
		t.Fatal("two segments of one Out share bytes")
	}
	if al := testing.AllocsPerRun(100, func() {
		s.Out()
		s.segBuf(1500)
		s.segBuf(1500)
	}); al != 0 {
		t.Errorf("%v allocations per Out of two segments, want 0", al)
	}
}

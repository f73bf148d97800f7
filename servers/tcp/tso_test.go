package tcp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// tsoSeen is what a testNet's NIC saw of the segments it cut: how many,
// and the largest's data.
type tsoSeen struct {
	segs, pieces, largest int
}

// cut is the NIC's TCP segmentation offload, as Linux's tcp_gso_segment
// does it: a segment with a SegSize becomes segments of SegSize data bytes
// (the last shorter), each with its header, the sequence number advanced,
// PSH and FIN on the last only, the checksum made again. It checks that
// the engine tagged only what it may: data longer than SegSize.
func (n *testNet) cut(out []Segment) []Segment {
	n.t.Helper()
	var segs []Segment
	for _, seg := range out {
		if seg.SegSize == 0 {
			segs = append(segs, seg)
			continue
		}
		h, p, err := Parse(seg.Data)
		if err != nil {
			n.t.Fatalf("stack sent a malformed TSO segment: %v", err)
		}
		if len(p) <= seg.SegSize || h.Flags&(SYN|RST) != 0 {
			n.t.Fatalf("a TSO segment of %d data bytes, flags %#x, tagged %d", len(p), h.Flags, seg.SegSize)
		}
		n.tso.segs++
		n.tso.largest = max(n.tso.largest, len(p))
		hl := len(seg.Data) - len(p)
		for off := 0; off < len(p); off += seg.SegSize {
			end := min(off+seg.SegSize, len(p))
			b := append(slices.Clone(seg.Data[:hl]), p[off:end]...)
			binary.BigEndian.PutUint32(b[4:], uint32(h.Seq.Add(off)))
			if end < len(p) {
				b[13] &^= PSH | FIN
			}
			binary.BigEndian.PutUint16(b[16:], 0)
			binary.BigEndian.PutUint16(b[16:], checksumPseudo(seg.Src, seg.Dst, b))
			segs = append(segs, Segment{Src: seg.Src, Dst: seg.Dst, Data: b})
			n.tso.pieces++
		}
	}
	return segs
}

// wire records the segments that go on a testNet's wire, after the NIC,
// with the time each was sent.
func (n *testNet) wire() *[]string {
	var log []string
	n.filter = func(from *Stack, h Header, p []byte) bool {
		log = append(log, n.now.Sub(epoch).String()+" "+describe(from == n.a, h, p)+" "+string(p))
		return true
	}
	return &log
}

// TestTSOSegmentSizes: towards a peer on the link, a sender with TSOMax
// hands ip segments of several MSS, tagged with the MSS, each at most
// TSOMax, a whole number of MSS but the last; cut as a NIC cuts them,
// they are the very segments, byte for byte and at the same times, that
// the sender sends without offload.
func TestTSOSegmentSizes(t *testing.T) {
	const mss = 1460 - 12 // the timestamp option
	tests := []struct {
		name    string
		tsoMax  int
		size    int // bytes sent
		tso     bool
		largest int // the largest TSO segment's data, at most
	}{
		{"off", 0, 200 << 10, false, 0},
		{"64 KiB", MaxTSO, 512 << 10, true, MaxTSO / mss * mss},
		{"three segments and a bit", 3*mss + 100, 200 << 10, true, 3 * mss},
		{"two and a little", 2*mss + 1, 100 << 10, true, 2 * mss},
		{"below two", 2*mss - 1, 100 << 10, false, 0},
		{"a short response", MaxTSO, 11 << 10, true, 11 << 10},
		{"one segment", MaxTSO, 1000, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := pattern(tt.size, 7)
			run := func(tsoMax int) (*testNet, []string, uint64) {
				n := newNet(t, Config{}, Config{TSOMax: tsoMax})
				l := n.listen(80, 8)
				c, s := n.dial(l, 80)
				log := n.wire()
				before := n.b.Stats().SegmentsOut
				got := n.transfer(n.b, s, n.a, c, data, true, time.Minute)
				if !bytes.Equal(got, data) {
					t.Fatalf("TSOMax %d: received %d bytes, not what was sent (%d)", tsoMax, len(got), len(data))
				}
				n.runFor(time.Second)
				return n, *log, n.b.Stats().SegmentsOut - before
			}
			n, withTSO, segsOut := run(tt.tsoMax)
			_, without, _ := run(0)
			if !slices.Equal(withTSO, without) {
				for i := range min(len(withTSO), len(without)) {
					if withTSO[i] != without[i] {
						t.Fatalf("segment %d on the wire: %.120s with TSO, %.120s without", i, withTSO[i], without[i])
					}
				}
				t.Fatalf("%d segments on the wire with TSO, %d without", len(withTSO), len(without))
			}
			if got := n.tso.segs > 0; got != tt.tso {
				t.Fatalf("TSO segments sent: %d (%d pieces), want some: %v", n.tso.segs, n.tso.pieces, tt.tso)
			}
			if n.tso.largest > tt.largest || n.tso.largest > max(tt.tsoMax, 0) {
				t.Errorf("largest TSO segment %d bytes, want at most %d", n.tso.largest, tt.largest)
			}
			if segsOut != uint64(countFrom(withTSO, "B->A")) { // counted as the wire has them
				t.Errorf("SegmentsOut %d, %d segments on the wire", segsOut, countFrom(withTSO, "B->A"))
			}
			t.Logf("%d TSO segments for %d on the wire, the largest %d bytes", n.tso.segs, n.tso.pieces, n.tso.largest)
		})
	}
}

// countFrom counts the wire log's segments in direction dir.
func countFrom(log []string, dir string) int {
	k := 0
	for _, l := range log {
		if bytes.Contains([]byte(l), []byte(dir)) {
			k++
		}
	}
	return k
}

// TestTSORetransmit: segments the NIC cut and the wire lost are sent again
// as without offload: the data arrives whole, and the wire carries the
// same segments at the same times as without offload.
func TestTSORetransmit(t *testing.T) {
	tests := []struct {
		name string
		drop func(k int) bool // the k-th data segment from the server (from 0) is lost
	}{
		{"one in the middle", func(k int) bool { return k == 20 }},
		{"the first of a burst", func(k int) bool { return k == 10 }},
		{"three in a row", func(k int) bool { return k >= 30 && k < 33 }},
		{"every seventh once", func(k int) bool { return k%7 == 3 && k < 200 }},
		{"the last", func(k int) bool { return k == 362 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := pattern(512<<10, 9)
			run := func(tsoMax int) (*testNet, []string, Stats) {
				n := newNet(t, Config{}, Config{TSOMax: tsoMax})
				l := n.listen(80, 8)
				c, s := n.dial(l, 80)
				var log []string
				k := 0
				n.filter = func(from *Stack, h Header, p []byte) bool {
					log = append(log, n.now.Sub(epoch).String()+" "+describe(from == n.a, h, p))
					if from != n.b || len(p) == 0 {
						return true
					}
					k++
					return !tt.drop(k - 1)
				}
				got := n.transfer(n.b, s, n.a, c, data, true, 5*time.Minute)
				if !bytes.Equal(got, data) {
					t.Fatalf("TSOMax %d: received %d bytes, not what was sent (%d)", tsoMax, len(got), len(data))
				}
				return n, log, n.b.Stats()
			}
			n, withTSO, st := run(MaxTSO)
			_, without, st0 := run(0)
			if n.tso.segs == 0 {
				t.Fatal("no TSO segment sent")
			}
			if st.Retransmits == 0 || st.Retransmits != st0.Retransmits {
				t.Errorf("retransmits %d with TSO, %d without", st.Retransmits, st0.Retransmits)
			}
			if !slices.Equal(withTSO, without) {
				t.Errorf("%d segments on the wire with TSO, %d without, not the same", len(withTSO), len(without))
			}
		})
	}
}

// TestTSONotOverLoopback: a connection within the host sends its segments
// whole over the loopback, which takes 64 KiB: none is tagged.
func TestTSONotOverLoopback(t *testing.T) {
	s := New(Config{Addrs: []netip.Addr{addrA}, TSOMax: MaxTSO, LoopbackMTU: 1500, Secret: 1})
	now := epoch
	l := s.Open()
	if err := s.Bind(l, netip.AddrPortFrom(addrA, 80)); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(l, 8); err != nil {
		t.Fatal(err)
	}
	c := s.Open()
	if err := s.Connect(now, c, netip.AddrPortFrom(addrA, 80)); err != ErrInProgress {
		t.Fatal(err)
	}
	loop := func() int {
		segs := 0
		for out := s.Out(); len(out) > 0; out = s.Out() {
			out = slices.Clone(out)
			for i := range out {
				out[i].Data = slices.Clone(out[i].Data)
			}
			for _, seg := range out {
				if seg.SegSize != 0 {
					t.Fatalf("a segment over the loopback tagged %d", seg.SegSize)
				}
				segs++
				s.Input(now, seg.Src, seg.Dst, seg.Data)
			}
		}
		return segs
	}
	loop()
	a, _, err := s.Accept(l)
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(100<<10, 3)
	k, err := s.Send(now, a, data)
	if err != nil || k == 0 {
		t.Fatalf("send: %d, %v", k, err)
	}
	if segs := loop(); segs < k/1448 {
		t.Fatalf("%d segments for %d bytes: the loopback MTU is 1500", segs, k)
	}
}

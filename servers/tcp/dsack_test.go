package tcp

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// rel is a range relative to a sequence number: [off, end).
type rel struct{ off, end int }

func (r rel) at(base Seq) Block { return Block{base.Add(r.off), base.Add(r.end)} }

// TestDSACKSent: a segment b receives again, wholly or in part, below
// RCV.NXT or within out-of-order data it holds, is answered at once by a
// pure ACK whose first SACK block is the duplicate range, the blocks held
// after it, the one holding the duplicate first (RFC 2883 4); one whose
// timestamp fails PAWS too (Linux's tcp_send_dupack). Without SACK
// negotiated, or with NoDSACK, the ACK goes at once without one.
func TestDSACKSent(t *testing.T) {
	tests := []struct {
		name   string
		a, b   Config
		held   []rel // out-of-order data b holds first, relative to RCV.NXT
		dup    rel   // the segment that comes again
		stale  bool  // its timestamp older than TS.Recent
		want   []rel // the ACK's SACK blocks
		ack    int   // its ACK, relative to RCV.NXT before
		dsacks uint64
	}{
		{name: "old, whole", dup: rel{-1000, 0}, want: []rel{{-1000, 0}}, dsacks: 1},
		{name: "old, in part", dup: rel{-500, 500}, want: []rel{{-500, 0}}, ack: 500, dsacks: 1},
		{name: "old, stale timestamp", dup: rel{-1000, 0}, stale: true, want: []rel{{-1000, 0}}, dsacks: 1},
		{name: "old, no timestamps", a: Config{NoTimestamps: true}, b: Config{NoTimestamps: true},
			dup: rel{-1448, 0}, want: []rel{{-1448, 0}}, dsacks: 1},
		{name: "held, whole", held: []rel{{2000, 3000}}, dup: rel{2000, 3000},
			want: []rel{{2000, 3000}, {2000, 3000}}, dsacks: 1},
		{name: "held, in part", held: []rel{{2000, 3000}}, dup: rel{2500, 3500},
			want: []rel{{2500, 3000}, {2000, 3500}}, dsacks: 1},
		{name: "in order, reaching held data", held: []rel{{2000, 3000}}, dup: rel{0, 2500},
			want: []rel{{2000, 2500}}, ack: 3000, dsacks: 1},
		{name: "held, blocks beyond the option's room", held: []rel{{2000, 3000}, {4000, 5000}, {6000, 7000}, {8000, 9000}},
			dup: rel{4000, 5000}, want: []rel{{4000, 5000}, {4000, 5000}, {2000, 3000}}, dsacks: 1},
		{name: "new, out of order: SACK alone", dup: rel{2000, 3000}, want: []rel{{2000, 3000}}},
		{name: "no SACK", a: Config{NoSACK: true}, b: Config{NoSACK: true}, dup: rel{-1000, 0}},
		{name: "NoDSACK", b: Config{NoDSACK: true}, dup: rel{-1000, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, tt.a, tt.b)
			_, s := warmPair(t, n)
			x := n.b.socks[s]
			base := x.rcvNxt
			wnd := uint16(x.sndWnd >> x.sndShift)
			from := func(r rel, stale bool) {
				h := Header{Seq: Seq(uint32(base.Add(r.off).Diff(x.rcvNxt))), Flags: ACK, Window: wnd}
				if stale {
					h.Opts = Options{TS: true, TSVal: x.tsRecent - 1}
				}
				n.fromPeer(n.b, x, h, pattern(r.end-r.off, 2))
			}
			for _, r := range tt.held {
				from(r, false)
			}
			n.b.Out()
			before := n.b.Stats()
			from(tt.dup, tt.stale)
			out := n.b.Out()
			if len(out) != 1 {
				t.Fatalf("%d segments answer the duplicate, want 1 ACK at once", len(out))
			}
			h, p, err := Parse(out[0].Data)
			if err != nil || len(p) != 0 || h.Flags != ACK {
				t.Fatalf("answer %+v with %d bytes (%v), want a pure ACK", h, len(p), err)
			}
			if got := h.Ack.Diff(base); got != tt.ack {
				t.Errorf("ACK at %d, want %d", got, tt.ack)
			}
			var got []rel
			for _, b := range h.Opts.SACK {
				got = append(got, rel{b.Start.Diff(base), b.End.Diff(base)})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("SACK blocks %v, want %v", got, tt.want)
			}
			if k := n.b.Stats().DSACKsSent - before.DSACKsSent; k != tt.dsacks {
				t.Errorf("%d D-SACKs counted, want %d", k, tt.dsacks)
			}
		})
	}
}

// dsackSender makes a connection from a with 4000 bytes sent and
// acknowledged and eight segments in flight that b never receives, and
// returns a's side. Its ACKs are then made by hand (fromPeer).
func dsackSender(t *testing.T, n *testNet) (SockID, SockID, *tcb, []byte) {
	t.Helper()
	c, s := warmPair(t, n)
	x := n.a.socks[c]
	n.filter = func(from *Stack, h Header, p []byte) bool { return from != n.a || len(p) == 0 }
	data := pattern(8*x.mss, 3)
	if k, err := n.a.Send(n.now, c, data); err != nil || k != len(data) {
		t.Fatalf("send: %d %v", k, err)
	}
	n.collect()
	if x.sndMax.Diff(x.sndUna) != len(data) {
		t.Fatalf("set-up: %d bytes in flight, want %d", x.sndMax.Diff(x.sndUna), len(data))
	}
	return c, s, x, data
}

// ackWith hands a an ACK of nothing new from b, carrying blocks (relative
// to SND.UNA) and the window a has.
func ackWith(n *testNet, x *tcb, blocks []rel) {
	h := Header{Flags: ACK, Window: uint16(x.sndWnd >> x.sndShift)}
	for _, b := range blocks {
		h.Opts.SACK = append(h.Opts.SACK, b.at(x.sndUna))
	}
	n.fromPeer(n.a, x, h, nil)
}

// TestDSACKNotDuplicate: an ACK whose news is a D-SACK, below SND.UNA or
// inside the second block, is no duplicate ACK (three of them start no
// fast retransmit) and marks nothing on the scoreboard; a SACK block after
// it is still taken. Plain duplicate ACKs, the control, do count.
func TestDSACKNotDuplicate(t *testing.T) {
	const m = 1448
	tests := []struct {
		name     string
		acks     [][]rel
		dupAcks  int
		sacked   []rel
		fast     uint64
		received uint64
	}{
		{name: "plain duplicates", acks: [][]rel{nil, nil, nil}, dupAcks: 3, fast: 1},
		{name: "D-SACK below SND.UNA", acks: [][]rel{{{-m, 0}}, {{-m, 0}}, {{-2 * m, -m}}}, received: 3},
		{name: "D-SACK inside the second block",
			acks:    [][]rel{{{2 * m, 3 * m}}, {{2 * m, 3 * m}, {2 * m, 3 * m}}, {{2 * m, 3 * m}, {2 * m, 3 * m}}, {{2 * m, 2*m + 10}, {2 * m, 3 * m}}},
			dupAcks: 1, sacked: []rel{{2 * m, 3 * m}}, received: 3},
		{name: "D-SACK, then new SACK", acks: [][]rel{{{-m, 0}, {2 * m, 3 * m}}},
			dupAcks: 1, sacked: []rel{{2 * m, 3 * m}}, received: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, Config{}, Config{})
			_, _, x, _ := dsackSender(t, n)
			if x.mss != m {
				t.Fatalf("MSS %d, the table assumes %d", x.mss, m)
			}
			before := n.a.Stats()
			una := x.sndUna
			for _, blocks := range tt.acks {
				ackWith(n, x, blocks)
			}
			var sacked []rel
			for _, b := range x.sacked {
				sacked = append(sacked, rel{b.Start.Diff(una), b.End.Diff(una)})
			}
			st := n.a.Stats()
			if x.dupAcks != tt.dupAcks || !slices.Equal(sacked, tt.sacked) {
				t.Errorf("%d duplicate ACKs, scoreboard %v; want %d, %v", x.dupAcks, sacked, tt.dupAcks, tt.sacked)
			}
			if k := st.FastRetransmits - before.FastRetransmits; k != tt.fast {
				t.Errorf("%d fast retransmits, want %d", k, tt.fast)
			}
			if k := st.DSACKsReceived - before.DSACKsReceived; k != tt.received {
				t.Errorf("%d D-SACKs received, want %d", k, tt.received)
			}
		})
	}
}

// TestDSACKUndo: the first of twenty segments comes late, after the
// others have drawn three duplicate ACKs and its fast retransmit. b
// receives it twice and D-SACKs the second copy (the retransmission when
// the original comes first, the original when it comes last): every
// segment the recovery sent again was needless, and the window and
// threshold from before come back (RFC 3708; Linux's tcp_try_undo_dsack).
// A peer that sends no D-SACK, or an original that was lost, leaves the
// window cut.
func TestDSACKUndo(t *testing.T) {
	const never = -1
	tests := []struct {
		name  string
		cfg   Config // both sides
		b     Config // the receiver's own
		late  time.Duration
		undos uint64
	}{
		{name: "original before the retransmission", late: 10 * time.Microsecond, undos: 1},
		{name: "original after the retransmission", late: time.Millisecond, undos: 1},
		{name: "original after, no timestamps", cfg: Config{NoTimestamps: true}, late: time.Millisecond, undos: 1},
		{name: "peer sends no D-SACK", b: Config{NoDSACK: true}, late: 10 * time.Microsecond},
		{name: "original lost", late: never},
		{name: "no SACK", cfg: Config{NoSACK: true}, late: 10 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.cfg
			b.NoDSACK = tt.b.NoDSACK
			n := newNet(t, tt.cfg, b)
			l := n.listen(80, 8)
			c, s := n.dial(l, 80)
			warm := pattern(200<<10, 1)
			if got := n.transfer(n.a, c, n.b, s, warm, false, 10*time.Second); !bytes.Equal(got, warm) {
				t.Fatal("warm-up data corrupted")
			}
			n.runFor(time.Second)
			x := n.a.socks[c]
			before, cwnd, ssthresh := n.a.Stats(), x.cc.Cwnd(), x.cc.Ssthresh()
			first := x.sndMax
			var held []byte
			var heldH Header
			n.filter = func(from *Stack, h Header, p []byte) bool {
				if from != n.a || h.Seq != first || len(p) == 0 {
					return true
				}
				if held == nil { // the original: held back
					held, heldH = slices.Clone(p), h
					return false
				}
				if tt.late != never { // the retransmission: the original arrives too
					n.n++
					n.inflight = append(n.inflight, packet{at: n.now.Add(tt.late), seq: n.n, to: n.b,
						seg: Segment{Src: addrA, Dst: addrB, Data: segmentBytes(x.local, x.remote, heldH, held)}})
				}
				return true
			}
			want := pattern(20*x.mss, 2)
			if k, err := n.a.Send(n.now, c, want); err != nil || k != len(want) {
				t.Fatalf("send: %d, %v", k, err)
			}
			deliverAll(t, n, s, x, want, 10*time.Second)
			n.runFor(time.Second)
			st := n.a.Stats()
			if st.FastRetransmits-before.FastRetransmits != 1 || st.Retransmits-before.Retransmits != 1 || st.RTOExpiries != before.RTOExpiries {
				t.Fatalf("%d fast retransmits, %d segments sent again, %d timeouts; want 1, 1, 0",
					st.FastRetransmits-before.FastRetransmits, st.Retransmits-before.Retransmits, st.RTOExpiries-before.RTOExpiries)
			}
			if k := st.DSACKUndos - before.DSACKUndos; k != tt.undos {
				t.Errorf("%d undone by D-SACK, want %d", k, tt.undos)
			}
			restored := x.cc.Cwnd() >= cwnd && x.cc.Ssthresh() >= ssthresh
			if restored != (tt.undos > 0) {
				t.Errorf("window %d, threshold %d, before the loss %d, %d: restored %v, want %v",
					x.cc.Cwnd(), x.cc.Ssthresh(), cwnd, ssthresh, restored, tt.undos > 0)
			}
		})
	}
}

// TestHostileSACKBlocks: during a fast recovery, SACK blocks that no sane
// receiver sends (empty or reversed, longer than any window, past SND.MAX,
// far below SND.UNA, half the sequence space away, a D-SACK "inside" a
// block past SND.MAX) are ignored and counted (a D-SACK: dsack-invalid):
// nothing is marked outside what is in flight, nothing is undone, and the
// transfer completes. A valid D-SACK of data never sent again is counted,
// and undoes nothing.
func TestHostileSACKBlocks(t *testing.T) {
	const m = 1448
	tests := []struct {
		name    string
		blocks  []rel
		invalid uint64
	}{
		{"reversed D-SACK", []rel{{-10, -2000}}, 1},
		{"empty D-SACK", []rel{{-10, -10}}, 1},
		{"D-SACK longer than any window", []rel{{-(1 << 30), 0}}, 1},
		{"D-SACK past SND.MAX", []rel{{-m, 100 * m}}, 1},
		{"D-SACK far below SND.UNA", []rel{{-(1 << 30), -(1 << 30) + m}}, 1},
		{"half the sequence space away", []rel{{1 << 31, 1<<31 + m}}, 1},
		{"D-SACK inside a block past SND.MAX", []rel{{20 * m, 21 * m}, {19 * m, 22 * m}}, 1},
		{"junk after a D-SACK", []rel{{-m, 0}, {5 * m, 3 * m}, {9 * m, 1 << 31}}, 0},
		// Each pairwise test passes, modulo 2^32: its start is past
		// SND.UNA, its end before SND.MAX and after its start; yet it
		// wraps below SND.UNA. On the scoreboard beside a sane block it
		// panicked the engine (FuzzSACKBlocks found it).
		{"valid D-SACK, then a block wrapping below SND.UNA", []rel{{-m, 0}, {48, 8240}, {0x37303030, -1255133136}}, 0},
		{"valid D-SACK of data not sent again", []rel{{-m, 0}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, Config{}, Config{})
			_, s, x, data := dsackSender(t, n)
			for range 3 { // a fast retransmit: an episode D-SACKs could undo
				ackWith(n, x, nil)
			}
			if !x.inRecovery || !x.undoDSACK {
				t.Fatalf("set-up: in recovery %v, undo possible %v", x.inRecovery, x.undoDSACK)
			}
			before, drops, cwnd := n.a.Stats(), n.a.drops["dsack-invalid"], x.cc.Cwnd()
			ackWith(n, x, tt.blocks)
			st := n.a.Stats()
			if k := n.a.drops["dsack-invalid"] - drops; k != tt.invalid {
				t.Errorf("%d D-SACKs refused, want %d", k, tt.invalid)
			}
			if k := st.DSACKsReceived - before.DSACKsReceived; k != 1-tt.invalid {
				t.Errorf("%d D-SACKs taken, want %d", k, 1-tt.invalid)
			}
			if st.DSACKUndos != before.DSACKUndos || !x.inRecovery || x.cc.Cwnd() > cwnd+x.mss {
				t.Errorf("undone: %d undos, in recovery %v, window %d from %d", st.DSACKUndos-before.DSACKUndos, x.inRecovery, x.cc.Cwnd(), cwnd)
			}
			for _, b := range x.sacked {
				if !x.sndUna.Before(b.Start) || !b.Start.Before(b.End) || x.sndMax.Before(b.End) {
					t.Errorf("scoreboard holds %v, outside (%d, %d]", b, x.sndUna, x.sndMax)
				}
			}
			n.filter = nil
			deliverAll(t, n, s, x, data, time.Minute)
		})
	}
}

// TestDSACKCounting: each retransmission of an episode is counted off by
// one D-SACK that covers it, once per D-SACK (RFC 3708; Linux's
// undo_retrans): the reduction is undone with the D-SACK that counts off
// the last, and never by D-SACKs of data not sent again, or repeated.
func TestDSACKCounting(t *testing.T) {
	const m = 1000
	many := make([]rel, maxRanges+1)
	for i := range many {
		many[i] = rel{i * m, (i + 1) * m}
	}
	tests := []struct {
		name   string
		rxt    []rel // sent again, relative to SND.UNA
		dsacks []rel
		undoAt int // the D-SACK, from 1, that undoes; 0: none
	}{
		{"one retransmission, its D-SACK", []rel{{0, m}}, []rel{{0, m}}, 1},
		{"a D-SACK of part of it", []rel{{0, m}}, []rel{{100, 200}}, 1},
		{"sent again twice: two D-SACKs", []rel{{0, m}, {0, m}}, []rel{{0, m}, {0, m}}, 2},
		{"two sent again, one D-SACKed three times", []rel{{0, m}, {m, 2 * m}}, []rel{{0, m}, {0, m}, {0, m}}, 0},
		{"two sent again, one D-SACK covering both", []rel{{0, m}, {m, 2 * m}}, []rel{{0, 2 * m}}, 1},
		{"D-SACKs in the other order", []rel{{0, m}, {m, 2 * m}}, []rel{{m, 2 * m}, {0, m}}, 2},
		{"a D-SACK of data not sent again", []rel{{0, m}}, []rel{{m, 2 * m}, {-m, 0}}, 0},
		{"more ranges sent again than kept", many, many, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{Secret: 1})
			c := s.newTCB()
			c.resetConn()
			c.cc.Start(m)
			c.sackOK, c.mss, c.maxSndWnd = true, m, 1<<20
			c.sndUna, c.sndMax = 5000, 5000+300*m
			c.beginUndo()
			for _, r := range tt.rxt {
				b := r.at(c.sndUna)
				c.noteRetransmit(b.Start, b.End)
			}
			undoAt := 0
			for i, r := range tt.dsacks {
				valid, undo := c.dsackInput(r.at(c.sndUna))
				if !valid {
					t.Fatalf("D-SACK %d %v refused", i+1, r)
				}
				if undo && undoAt == 0 {
					undoAt = i + 1
				}
			}
			if undoAt != tt.undoAt {
				t.Errorf("undone at D-SACK %d, want %d", undoAt, tt.undoAt)
			}
		})
	}
}

// warmPair connects a to b, moves 4000 bytes from a to b and lets every
// ACK home, and returns the pair.
func warmPair(t *testing.T, n *testNet) (client, server SockID) {
	t.Helper()
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	if got := n.transfer(n.a, c, n.b, s, pattern(4000, 1), false, time.Second); len(got) != 4000 {
		t.Fatalf("received %d bytes of the first 4000", len(got))
	}
	n.runFor(time.Second)
	return c, s
}

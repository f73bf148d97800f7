package tcp

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// timeoutRun sets up the runs of the spurious-timeout tests: a connection
// warmed up by 200 KB from a to b (a window of many segments), then
// twenty segments from a, with fault deciding for each segment on the
// wire whether it goes (true) or is taken off (false). It runs until a's
// retransmission timer has expired, then queues ten segments more at a,
// new data for after the timeout, and returns the bytes b must receive,
// with a's counters and window from before the twenty segments.
func timeoutRun(t *testing.T, n *testNet, fault func(from *Stack, h Header, p []byte) bool) (c, s SockID, want []byte, before Stats, cwnd, ssthresh int) {
	t.Helper()
	l := n.listen(80, 8)
	c, s = n.dial(l, 80)
	warm := pattern(200<<10, 1)
	if got := n.transfer(n.a, c, n.b, s, warm, false, 10*time.Second); !bytes.Equal(got, warm) {
		t.Fatal("warm-up data corrupted")
	}
	n.runFor(time.Second)
	sc := n.a.socks[c]
	before, cwnd, ssthresh = n.a.Stats(), sc.cc.Cwnd(), sc.cc.Ssthresh()
	if cwnd < 20*sc.mss {
		t.Fatalf("window of %d bytes after the warm-up, want 20 segments at least", cwnd)
	}
	n.filter = fault
	want = pattern(30*sc.mss, 2)
	if k, err := n.a.Send(n.now, c, want[:20*sc.mss]); err != nil || k != 20*sc.mss {
		t.Fatalf("send: %d, %v", k, err)
	}
	n.runUntil("the timeout", 5*time.Second, func() bool { return n.a.Stats().RTOExpiries > before.RTOExpiries })
	if k, err := n.a.Send(n.now, c, want[20*sc.mss:]); err != nil || k != 10*sc.mss {
		t.Fatalf("send: %d, %v", k, err)
	}
	return c, s, want, before, cwnd, ssthresh
}

// TestSpuriousTimeout: b has every segment, but its ACKs come after a's
// retransmission timer has expired (as on a slow path back: the five
// processes an ACK climbs through on a busy core). The timeout sends the
// first segment again; the late ACKs then show the timeout spurious, by
// F-RTO (RFC 5682 3.1) without timestamps, F-RTO's two new segments going
// instead of the rest of the window, and by the timestamps (RFC 3522)
// with them. Nothing else is sent again (without the detection, 11 of
// the 20 segments went again here), and the window comes back.
func TestSpuriousTimeout(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"F-RTO", Config{NoTimestamps: true}},
		{"timestamps", Config{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, tt.cfg, tt.cfg)
			type seg struct {
				h Header
				p []byte
			}
			var held []seg
			holding := true
			c, s, want, before, cwnd, ssthresh := timeoutRun(t, n, func(from *Stack, h Header, p []byte) bool {
				if from == n.b && holding {
					held = append(held, seg{h, slices.Clone(p)})
					return false
				}
				return true
			})
			sc := n.a.socks[c]
			if rx := n.a.Stats().Retransmits - before.Retransmits; rx != 1 {
				t.Fatalf("%d segments sent again at the timeout, want 1", rx)
			}
			sentAtTimeout := sc.sndMax
			// The late ACKs arrive, 10 us apart.
			holding = false
			b, a := n.b.socks[s], sc
			for i, x := range held {
				n.n++
				n.inflight = append(n.inflight, packet{at: n.now.Add(time.Duration(i+1) * 10 * time.Microsecond), seq: n.n, to: n.a,
					seg: Segment{Src: addrB, Dst: addrA, Data: segmentBytes(b.local, a.local, x.h, x.p)}})
			}
			if tt.cfg.NoTimestamps {
				// F-RTO's step 2 b: the first late ACK, which covers the
				// segment sent again, lets two new segments out.
				n.step()
				if got := sc.sndMax.Diff(sentAtTimeout); got != 2*sc.mss {
					t.Fatalf("after the first late ACK %d new bytes went, want two segments (%d)", got, 2*sc.mss)
				}
			}
			deliverAll(t, n, s, sc, want, 10*time.Second)
			st := n.a.Stats()
			if st.SpuriousRTOs-before.SpuriousRTOs != 1 {
				t.Errorf("%d timeouts found spurious, want 1", st.SpuriousRTOs-before.SpuriousRTOs)
			}
			if rx := st.Retransmits - before.Retransmits; rx != 1 {
				t.Errorf("%d segments sent again in all, want only the timeout's 1", rx)
			}
			if sc.cc.Cwnd() < cwnd || sc.cc.Ssthresh() < ssthresh {
				t.Errorf("window %d, threshold %d after the undo; want at least the %d, %d of before", sc.cc.Cwnd(), sc.cc.Ssthresh(), cwnd, ssthresh)
			}
		})
	}
}

// TestTimeoutAfterRealLoss: the last ten of twenty segments are lost, so
// no duplicate ACK comes and the timer expires: a real loss. F-RTO's new
// segments draw duplicate ACKs that SACK only them, which says so (RFC
// 5682 3.1 step 3 a), and the timestamps echo the retransmission's: the
// timeout is not taken for spurious, the window stays cut, and the lost
// segments are sent again.
func TestTimeoutAfterRealLoss(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"F-RTO", Config{NoTimestamps: true}},
		{"timestamps", Config{}},
		{"no SACK", Config{NoSACK: true, NoTimestamps: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, tt.cfg, tt.cfg)
			lost := map[Seq]bool{}
			var from0 Seq
			c, s, want, before, _, ssthresh := timeoutRun(t, n, func(from *Stack, h Header, p []byte) bool {
				if from == n.a && len(p) > 0 && from0 == 0 {
					from0 = h.Seq // the first of the twenty
				}
				if from == n.a && len(p) > 0 && h.Seq.Diff(from0) >= 10*len(p) && h.Seq.Diff(from0) < 20*len(p) && !lost[h.Seq] {
					lost[h.Seq] = true
					return false
				}
				return true
			})
			sc := n.a.socks[c]
			deliverAll(t, n, s, sc, want, 30*time.Second)
			st := n.a.Stats()
			if len(lost) != 10 {
				t.Fatalf("%d segments lost, want 10", len(lost))
			}
			if k := st.SpuriousRTOs - before.SpuriousRTOs; k != 0 {
				t.Errorf("%d timeouts taken for spurious after a real loss, want 0", k)
			}
			if rx := st.Retransmits - before.Retransmits; rx < 10 {
				t.Errorf("%d segments sent again, want the 10 lost at least", rx)
			}
			if sc.cc.Ssthresh() >= ssthresh {
				t.Errorf("threshold %d after a real loss, want it cut from %d", sc.cc.Ssthresh(), ssthresh)
			}
		})
	}
}

// TestRTOAboveSRTT: the RTO is SRTT + max(4 RTTVAR, MinRTO), as Linux
// bounds it, not max(SRTT + 4 RTTVAR, MinRTO): a round trip of 150 ms
// with little variance leaves 200 ms for a late ACK, where it left 50 ms.
func TestRTOAboveSRTT(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		samples []time.Duration
		want    time.Duration
	}{
		{"first sample, short", []time.Duration{ms}, ms + 200*ms},
		{"first sample, long: 3 RTT", []time.Duration{300 * ms}, 900 * ms},
		{"steady 150 ms", slices.Repeat([]time.Duration{150 * ms}, 50), 350 * ms},
		{"steady 10 ms", slices.Repeat([]time.Duration{10 * ms}, 50), 210 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{Secret: 1})
			c := s.newTCB()
			c.resetConn()
			for _, r := range tt.samples {
				c.rttSample(r)
			}
			if d := c.rto - tt.want; d < -ms || d > ms {
				t.Errorf("RTO %v, want %v", c.rto, tt.want)
			}
		})
	}
}

// deliverAll runs n until s, at n.b, has read want whole and sc, the
// sending side, has every byte acknowledged, within limit.
func deliverAll(t *testing.T, n *testNet, s SockID, sc *tcb, want []byte, limit time.Duration) {
	t.Helper()
	var got []byte
	buf := make([]byte, 64<<10)
	n.runUntil("all delivered", limit, func() bool {
		for {
			k, err := n.b.Recv(n.now, s, buf, false)
			if err != nil || k == 0 {
				break
			}
			got = append(got, buf[:k]...)
		}
		return len(got) >= len(want) && sc.sndUna == sc.sndMax
	})
	if !bytes.Equal(got, want) {
		t.Fatal("data corrupted")
	}
}

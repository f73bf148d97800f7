package tcp

import (
	"bytes"
	"testing"
	"time"
)

// TestNewReno walks NewReno through each event the sender reports, step
// by step, with an MSS of 1000 bytes.
func TestNewReno(t *testing.T) {
	const mss = 1000
	type step struct {
		name           string
		do             func(cc CongestionControl)
		cwnd, ssthresh int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"slow start then avoidance", []step{
			{"reset", func(cc CongestionControl) { cc.Reset() }, 0, maxCwnd},
			{"start: 10 segments", func(cc CongestionControl) { cc.Start(mss) }, 10 * mss, maxCwnd},
			{"ack of 2 segments grows by both (byte counting)", func(cc CongestionControl) { cc.Ack(epoch, 2*mss, mss) }, 12 * mss, maxCwnd},
			{"ack of half a segment grows by it", func(cc CongestionControl) { cc.Ack(epoch, mss/2, mss) }, 12*mss + mss/2, maxCwnd},
			{"timeout: one segment, half the flight", func(cc CongestionControl) { cc.Timeout(epoch, 8*mss, mss) }, mss, 4 * mss},
			{"slow start to ssthresh", func(cc CongestionControl) {
				for range 3 {
					cc.Ack(epoch, mss, mss)
				}
			}, 4 * mss, 4 * mss},
			{"a stretch ACK stops at ssthresh", func(cc CongestionControl) {
				cc.Reset()
				cc.Start(mss)
				cc.Timeout(epoch, 40*mss, mss)
				cc.Ack(epoch, 45*mss, mss)
			}, 20 * mss, 20 * mss},
			{"back to the avoidance test's state", func(cc CongestionControl) { cc.Timeout(epoch, 8*mss, mss); cc.Ack(epoch, 3*mss, mss) }, 4 * mss, 4 * mss},
			{"avoidance: less than a window acked", func(cc CongestionControl) { cc.Ack(epoch, 3*mss, mss) }, 4 * mss, 4 * mss},
			{"avoidance: a window acked", func(cc CongestionControl) { cc.Ack(epoch, mss, mss) }, 5 * mss, 4 * mss},
		}},
		{"fast recovery", []step{
			{"reset and start", func(cc CongestionControl) { cc.Reset(); cc.Start(mss) }, 10 * mss, maxCwnd},
			{"third duplicate", func(cc CongestionControl) { cc.EnterRecovery(epoch, 10*mss, mss) }, 8 * mss, 5 * mss},
			{"more duplicates inflate", func(cc CongestionControl) { cc.RecoveryDupAck(mss); cc.RecoveryDupAck(mss) }, 10 * mss, 5 * mss},
			{"partial ack of 3 segments", func(cc CongestionControl) { cc.PartialAck(3*mss, mss) }, 8 * mss, 5 * mss},
			{"partial ack under a segment", func(cc CongestionControl) { cc.PartialAck(mss/2, mss) }, 7*mss + mss/2, 5 * mss},
			{"full ack, little in flight", func(cc CongestionControl) { cc.ExitRecovery(2*mss, mss) }, 3 * mss, 5 * mss},
		}},
		{"deflation floor", []step{
			{"start", func(cc CongestionControl) { cc.Reset(); cc.Start(mss) }, 10 * mss, maxCwnd},
			{"recovery on a small flight", func(cc CongestionControl) { cc.EnterRecovery(epoch, 2*mss, mss) }, 5 * mss, 2 * mss},
			{"partial ack past the window", func(cc CongestionControl) { cc.PartialAck(9*mss, mss) }, mss, 2 * mss},
			{"full ack, much in flight", func(cc CongestionControl) { cc.ExitRecovery(9*mss, mss) }, 2 * mss, 2 * mss},
		}},
		{"small MSS initial window", []step{
			{"start with 536", func(cc CongestionControl) { cc.Reset(); cc.Start(536) }, 5360, maxCwnd},
		}},
		{"window bound", []step{
			{"reset", func(cc CongestionControl) { cc.Reset(); cc.Start(mss) }, 10 * mss, maxCwnd},
			{"huge acks stop at the bound", func(cc CongestionControl) {
				for range 3 {
					cc.Ack(epoch, maxCwnd, maxCwnd)
				}
			}, maxCwnd, maxCwnd},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := NewReno()
			for _, st := range tt.steps {
				st.do(cc)
				if cc.Cwnd() != st.cwnd || cc.Ssthresh() != st.ssthresh {
					t.Fatalf("%s: cwnd %d, ssthresh %d; want %d, %d", st.name, cc.Cwnd(), cc.Ssthresh(), st.cwnd, st.ssthresh)
				}
			}
		})
	}
}

// fixedWindow is a CongestionControl that keeps a window of segs segments
// whatever happens, and counts the events it hears of.
type fixedWindow struct {
	segs, mss              int
	acks, losses, timeouts int
}

func (f *fixedWindow) Cwnd() int                         { return f.segs * f.mss }
func (f *fixedWindow) Ssthresh() int                     { return f.segs * f.mss }
func (f *fixedWindow) Reset()                            {}
func (f *fixedWindow) Start(mss int)                     { f.mss = mss }
func (f *fixedWindow) Ack(time.Time, int, int)           { f.acks++ }
func (f *fixedWindow) EnterRecovery(time.Time, int, int) { f.losses++ }
func (f *fixedWindow) RecoveryDupAck(int)                {}
func (f *fixedWindow) PartialAck(int, int)               {}
func (f *fixedWindow) ExitRecovery(int, int)             {}
func (f *fixedWindow) Timeout(time.Time, int, int)       { f.timeouts++ }
func (f *fixedWindow) Undo(int, int)                     {}

// TestCongestionControlConfig: a Stack uses the congestion control its
// Config names, one per connection, and never has more in flight than its
// window allows.
func TestCongestionControlConfig(t *testing.T) {
	var made []*fixedWindow
	cfg := Config{CongestionControl: func() CongestionControl {
		f := &fixedWindow{segs: 2}
		made = append(made, f)
		return f
	}}
	n := newNet(t, cfg, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	sender := made[len(made)-1]
	maxFlight := 0
	n.filter = func(from *Stack, h Header, p []byte) bool {
		if from == n.a {
			cn := n.a.socks[c]
			maxFlight = max(maxFlight, cn.sndMax.Diff(cn.sndUna))
		}
		return true
	}
	data := pattern(200<<10, 7)
	if got := n.transfer(n.a, c, n.b, s, data, false, 60*time.Second); !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, not the %d sent", len(got), len(data))
	}
	if sender.acks == 0 {
		t.Errorf("the configured congestion control heard of no ACK")
	}
	if limit := 2 * sender.mss; maxFlight > limit {
		t.Errorf("%d bytes in flight, more than the window of %d", maxFlight, limit)
	}
	if got := n.a.Conns(); len(got) == 0 || got[0].Cwnd != 2*sender.mss {
		t.Errorf("Conns reports cwnd %+v, want %d", got, 2*sender.mss)
	}
}

package tcp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/proto"
)

// TestEventTable checks the state machine against RFC 9293's event
// processing (3.10.7), a row per state and arriving segment: the state
// after, and what the connection answers. Each row builds the state on a
// fresh pair of stacks, then hands the connection on b one segment made
// from its own sequence numbers.
func TestEventTable(t *testing.T) {
	type seg struct {
		flags  uint8
		seqOff int  // from RCV.NXT
		ackOff int  // from SND.NXT (SND.UNA for old)
		old    bool // ack SND.UNA rather than SND.NXT
		data   string
	}
	tests := []struct {
		name  string
		state State
		in    seg
		want  State
		reply uint8 // flags of the answer; 0: none
	}{
		{"SYN-RECEIVED, ACK of our SYN", SynReceived, seg{flags: ACK}, Established, 0},
		{"SYN-RECEIVED, ACK of nothing we sent", SynReceived, seg{flags: ACK, ackOff: 5}, SynReceived, RST},
		{"SYN-RECEIVED, RST in window", SynReceived, seg{flags: RST}, Closed, 0},
		{"ESTABLISHED, the first data", Established, seg{flags: ACK | PSH, data: "hello"}, Established, ACK}, // quick-ACK mode (ack_test.go)
		{"ESTABLISHED, FIN", Established, seg{flags: ACK | FIN}, CloseWait, 0},                               // its ACK waits for our FIN, as Linux's tcp_fin (ack_test.go)
		{"ESTABLISHED, exact RST", Established, seg{flags: RST}, Closed, 0},
		{"ESTABLISHED, RST in window, not exact", Established, seg{flags: RST, seqOff: 10}, Established, ACK},
		{"ESTABLISHED, SYN", Established, seg{flags: SYN}, Established, ACK},
		{"ESTABLISHED, segment before the window", Established, seg{flags: ACK, seqOff: -100000, data: "x"}, Established, ACK},
		{"ESTABLISHED, no ACK flag", Established, seg{flags: PSH, data: "x"}, Established, 0},
		{"ESTABLISHED, ACK of data not sent", Established, seg{flags: ACK, ackOff: 1000}, Established, ACK},
		{"FIN-WAIT-1, ACK of our FIN", FinWait1, seg{flags: ACK}, FinWait2, 0},
		{"FIN-WAIT-1, FIN without the ACK of ours", FinWait1, seg{flags: ACK | FIN, old: true}, Closing, ACK},
		{"FIN-WAIT-1, FIN with the ACK of ours", FinWait1, seg{flags: ACK | FIN}, TimeWait, ACK},
		{"FIN-WAIT-2, FIN", FinWait2, seg{flags: ACK | FIN}, TimeWait, ACK},
		{"CLOSE-WAIT, FIN again", CloseWait, seg{flags: ACK | FIN, seqOff: -1}, CloseWait, ACK},
		{"CLOSING, ACK of our FIN", Closing, seg{flags: ACK}, TimeWait, 0},
		{"LAST-ACK, ACK of our FIN", LastAck, seg{flags: ACK}, Closed, 0},
		{"TIME-WAIT, FIN again", TimeWait, seg{flags: ACK | FIN, seqOff: -1}, TimeWait, ACK},
		{"TIME-WAIT, exact RST", TimeWait, seg{flags: RST}, Closed, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, Config{}, Config{})
			x := reach(t, n, tt.state)
			if x.state != tt.state {
				t.Fatalf("set-up reached %v, want %v", x.state, tt.state)
			}
			h := Header{Seq: x.rcvNxt.Add(tt.in.seqOff), Ack: x.sndNxt.Add(tt.in.ackOff), Flags: tt.in.flags, Window: 1000}
			if tt.in.old {
				h.Ack = x.sndUna
			}
			if x.tsOK {
				h.Opts.TS, h.Opts.TSVal, h.Opts.TSEcr = true, x.tsRecent+1, 0
			}
			n.b.Out()
			n.inject(n.b, x.remote, x.local, h, []byte(tt.in.data))
			if x.state != tt.want {
				t.Fatalf("state %v, want %v", x.state, tt.want)
			}
			var got uint8
			for _, s := range n.b.Out() {
				checker.Segment(t, proto.TCP, s.Src, s.Dst, s.Data, checker.Src(x.local.Addr()), checker.Dst(x.remote.Addr()),
					checker.TCP(checker.SrcPort(x.local.Port()), checker.DstPort(x.remote.Port())))
				hh, _, _ := Parse(s.Data)
				got = hh.Flags &^ PSH
			}
			if tt.reply == 0 && got != 0 && got != ACK|FIN {
				t.Fatalf("answered %b, want nothing", got)
			}
			if tt.reply != 0 && got&tt.reply != tt.reply {
				t.Fatalf("answered %b, want %b", got, tt.reply)
			}
		})
	}
}

// reach brings a connection on b to state and returns it. Segments from a
// stop at the point where b is in that state (the rest is the row's).
func reach(t *testing.T, n *testNet, state State) *tcb {
	t.Helper()
	l := n.listen(80, 8)
	if state == SynReceived {
		c := n.a.Open()
		n.a.Connect(n.now, c, netip.AddrPortFrom(addrB, 80))
		n.collect()
		n.deliver() // the SYN reaches b
		n.b.Out()
		n.inflight = nil
		for x := range n.b.all {
			if x.state == SynReceived {
				return x
			}
		}
		t.Fatal("no SYN-RECEIVED connection")
	}
	c, s := n.dial(l, 80)
	x := n.b.socks[s]
	quiet := func() { n.runFor(time.Millisecond); n.b.Out(); n.a.Out(); n.inflight = nil }
	switch state {
	case Established:
	case FinWait1: // b closes; its FIN is lost
		n.filter = func(from *Stack, h Header, p []byte) bool { return from != n.b }
		n.b.Shutdown(n.now, s, false, true)
		quiet()
	case FinWait2: // a's ACK of b's FIN waits for a delayed ACK, a not closing
		n.b.Shutdown(n.now, s, false, true)
		n.runFor(DefaultDelayedAck + time.Millisecond)
	case CloseWait:
		n.a.Shutdown(n.now, c, false, true)
		n.runFor(time.Millisecond)
	case Closing: // both close; b's FIN reaches a, a's FIN is held back
		n.filter = func(from *Stack, h Header, p []byte) bool { return from == n.b }
		n.b.Shutdown(n.now, s, false, true)
		n.a.Shutdown(n.now, c, false, true)
		n.runFor(time.Millisecond)
		n.filter = func(from *Stack, h Header, p []byte) bool { return false }
		// a's FIN, unacknowledged by b, never arrives; b gets a FIN in
		// place of it: make b see a's FIN without its ACK.
		n.inject(n.b, x.remote, x.local, Header{Seq: x.rcvNxt, Ack: x.sndUna, Flags: ACK | FIN, Window: 1000,
			Opts: Options{TS: x.tsOK, TSVal: x.tsRecent + 1}}, nil)
		quiet()
	case LastAck:
		n.a.Shutdown(n.now, c, false, true)
		n.runFor(time.Millisecond)
		n.filter = func(from *Stack, h Header, p []byte) bool { return from != n.b }
		n.b.Shutdown(n.now, s, false, true)
		quiet()
	case TimeWait:
		n.b.Shutdown(n.now, s, false, true)
		n.runFor(time.Millisecond)
		n.a.Shutdown(n.now, c, false, true)
		n.runFor(time.Millisecond)
	}
	n.filter = nil
	return x
}

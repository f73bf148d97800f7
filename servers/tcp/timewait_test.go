package tcp

import (
	"testing"
)

// TestTimeWaitReopen: a SYN for a connection in TIME-WAIT, as Linux's
// client sends when it reuses the port of a connection the server closed
// first (bench http's 1-request connections), opens a new connection
// when its timestamp is newer or, without timestamps, its sequence number
// is past the old connection's (RFC 6191, RFC 9293 3.10.7.4; Linux's
// tcp_timewait_state_process); any other SYN leaves TIME-WAIT as it is
// and is answered with an ACK, which the peer's SYN-SENT answers with
// the RST that ends TIME-WAIT.
func TestTimeWaitReopen(t *testing.T) {
	tests := []struct {
		name   string
		noTS   bool
		tsOff  int32 // the SYN's TSVal, from TS.Recent
		seqOff int   // the SYN's sequence number, from RCV.NXT
		reopen bool
	}{
		{"newer timestamp", false, 1000, -5000, true},
		{"same timestamp", false, 0, 5000, false},
		{"older timestamp", false, -1000, 5000, false},
		{"no timestamps, sequence number past", true, 0, 5000, true},
		{"no timestamps, sequence number before", true, 0, -5000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{NoTimestamps: tt.noTS}
			n := newNet(t, cfg, cfg)
			x := reach(t, n, TimeWait)
			if x.state != TimeWait || x.tsOK == tt.noTS {
				t.Fatalf("set-up: %v, timestamps %v", x.state, x.tsOK)
			}
			h := Header{Seq: x.rcvNxt.Add(tt.seqOff), Flags: SYN, Window: 64240, Opts: Options{MSS: 1460}}
			if !tt.noTS {
				h.Opts.TS, h.Opts.TSVal = true, x.tsRecent+uint32(tt.tsOff)
			}
			n.b.Out()
			n.inject(n.b, x.remote, x.local, h, nil)
			c := n.b.conns[tuple{x.local, x.remote}]
			var reply []Header
			for _, s := range n.b.Out() {
				hh, _, err := Parse(s.Data)
				if err != nil {
					t.Fatal(err)
				}
				reply = append(reply, hh)
			}
			if len(reply) != 1 {
				t.Fatalf("%d answers, want 1", len(reply))
			}
			if !tt.reopen {
				if c != x || x.state != TimeWait || reply[0].Flags != ACK || reply[0].Ack != x.rcvNxt {
					t.Fatalf("state %v (same connection %v), answered %v ack %d; want TIME-WAIT, an ACK of %d",
						x.state, c == x, reply[0].Flags, reply[0].Ack, x.rcvNxt)
				}
				return
			}
			if c == nil || c == x || c.state != SynReceived || c.irs != h.Seq {
				t.Fatalf("no new connection for the SYN: %+v", c)
			}
			if x.state != Closed || n.b.tw != 0 {
				t.Errorf("the old connection: %v, TIME-WAIT count %d", x.state, n.b.tw)
			}
			if reply[0].Flags != SYN|ACK || reply[0].Ack != h.Seq+1 {
				t.Errorf("answered %v ack %d, want a SYN-ACK of %d", reply[0].Flags, reply[0].Ack, h.Seq+1)
			}
		})
	}
}

package tcp

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// lossyClient connects a to b and returns a's connection, established
// (with data in flight, all of it lost) or still in SYN-SENT (its SYN
// lost).
func lossyClient(t *testing.T, n *testNet, state State) (SockID, *tcb) {
	t.Helper()
	var c SockID
	switch state {
	case SynSent:
		c = n.a.Open()
		if err := n.a.Connect(n.now, c, netip.AddrPortFrom(addrB, 80)); err != ErrInProgress {
			t.Fatal(err)
		}
	case Established:
		c, _ = n.dial(n.listen(80, 8), 80)
		n.filter = func(from *Stack, h Header, p []byte) bool { return from != n.a }
		if _, err := n.a.Send(n.now, c, pattern(3000, 1)); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no set-up for %v", state)
	}
	n.collect()
	return c, n.a.socks[c]
}

// TestICMPError checks what an ICMP error about a connection does (RFC
// 1122 4.2.3.9, RFC 5461, RFC 5927, as Linux's tcp_v4_err): in SYN-SENT
// it ends the connect with the code's error, in ESTABLISHED it is a soft
// error the connection lives on with, and one that quotes a sequence
// number not in flight is ignored.
func TestICMPError(t *testing.T) {
	tests := []struct {
		name      string
		state     State
		typ, code uint8
		seqOff    int // the quoted sequence number, from SND.UNA
		want      State
		err       error // the connect's error, or SO_ERROR's
		ignored   bool  // counted out of window
	}{
		{"SYN-SENT, port unreachable", SynSent, 3, 3, 0, Closed, ErrConnRefused, false},
		{"SYN-SENT, administratively prohibited", SynSent, 3, 13, 0, Closed, ErrHostUnreach, false},
		{"SYN-SENT, host unreachable", SynSent, 3, 1, 0, Closed, ErrHostUnreach, false},
		{"SYN-SENT, net unreachable", SynSent, 3, 0, 0, Closed, ErrNetUnreach, false},
		{"SYN-SENT, protocol unreachable", SynSent, 3, 2, 0, Closed, ErrProtoUnreach, false},
		{"SYN-SENT, TTL exceeded", SynSent, 11, 0, 0, Closed, ErrHostUnreach, false},
		{"SYN-SENT, quoting SND.NXT", SynSent, 3, 3, 1, SynSent, nil, true},
		{"SYN-SENT, quoting before SND.UNA", SynSent, 3, 3, -1, SynSent, nil, true},
		{"ESTABLISHED, port unreachable", Established, 3, 3, 0, Established, ErrConnRefused, false},
		{"ESTABLISHED, host unreachable mid-flight", Established, 3, 1, 1448, Established, ErrHostUnreach, false},
		{"ESTABLISHED, quoting data not sent", Established, 3, 3, 3000, Established, nil, true},
		{"ESTABLISHED, quoting data acknowledged", Established, 3, 3, -1, Established, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, Config{}, Config{})
			c, x := lossyClient(t, n, tt.state)
			n.a.ICMPError(n.now, x.local, x.remote, x.sndUna.Add(tt.seqOff), tt.typ, tt.code, 0)
			if x.state != tt.want {
				t.Fatalf("state %v, want %v", x.state, tt.want)
			}
			if out := n.a.Out(); len(out) != 0 {
				t.Errorf("sent %d segments, want none (no RST for an ICMP error)", len(out))
			}
			if st := n.a.Stats(); (st.ICMPOutOfWindow == 1) != tt.ignored || (st.ICMPErrors == 1) == tt.ignored {
				t.Errorf("stats %+v, want the error ignored: %v", st, tt.ignored)
			}
			r, _ := n.a.Ready(c)
			if hard := tt.want == Closed; (r&ReadyErr != 0) != hard {
				t.Errorf("ready %b, want POLLERR only for a hard error", r)
			}
			var got error
			if tt.state == SynSent {
				var done bool
				done, got = n.a.ConnectDone(c)
				if done != (tt.want == Closed) {
					t.Errorf("connect done %v, want %v", done, tt.want == Closed)
				}
			} else {
				got, _ = n.a.TakeError(c)
				if again, _ := n.a.TakeError(c); again != nil {
					t.Errorf("SO_ERROR again %v, want nil: SO_ERROR takes the soft error", again)
				}
			}
			if !errors.Is(got, tt.err) || (got == nil) != (tt.err == nil) {
				t.Errorf("error %v, want %v", got, tt.err)
			}
		})
	}
}

// TestICMPSoftError: a soft error left by an ICMP error replaces
// ETIMEDOUT when the connection times out (Linux's tcp_write_err), and
// an ACK of new data forgets it.
func TestICMPSoftError(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		n := newNet(t, Config{Retries: 2}, Config{})
		c, x := lossyClient(t, n, Established)
		n.a.ICMPError(n.now, x.local, x.remote, x.sndUna, 3, 1, 0)
		n.runUntil("timed out", 10*time.Minute, func() bool { return x.state == Closed })
		if e, _ := n.a.TakeError(c); !errors.Is(e, ErrHostUnreach) {
			t.Fatalf("error %v, want the soft error ErrHostUnreach", e)
		}
	})
	t.Run("acknowledged", func(t *testing.T) {
		n := newNet(t, Config{}, Config{})
		c, x := lossyClient(t, n, Established)
		n.a.ICMPError(n.now, x.local, x.remote, x.sndUna, 3, 1, 0)
		n.filter = nil
		n.runUntil("all acknowledged", 10*time.Second, func() bool { return x.sndUna == x.sndMax })
		if e, _ := n.a.TakeError(c); e != nil {
			t.Fatalf("SO_ERROR %v after the peer acknowledged, want nil", e)
		}
	})
}

// TestICMPErrorHalfOpen: a listener's connection in SYN-RECEIVED goes on
// a host unreachable about its SYN-ACK, and stays on a port unreachable
// (Linux's tcp_req_err); an error about no connection is ignored.
func TestICMPErrorHalfOpen(t *testing.T) {
	for _, tt := range []struct {
		code uint8
		want State
	}{{1, Closed}, {3, SynReceived}} {
		n := newNet(t, Config{}, Config{})
		x := reach(t, n, SynReceived)
		n.b.ICMPError(n.now, x.local, x.remote, x.iss, 3, tt.code, 0)
		if x.state != tt.want {
			t.Errorf("code %d: state %v, want %v", tt.code, x.state, tt.want)
		}
		if _, ok := n.b.conns[tuple{x.local, x.remote}]; ok != (tt.want != Closed) {
			t.Errorf("code %d: in the table %v", tt.code, ok)
		}
	}
	n := newNet(t, Config{}, Config{})
	n.a.ICMPError(n.now, netip.AddrPortFrom(addrA, 5000), netip.AddrPortFrom(addrB, 80), 0, 3, 3, 0)
	if st := n.a.Stats(); st.ICMPIgnored != 1 {
		t.Errorf("ignored %d, want 1", st.ICMPIgnored)
	}
}

// TestPathMTUDiscovery: a router on the way has an MTU of 1000 and
// answers larger segments with a fragmentation needed (RFC 1191). The
// connection lowers its MSS to fit, sends again at once what was dropped,
// and the transfer completes without a retransmission timeout.
func TestPathMTUDiscovery(t *testing.T) {
	const routerMTU = 1000
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	x := n.a.socks[c]
	type drop struct{ seq Seq }
	var dropped []drop
	n.filter = func(from *Stack, h Header, p []byte) bool {
		if from == n.a && 20+HeaderLen+optionsLen(&h.Opts, false)+len(p) > routerMTU {
			dropped = append(dropped, drop{h.Seq})
			return false
		}
		return true
	}
	data := pattern(20000, 3)
	sent := 0
	var got []byte
	buf := make([]byte, 64<<10)
	n.runUntil("transfer", 5*time.Second, func() bool {
		if sent < len(data) {
			k, _ := n.a.Send(n.now, c, data[sent:])
			sent += k
		}
		n.collect()
		for _, d := range dropped { // the router's errors, as the segments go
			n.a.ICMPError(n.now, x.local, x.remote, d.seq, 3, 4, routerMTU)
		}
		dropped = nil
		if k, err := n.b.Recv(n.now, s, buf, false); err == nil {
			got = append(got, buf[:k]...)
		}
		return len(got) == len(data)
	})
	if string(got) != string(data) {
		t.Fatal("data differs")
	}
	if want := routerMTU - 40 - 12; x.mss != want {
		t.Errorf("MSS %d, want %d (the router's MTU less headers and timestamps)", x.mss, want)
	}
	if st := n.a.Stats(); st.RTOExpiries != 0 || st.ICMPErrors == 0 {
		t.Errorf("%d RTO expiries and %d ICMP errors, want none and some: sent again at once", st.RTOExpiries, st.ICMPErrors)
	}
}

// TestPathMTUBounds: a fragmentation needed only ever lowers the MSS, and
// never below what MinPathMTU allows, whatever MTU it names.
func TestPathMTUBounds(t *testing.T) {
	for _, tt := range []struct {
		name string
		mtu  int
		want int // MSS, timestamps on
	}{
		{"lower", 1200, 1200 - 52},
		{"no MTU (a pre-RFC 1191 router)", 0, MinPathMTU - 52},
		{"below the floor", 68, MinPathMTU - 52},
		{"larger than the link's", 9000, 1500 - 52},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, Config{}, Config{})
			_, x := lossyClient(t, n, Established)
			n.a.ICMPError(n.now, x.local, x.remote, x.sndUna, 3, 4, tt.mtu)
			if x.mss != tt.want {
				t.Errorf("MSS %d, want %d", x.mss, tt.want)
			}
			out := n.a.Out()
			if lowered := tt.want < 1500-52; lowered != (len(out) > 0) {
				t.Errorf("sent %d segments again, want some only if the MSS went down", len(out))
			}
			for _, seg := range out { // what was in flight, sent again at the new size
				if h, p, _ := Parse(seg.Data); len(p) > tt.want || h.Seq.Before(x.sndUna) {
					t.Errorf("sent %d bytes at %d, more than the MSS %d or before SND.UNA", len(p), h.Seq, tt.want)
				}
			}
		})
	}
	// Before the handshake the path MTU bounds the MSS the SYN-ACK allows.
	n := newNet(t, Config{}, Config{})
	n.listen(80, 8)
	_, x := lossyClient(t, n, SynSent)
	n.a.ICMPError(n.now, x.local, x.remote, x.sndUna, 3, 4, 1000)
	n.filter = nil
	n.runUntil("established", time.Minute, func() bool { return x.state == Established })
	if want := 1000 - 52; x.mss != want {
		t.Errorf("MSS after the handshake %d, want %d", x.mss, want)
	}
}

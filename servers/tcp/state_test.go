package tcp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestConnectRefused(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	c := n.a.Open()
	if err := n.a.Connect(n.now, c, netip.AddrPortFrom(addrB, 9)); err != ErrInProgress {
		t.Fatal(err)
	}
	n.runUntil("refused", time.Second, func() bool { st, _ := n.a.State(c); return st == Closed })
	if r, _ := n.a.Ready(c); r&ReadyErr == 0 || r&ReadyOut == 0 || r&ReadyHup == 0 {
		t.Fatalf("ready %b after a refused connect, want ERR|OUT|HUP", r)
	}
	if e, _ := n.a.TakeError(c); !errors.Is(e, ErrConnRefused) {
		t.Fatalf("SO_ERROR %v, want ErrConnRefused", e)
	}
	if e, _ := n.a.TakeError(c); e != nil {
		t.Fatalf("second SO_ERROR %v, want none", e)
	}
	if d := n.b.Drops()["no-socket"]; d != 1 {
		t.Fatalf("no-socket drops %d, want 1", d)
	}
}

func TestSimultaneousOpenAndClose(t *testing.T) {
	n := newNet(t, Config{TimeWait: time.Second}, Config{TimeWait: time.Second})
	a, b := n.a.Open(), n.b.Open()
	n.a.Bind(a, netip.AddrPortFrom(addrA, 1000))
	n.b.Bind(b, netip.AddrPortFrom(addrB, 2000))
	n.a.Connect(n.now, a, netip.AddrPortFrom(addrB, 2000))
	n.b.Connect(n.now, b, netip.AddrPortFrom(addrA, 1000))
	sawSynRcvd := false
	n.runUntil("both established", time.Second, func() bool {
		sa, _ := n.a.State(a)
		sb, _ := n.b.State(b)
		sawSynRcvd = sawSynRcvd || sa == SynReceived || sb == SynReceived
		return sa == Established && sb == Established
	})
	if !sawSynRcvd {
		t.Fatal("a simultaneous open should pass through SYN-RECEIVED")
	}
	if got := n.transfer(n.a, a, n.b, b, []byte("hello"), false, time.Second); string(got) != "hello" {
		t.Fatalf("got %q", got)
	}
	n.a.Shutdown(n.now, a, false, true)
	n.b.Shutdown(n.now, b, false, true)
	sawClosing := false
	n.runUntil("both in TIME-WAIT", time.Second, func() bool {
		sa, _ := n.a.State(a)
		sb, _ := n.b.State(b)
		sawClosing = sawClosing || sa == Closing || sb == Closing
		return sa == TimeWait && sb == TimeWait
	})
	if !sawClosing {
		t.Fatal("a simultaneous close should pass through CLOSING")
	}
	n.runFor(2 * time.Second)
	if sa, _ := n.a.State(a); sa != Closed {
		t.Fatalf("after TIME-WAIT: %v", sa)
	}
}

// inject hands b a segment as if from a's connection c.
func (n *testNet) inject(to *Stack, from, dst netip.AddrPort, h Header, payload []byte) {
	to.Input(n.now, from.Addr(), dst.Addr(), segmentBytes(from, dst, h, payload))
}

// segmentBytes makes a segment from h (its ports set from the addresses)
// and payload, with its checksum.
func segmentBytes(from, dst netip.AddrPort, h Header, payload []byte) []byte {
	h.SrcPort, h.DstPort = from.Port(), dst.Port()
	h.Opts.WS = -1
	b := make([]byte, HeaderLen+optionsLen(&h.Opts, h.Flags&SYN != 0)+len(payload))
	k := h.Marshal(b, payload)
	b = b[:k]
	csum := checksumOf(from.Addr(), dst.Addr(), b)
	b[16], b[17] = byte(csum>>8), byte(csum)
	return b
}

// TestBlindAttacks checks the RFC 5961 defences: a RST or SYN whose
// sequence number is in the window but not exact draws a challenge ACK
// and leaves the connection up; data with an ACK far outside is dropped.
func TestBlindAttacks(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	sc := n.b.socks[s]
	cli, srv := sc.remote, sc.local
	tests := []struct {
		name   string
		h      Header
		data   []byte
		reason string
		answer bool
	}{
		{"rst in window", Header{Seq: sc.rcvNxt.Add(100), Flags: RST}, nil, "rst-challenged", true},
		{"syn in window", Header{Seq: sc.rcvNxt.Add(5), Flags: SYN}, nil, "syn-challenged", true},
		{"rst out of window", Header{Seq: sc.rcvNxt.Add(1 << 30), Flags: RST}, nil, "out-of-window", false},
		{"data with an old ack", Header{Seq: sc.rcvNxt, Ack: sc.sndUna.Add(-(1 << 30)), Flags: ACK}, []byte("evil"), "ack-out-of-window", true},
		{"data with an ack from the future", Header{Seq: sc.rcvNxt, Ack: sc.sndNxt.Add(1 << 20), Flags: ACK}, []byte("evil"), "ack-out-of-window", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.runFor(time.Second) // past the connection's challenge-ACK limit (500 ms)
			before := n.b.Drops()[tt.reason]
			n.b.Out()
			n.inject(n.b, cli, srv, tt.h, tt.data)
			if n.b.Drops()[tt.reason] != before+1 {
				t.Fatalf("drops %v, want one more %q", n.b.Drops(), tt.reason)
			}
			out := n.b.Out()
			if !tt.answer {
				if len(out) != 0 {
					t.Fatalf("%d segments in answer, want none (silently dropped)", len(out))
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("%d segments in answer, want one ACK", len(out))
			}
			h, _, _ := Parse(out[0].Data)
			if h.Flags != ACK || h.Ack != sc.rcvNxt {
				t.Fatalf("answer %s, want an ACK of %d", describe(false, h, nil), sc.rcvNxt)
			}
			if st, _ := n.b.State(s); st != Established {
				t.Fatalf("state %v, want ESTABLISHED", st)
			}
			if _, err := n.b.Recv(n.now, s, make([]byte, 10), false); err != ErrWouldBlock {
				t.Fatalf("recv %v: hostile data was delivered", err)
			}
		})
	}
	// An exact RST does reset.
	n.inject(n.b, cli, srv, Header{Seq: sc.rcvNxt, Flags: RST}, nil)
	if _, err := n.b.Recv(n.now, s, make([]byte, 10), false); !errors.Is(err, ErrConnReset) {
		t.Fatalf("recv after an exact RST: %v, want ErrConnReset", err)
	}
	_ = c
}

// TestBacklog: with SYN cookies off, SYNs past the backlog are dropped and
// counted, and are accepted when sent again. (TestSynCookies has them on.)
func TestBacklog(t *testing.T) {
	n := newNet(t, Config{}, Config{NoSynCookies: true})
	l := n.listen(80, 2)
	var clients []SockID
	for range 5 {
		c := n.a.Open()
		n.a.Connect(n.now, c, netip.AddrPortFrom(addrB, 80))
		clients = append(clients, c)
	}
	n.runFor(100 * time.Millisecond)
	if d := n.b.Drops()["backlog-full"]; d != 3 {
		t.Fatalf("backlog-full drops %d, want 3 (backlog 2, 5 SYNs)", d)
	}
	accepted := 0
	for {
		if _, _, err := n.b.Accept(l); err != nil {
			break
		}
		accepted++
	}
	if accepted != 2 {
		t.Fatalf("accepted %d, want 2", accepted)
	}
	// The dropped SYNs are sent again and now fit.
	n.runUntil("all accepted", 10*time.Second, func() bool {
		for {
			if _, _, err := n.b.Accept(l); err != nil {
				break
			}
			accepted++
		}
		return accepted == 5
	})
}

// TestZeroWindow fills a receiver that does not read: the sender probes
// the zero window, and everything arrives once the receiver reads.
func TestZeroWindow(t *testing.T) {
	n := newNet(t, Config{}, Config{RecvBuffer: 8192})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	data := pattern(100000, 3)
	sent := 0
	for range 200 {
		if k, err := n.a.Send(n.now, c, data[sent:]); err == nil {
			sent += k
		}
		n.runFor(50 * time.Millisecond)
	}
	cc := n.a.socks[c]
	if cc.sndWnd != 0 || !cc.persist {
		t.Fatalf("sender window %d, persist %v: want a zero window being probed", cc.sndWnd, cc.persist)
	}
	sent0 := n.sent
	n.runFor(10 * time.Second)
	if n.sent == sent0 {
		t.Fatal("no window probes in 10 s")
	}
	var got []byte
	buf := make([]byte, 4096)
	n.runUntil("all read", time.Minute, func() bool {
		for {
			if sent < len(data) {
				if k, err := n.a.Send(n.now, c, data[sent:]); err == nil {
					sent += k
				}
			}
			k, err := n.b.Recv(n.now, s, buf, false)
			if err != nil {
				break
			}
			got = append(got, buf[:k]...)
		}
		return len(got) == len(data)
	})
	if !bytes.Equal(got, data) {
		t.Fatal("data corrupted")
	}
}

func TestNagleAndNoDelay(t *testing.T) {
	for _, noDelay := range []bool{false, true} {
		n := newNet(t, Config{}, Config{})
		l := n.listen(80, 8)
		c, _ := n.dial(l, 80)
		if noDelay {
			n.a.SetOption(c, OptNoDelay, 1)
		}
		n.a.Out()
		for range 5 {
			n.a.Send(n.now, c, []byte("x"))
		}
		segs := 0
		for _, s := range n.a.Out() {
			if _, p, _ := Parse(s.Data); len(p) > 0 {
				segs++
			}
		}
		want := 1 // Nagle: one small segment in flight, the rest wait
		if noDelay {
			want = 5
		}
		if segs != want {
			t.Errorf("nodelay=%v: %d data segments, want %d", noDelay, segs, want)
		}
	}
}

func TestOptionsNegotiated(t *testing.T) {
	tests := []struct {
		name         string
		a, b         Config
		ws, ts, sack bool
		mss          int
	}{
		{"all", Config{}, Config{}, true, true, true, 1448},
		{"peer without window scaling", Config{}, Config{NoWindowScale: true}, false, true, true, 1448},
		{"no timestamps", Config{NoTimestamps: true}, Config{}, true, false, true, 1460},
		{"no sack", Config{}, Config{NoSACK: true}, true, true, false, 1448},
		{"small mtu", Config{MTU: 576}, Config{}, true, true, true, 536 - 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, tt.a, tt.b)
			l := n.listen(80, 8)
			c, s := n.dial(l, 80)
			for _, x := range []*tcb{n.a.socks[c], n.b.socks[s]} {
				if x.wsOK != tt.ws || x.tsOK != tt.ts || x.sackOK != tt.sack || x.mss != tt.mss {
					t.Fatalf("ws %v ts %v sack %v mss %d; want %v %v %v %d", x.wsOK, x.tsOK, x.sackOK, x.mss, tt.ws, tt.ts, tt.sack, tt.mss)
				}
			}
			data := pattern(300000, 5)
			if got := n.transfer(n.a, c, n.b, s, data, false, 10*time.Second); !bytes.Equal(got, data) {
				t.Fatal("data corrupted")
			}
		})
	}
}

func TestCloseWithUnreadDataResets(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	n.a.Send(n.now, c, []byte("unread"))
	n.runFor(100 * time.Millisecond)
	n.b.Close(n.now, s)
	n.runFor(100 * time.Millisecond)
	if _, err := n.a.Recv(n.now, c, make([]byte, 8), false); !errors.Is(err, ErrConnReset) {
		t.Fatalf("recv %v, want ErrConnReset", err)
	}
	if _, err := n.a.Send(n.now, c, []byte("x")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("send after reset: %v, want ErrShutdown (EPIPE)", err)
	}
}

func TestRetransmissionGivesUp(t *testing.T) {
	n := newNet(t, Config{Retries: 3}, Config{})
	l := n.listen(80, 8)
	c, _ := n.dial(l, 80)
	n.filter = func(from *Stack, h Header, p []byte) bool { return from != n.a } // a's segments are all lost
	n.a.Send(n.now, c, []byte("lost"))
	n.runUntil("timed out", 10*time.Minute, func() bool { st, _ := n.a.State(c); return st == Closed })
	if e, _ := n.a.TakeError(c); !errors.Is(e, ErrTimedOut) {
		t.Fatalf("error %v, want ErrTimedOut", e)
	}
	if st := n.a.Stats(); st.RTOExpiries != 4 {
		t.Fatalf("%d RTO expiries, want 4 (3 retries)", st.RTOExpiries)
	}
}

func TestFastRetransmit(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	dropped := false
	n.filter = func(from *Stack, h Header, p []byte) bool {
		if from == n.a && len(p) > 0 && !dropped && h.Seq.Diff(n.a.socks[c].iss) > 5*1448 {
			dropped = true
			return false
		}
		return true
	}
	data := pattern(200000, 9)
	if got := n.transfer(n.a, c, n.b, s, data, false, 10*time.Second); !bytes.Equal(got, data) {
		t.Fatal("data corrupted")
	}
	st := n.a.Stats()
	if !dropped || st.FastRetransmits != 1 || st.RTOExpiries != 0 {
		t.Fatalf("fast retransmits %d, RTOs %d; want 1 and 0", st.FastRetransmits, st.RTOExpiries)
	}
}

func TestBindEphemeralAndLoopback(t *testing.T) {
	s := New(Config{Addrs: []netip.Addr{addrA}})
	for _, a := range []string{"127.0.0.1:0", "0.0.0.0:0", "198.18.0.1:0"} {
		id := s.Open()
		if err := s.Bind(id, netip.MustParseAddrPort(a)); err != nil {
			t.Fatalf("bind %s: %v", a, err)
		}
		if la, _ := s.LocalAddr(id); la.Port() < defaultEphLo {
			t.Fatalf("bind %s gave port %d", a, la.Port())
		}
	}
	if err := s.Bind(s.Open(), netip.MustParseAddrPort("198.18.0.9:80")); !errors.Is(err, ErrAddrNotAvail) {
		t.Fatalf("bind to a foreign address: %v", err)
	}
}

// TestSendAfterPeerClosed: data for a socket its user closed draws a RST,
// and the sender in CLOSE-WAIT gets EPIPE, as on Linux.
func TestSendAfterPeerClosed(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	n.b.Close(n.now, s)
	n.runFor(10 * time.Millisecond)
	if st, _ := n.a.State(c); st != CloseWait {
		t.Fatalf("state %v, want CLOSE-WAIT", st)
	}
	if _, err := n.a.Send(n.now, c, []byte("late")); err != nil {
		t.Fatalf("first send after the peer's FIN: %v", err)
	}
	n.runFor(10 * time.Millisecond)
	if r, _ := n.a.Ready(c); r&(ReadyErr|ReadyHup) != ReadyErr|ReadyHup {
		t.Fatalf("ready %b, want ERR|HUP", r)
	}
	if _, err := n.a.Send(n.now, c, []byte("x")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("send: %v, want ErrShutdown (EPIPE)", err)
	}
	if k, err := n.a.Recv(n.now, c, make([]byte, 4), false); k != 0 || err != nil {
		t.Fatalf("recv: %d %v, want end of file", k, err)
	}
}

// TestBuffersOnlyWhenUsed: a listener's connections hold no buffer memory
// until data moves, and a connection in TIME-WAIT gives its back.
func TestBuffersOnlyWhenUsed(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	for _, x := range []*tcb{n.a.socks[c], n.b.socks[s], n.b.socks[l]} {
		if x.snd.buf != nil || x.rcv.buf != nil {
			t.Fatalf("%v socket holds buffers before any data", x.state)
		}
	}
	n.transfer(n.a, c, n.b, s, []byte("data"), false, time.Second)
	n.b.Close(n.now, s)
	n.a.Close(n.now, c)
	n.runFor(time.Second)
	for x := range n.b.all {
		if x.state == TimeWait && (x.snd.buf != nil || x.rcv.buf != nil) {
			t.Fatal("a connection in TIME-WAIT keeps its buffers")
		}
	}
}

// TestSACKRecovery: two segments of one window are lost; the SACK blocks
// the receiver sends let the sender repair both in one recovery, with no
// timeout.
func TestSACKRecovery(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	iss := n.a.socks[c].iss
	dropped := map[int]bool{}
	n.filter = func(from *Stack, h Header, p []byte) bool {
		k := h.Seq.Diff(iss+1) / 1448
		if from == n.a && len(p) > 0 && (k == 12 || k == 16) && !dropped[k] {
			dropped[k] = true
			return false
		}
		return true
	}
	data := pattern(100*1448, 4)
	if got := n.transfer(n.a, c, n.b, s, data, false, 10*time.Second); !bytes.Equal(got, data) {
		t.Fatal("data corrupted")
	}
	st := n.a.Stats()
	if len(dropped) != 2 || st.RTOExpiries != 0 || st.FastRetransmits != 1 || st.Retransmits != 2 {
		t.Fatalf("dropped %d; RTOs %d, fast retransmits %d, retransmits %d; want 2 repaired in one recovery, no RTO",
			len(dropped), st.RTOExpiries, st.FastRetransmits, st.Retransmits)
	}
}

// TestEarlyRetransmit: with only three segments in flight and nothing more
// to send, losing the first still repairs without a timeout (RFC 5827).
func TestEarlyRetransmit(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	n.a.SetOption(c, OptNoDelay, 1)
	n.transfer(n.a, c, n.b, s, []byte("first"), false, time.Second) // windows in step
	dropped := false
	n.filter = func(from *Stack, h Header, p []byte) bool {
		if from == n.a && len(p) > 0 && !dropped {
			dropped = true
			return false
		}
		return true
	}
	data := pattern(3*1448, 5)
	if got := n.transfer(n.a, c, n.b, s, data, false, 10*time.Second); !bytes.Equal(got, data) {
		t.Fatal("data corrupted")
	}
	if st := n.a.Stats(); st.RTOExpiries != 0 || st.FastRetransmits != 1 {
		t.Fatalf("RTOs %d, fast retransmits %d; want the loss repaired without a timeout", st.RTOExpiries, st.FastRetransmits)
	}
}

// TestBufferOptionCapped: SO_SNDBUF and SO_RCVBUF are cut to
// MaxBufferOption and doubled, as Linux cuts them to wmem_max and
// rmem_max; 16 MB is not 16 MB (it was, before the cap).
func TestBufferOptionCapped(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		v    int
		want int
	}{
		{"small", Config{}, 65536, 131072},
		{"16 MB", Config{}, 16 << 20, 2 * DefaultMaxBufferOption},
		{"negative", Config{}, -1, minBuffer},
		{"a larger cap", Config{MaxBufferOption: 1 << 20}, 16 << 20, 2 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Addrs = []netip.Addr{addrA}
			s := New(tt.cfg)
			id := s.Open()
			for _, o := range []Option{OptSendBuf, OptRecvBuf} {
				if err := s.SetOption(id, o, tt.v); err != nil {
					t.Fatal(err)
				}
				if got, err := s.GetOption(id, o); err != nil || got != tt.want {
					t.Errorf("option %d set to %d reads %d %v, want %d", o, tt.v, got, err, tt.want)
				}
			}
		})
	}
}

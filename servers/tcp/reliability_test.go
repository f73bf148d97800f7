package tcp

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// fromPeer hands x's stack a segment as if from x's peer: its sequence
// number is x's RCV.NXT plus h.Seq, its ACK x's SND.UNA plus h.Ack, and
// it carries a timestamp in order when x has them on. Its window field is
// h.Window, unscaled.
func (n *testNet) fromPeer(to *Stack, x *tcb, h Header, payload []byte) {
	n.t.Helper()
	h.Seq = x.rcvNxt.Add(int(h.Seq))
	h.Ack = x.sndUna.Add(int(h.Ack))
	if x.tsOK && !h.Opts.TS {
		h.Opts.TS, h.Opts.TSVal, h.Opts.TSEcr = true, x.tsRecent, 0
	}
	n.inject(to, x.remote, x.local, h, payload)
}

// TestRetransmitIntoSmallWindow: segments in flight are lost and the peer
// then offers a window below the MSS and below half the largest it
// offered. The retransmission timer must still send (retransmissions
// bypass the sender's silly-window and Nagle rules, and the first goes even
// into a zero window, as Linux's tcp_retransmit_skb sends it), not expire
// with nothing sent until the connection fails.
func TestRetransmitIntoSmallWindow(t *testing.T) {
	for _, tt := range []struct {
		name   string
		window uint16 // bytes, before scaling
	}{
		{"small window", 400},
		{"zero window", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, Config{}, Config{})
			l := n.listen(80, 8)
			c, s := n.dial(l, 80)
			x := n.a.socks[c]
			n.filter = func(from *Stack, h Header, p []byte) bool { return from != n.a || len(p) == 0 }
			data := pattern(3000, 11)
			if k, err := n.a.Send(n.now, c, data); err != nil || k != len(data) {
				t.Fatalf("send: %d %v", k, err)
			}
			n.collect()
			n.filter = nil
			n.fromPeer(n.a, x, Header{Flags: ACK, Window: tt.window >> x.sndShift}, nil)
			if x.sndWnd >= x.mss || x.sndWnd >= x.maxSndWnd/2 {
				t.Fatalf("set-up: window %d, mss %d, largest window %d", x.sndWnd, x.mss, x.maxSndWnd)
			}
			var got []byte
			buf := make([]byte, 4096)
			n.runUntil("the lost data arrives", time.Minute, func() bool {
				if k, err := n.b.Recv(n.now, s, buf, false); err == nil {
					got = append(got, buf[:k]...)
				}
				return len(got) == len(data)
			})
			if !bytes.Equal(got, data) {
				t.Fatal("data corrupted")
			}
			if st, _ := n.a.State(c); st != Established {
				t.Fatalf("state %v, want ESTABLISHED", st)
			}
		})
	}
}

// TestTSRecentOnlyFromAcceptableSegments: a segment that is dropped (a RST
// or SYN drawing a challenge ACK, an ACK of data never sent, a segment
// without ACK) must not move TS.Recent, or one forged segment with a huge
// TSval makes PAWS drop every genuine segment after it (RFC 7323 4.3, 5.3).
func TestTSRecentOnlyFromAcceptableSegments(t *testing.T) {
	tests := []struct {
		name string
		h    Header // Seq and Ack relative, as fromPeer takes them
		data string
	}{
		{"rst in window", Header{Seq: 100, Flags: RST}, ""},
		{"syn at RCV.NXT", Header{Flags: SYN}, ""},
		{"ack of data never sent", Header{Flags: ACK, Ack: 1 << 20, Window: 1000}, "evil"},
		{"no ack flag", Header{Flags: PSH, Window: 1000}, "evil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, Config{}, Config{})
			l := n.listen(80, 8)
			c, s := n.dial(l, 80)
			x := n.b.socks[s]
			h := tt.h
			h.Opts.TS, h.Opts.TSVal = true, x.tsRecent+1<<30
			n.fromPeer(n.b, x, h, []byte(tt.data))
			if got := n.transfer(n.a, c, n.b, s, []byte("genuine"), false, 5*time.Second); string(got) != "genuine" {
				t.Fatalf("got %q", got)
			}
			if d := n.b.Drops()["paws"]; d != 0 {
				t.Fatalf("%d genuine segments dropped by PAWS after one forged one", d)
			}
		})
	}
}

// TestRenegingReceiver: the peer SACKs data and then discards it (it may,
// RFC 2018 8). After a retransmission timeout the sender must forget the
// SACK scoreboard and resend everything from SND.UNA, or the data the peer
// threw away is never sent again and the transfer stalls.
func TestRenegingReceiver(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	x := n.a.socks[c]
	n.filter = func(from *Stack, h Header, p []byte) bool { return from != n.a || len(p) == 0 }
	data := pattern(8*1448, 12)
	if k, err := n.a.Send(n.now, c, data); err != nil || k != len(data) {
		t.Fatalf("send: %d %v", k, err)
	}
	n.collect()
	n.filter = nil
	// The peer claims all but the first segment, which it then never had.
	n.fromPeer(n.a, x, Header{Flags: ACK, Window: uint16(x.sndWnd >> x.sndShift),
		Opts: Options{SACK: []Block{{x.sndUna.Add(1448), x.sndMax}}}}, nil)
	if len(x.sacked) != 1 {
		t.Fatalf("set-up: scoreboard %v", x.sacked)
	}
	var got []byte
	buf := make([]byte, 16384)
	n.runUntil("all data arrives", time.Minute, func() bool {
		if k, err := n.b.Recv(n.now, s, buf, false); err == nil {
			got = append(got, buf[:k]...)
		}
		return len(got) == len(data)
	})
	if !bytes.Equal(got, data) {
		t.Fatal("data corrupted")
	}
}

// TestRangesBounded: a peer that sends a byte in every other position, or
// SACKs every other byte, cannot make a connection keep more than
// maxRanges ranges; what is past the bound is dropped and counted, and
// the ranges kept are still right.
func TestRangesBounded(t *testing.T) {
	const k = 3 * maxRanges
	t.Run("receiver", func(t *testing.T) {
		n := newNet(t, Config{}, Config{})
		l := n.listen(80, 8)
		_, s := n.dial(l, 80)
		x := n.b.socks[s]
		start := x.rcvNxt
		for i := range k {
			n.fromPeer(n.b, x, Header{Seq: Seq(2*i + 1), Flags: ACK, Window: 1000}, []byte{'x'})
		}
		if len(x.ooo) != maxRanges || n.b.Drops()["ooo-limit"] != k-maxRanges {
			t.Fatalf("%d ranges, %d ooo-limit drops; want %d and %d", len(x.ooo), n.b.Drops()["ooo-limit"], maxRanges, k-maxRanges)
		}
		for i, r := range x.ooo {
			if r.Start != start.Add(2*i+1) || r.End != r.Start+1 {
				t.Fatalf("range %d is %v", i, r)
			}
		}
		// The hole before the first range is filled: the two merge and
		// are delivered, and so on up the kept ranges.
		for i := range maxRanges {
			n.inject(n.b, x.remote, x.local, Header{Seq: start.Add(2 * i), Ack: x.sndUna, Flags: ACK, Window: 1000,
				Opts: Options{TS: true, TSVal: x.tsRecent}}, []byte{'y'})
		}
		if len(x.ooo) != 0 || x.rcvNxt != start.Add(2*maxRanges) {
			t.Fatalf("%d ranges left, RCV.NXT at %d; want none and %d", len(x.ooo), x.rcvNxt.Diff(start), 2*maxRanges)
		}
	})
	t.Run("sender", func(t *testing.T) {
		n := newNet(t, Config{}, Config{})
		l := n.listen(80, 8)
		c, _ := n.dial(l, 80)
		x := n.a.socks[c]
		n.filter = func(from *Stack, h Header, p []byte) bool { return from != n.a || len(p) == 0 }
		n.a.Send(n.now, c, make([]byte, 2*k+2))
		n.collect()
		n.filter = nil
		for i := range k {
			b := x.sndUna.Add(2*i + 1)
			n.fromPeer(n.a, x, Header{Flags: ACK, Window: uint16(x.sndWnd >> x.sndShift), Opts: Options{SACK: []Block{{b, b + 1}}}}, nil)
		}
		if len(x.sacked) != maxRanges || n.a.Drops()["sack-limit"] != k-maxRanges {
			t.Fatalf("%d scoreboard ranges, %d sack-limit drops; want %d and %d", len(x.sacked), n.a.Drops()["sack-limit"], maxRanges, k-maxRanges)
		}
	})
}

// TestResetBeforeAccept: a connection reset while it waits in the accept
// queue is still handed to accept, as Linux hands it (tcp_reset leaves the
// child on the queue with sk_err set): the first read fails with
// ECONNRESET, later ones read end of file, and a send gets EPIPE.
func TestResetBeforeAccept(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c := n.a.Open()
	n.a.Connect(n.now, c, netip.AddrPortFrom(addrB, 80))
	n.runUntil("queued", time.Second, func() bool { return len(n.b.socks[l].acceptQ) == 1 })
	n.runFor(time.Millisecond)
	if err := n.a.Abort(n.now, c); err != nil {
		t.Fatal(err)
	}
	n.runFor(time.Millisecond)
	if r, _ := n.b.Ready(l); r&ReadyIn == 0 {
		t.Fatalf("listener ready %b, want IN", r)
	}
	s, _, err := n.b.Accept(l)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	if r, _ := n.b.Ready(s); r&(ReadyErr|ReadyHup) != ReadyErr|ReadyHup {
		t.Fatalf("accepted socket ready %b, want ERR|HUP", r)
	}
	buf := make([]byte, 8)
	if _, err := n.b.Recv(n.now, s, buf, false); !errors.Is(err, ErrConnReset) {
		t.Fatalf("first recv: %v, want ErrConnReset", err)
	}
	if k, err := n.b.Recv(n.now, s, buf, false); k != 0 || err != nil {
		t.Fatalf("second recv: %d %v, want end of file", k, err)
	}
	if _, err := n.b.Send(n.now, s, []byte("x")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("send: %v, want ErrShutdown (EPIPE)", err)
	}
	if err := n.b.Close(n.now, s); err != nil {
		t.Fatal(err)
	}
	if st := n.b.ByState(); len(st) != 1 || st[Listen] != 1 {
		t.Fatalf("states %v, want the listener only", st)
	}
}

// TestListenDropsSynFin: a SYN with FIN set reaching a listener is
// dropped and counted, without an answer or a half-open connection, as
// Linux drops it (tcp_rcv_state_process: "if (th->fin) goto discard").
func TestListenDropsSynFin(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	n.inject(n.b, netip.AddrPortFrom(addrA, 40000), netip.AddrPortFrom(addrB, 80), Header{Seq: 1000, Flags: SYN | FIN, Window: 65535}, nil)
	if out := n.b.Out(); len(out) != 0 {
		t.Fatalf("%d segments in answer, want none", len(out))
	}
	if d := n.b.Drops()["listen-syn-fin"]; d != 1 || len(n.b.socks[l].embryos) != 0 {
		t.Fatalf("listen-syn-fin drops %d, %d half-open; want 1 and none", d, len(n.b.socks[l].embryos))
	}
}

// TestBackoffKeptUntilSample: after timeouts have backed the RTO off, the
// ACK of a retransmitted segment gives no RTT sample (Karn) and so must
// not bring the RTO back down; the next valid sample does (RFC 6298 5.5,
// 5.7).
func TestBackoffKeptUntilSample(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	x := n.a.socks[c]
	base := x.rto
	lost := 0
	var backed time.Duration
	n.filter = func(from *Stack, h Header, p []byte) bool {
		if from != n.a || len(p) == 0 {
			return true
		}
		if lost < 3 {
			lost++
			return false
		}
		backed = x.rto
		return true
	}
	if got := n.transfer(n.a, c, n.b, s, []byte("late"), false, time.Minute); string(got) != "late" {
		t.Fatalf("got %q", got)
	}
	n.runUntil("acknowledged", time.Minute, func() bool { return x.sndUna == x.sndMax })
	if backed != 8*base || x.rto != backed {
		t.Fatalf("RTO %v after the ACK of a retransmission, %v when it was sent, %v before; want it kept at 8 times", x.rto, backed, base)
	}
	n.filter = nil
	n.transfer(n.a, c, n.b, s, []byte("on time"), false, time.Minute)
	n.runUntil("acknowledged", time.Minute, func() bool { return x.sndUna == x.sndMax })
	if x.rto >= backed {
		t.Fatalf("RTO %v after a valid sample, want it back below %v", x.rto, backed)
	}
}

// TestPersistGivesUp: a sender probing a zero window whose peer stops
// answering gives up after Config.Retries unanswered probes with
// ETIMEDOUT, as Linux gives up after tcp_retries2 (tcp_probe_timer); while
// the probes are answered it never does (TestZeroWindow).
func TestPersistGivesUp(t *testing.T) {
	n := newNet(t, Config{Retries: 3}, Config{RecvBuffer: 8192})
	l := n.listen(80, 8)
	c, _ := n.dial(l, 80)
	x := n.a.socks[c]
	n.a.Send(n.now, c, pattern(100000, 13))
	n.runUntil("zero window", time.Minute, func() bool { return x.persist && x.sndWnd == 0 })
	n.filter = func(from *Stack, h Header, p []byte) bool { return from != n.b } // the peer is gone
	n.runUntil("timed out", time.Hour, func() bool { st, _ := n.a.State(c); return st == Closed })
	if e, _ := n.a.TakeError(c); !errors.Is(e, ErrTimedOut) {
		t.Fatalf("error %v, want ErrTimedOut", e)
	}
}

// TestKeepalive: SO_KEEPALIVE probes an idle connection after the idle
// time (Linux's defaults: 7200 s, then every 75 s, 9 probes) and, when
// the probes go unanswered, resets it and fails it with ETIMEDOUT; an
// answered probe keeps it up. TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT
// change the times, and a listener's setting passes to the connections it
// accepts.
func TestKeepalive(t *testing.T) {
	tests := []struct {
		name             string
		idle, intvl, cnt int // 0: the default
		onListener       bool
		want             time.Duration // from the last ACK heard to the failure
	}{
		{"defaults", 0, 0, 0, false, 7200*time.Second + 9*75*time.Second},
		{"set", 10, 2, 3, false, 16 * time.Second},
		{"inherited from the listener", 30, 5, 2, true, 40 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, Config{}, Config{})
			l := n.listen(80, 8)
			set := func(st *Stack, id SockID) {
				for _, o := range []struct {
					o Option
					v int
				}{{OptKeepAlive, 1}, {OptKeepIdle, tt.idle}, {OptKeepIntvl, tt.intvl}, {OptKeepCnt, tt.cnt}} {
					if o.v == 0 {
						continue
					}
					if err := st.SetOption(id, o.o, o.v); err != nil {
						t.Fatalf("set option %d: %v", o.o, err)
					}
				}
			}
			if tt.onListener {
				set(n.b, l)
			}
			c, s := n.dial(l, 80)
			st, id := n.b, s
			if !tt.onListener {
				st, id = n.a, c
				set(st, id)
			}
			if v, err := st.GetOption(id, OptKeepAlive); v != 1 || err != nil {
				t.Fatalf("SO_KEEPALIVE %d %v, want 1", v, err)
			}
			x := st.socks[id]
			idle, intvl, cnt := x.keepTimes()
			// An idle connection is probed, the peer answers, and it stays up.
			probes := 0
			n.filter = func(from *Stack, h Header, p []byte) bool {
				if from == st && len(p) == 0 && h.Seq == x.sndUna-1 {
					probes++
				}
				return true
			}
			n.runFor(idle + intvl/2)
			if probes != 1 || x.state != Established {
				t.Fatalf("%d probes in the first idle time, state %v; want 1, ESTABLISHED", probes, x.state)
			}
			n.runFor(idle / 2)
			if probes != 1 {
				t.Fatalf("%d probes: an answered probe should restart the idle time", probes)
			}
			// The peer goes away.
			heard := x.heard
			n.filter = func(from *Stack, h Header, p []byte) bool {
				if from == st && len(p) == 0 && h.Seq == x.sndUna-1 {
					probes++
				}
				return from == st
			}
			probes = 0
			rsts := n.a.Stats().Resets + n.b.Stats().Resets
			n.runUntil("timed out", 3*time.Hour, func() bool { return x.state == Closed })
			if got := n.now.Sub(heard); got != tt.want || got != idle+time.Duration(cnt)*intvl {
				t.Fatalf("failed %v after the peer was last heard, want %v", got, tt.want)
			}
			if probes != cnt || n.a.Stats().Resets+n.b.Stats().Resets != rsts+1 {
				t.Fatalf("%d probes, %d RSTs; want %d and one", probes, n.a.Stats().Resets+n.b.Stats().Resets-rsts, cnt)
			}
			if tt.onListener {
				if _, err := st.Recv(n.now, id, make([]byte, 1), false); !errors.Is(err, ErrTimedOut) {
					t.Fatalf("recv: %v, want ErrTimedOut", err)
				}
			} else if e, _ := st.TakeError(id); !errors.Is(e, ErrTimedOut) {
				t.Fatalf("error %v, want ErrTimedOut", e)
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		n := newNet(t, Config{}, Config{})
		l := n.listen(80, 8)
		c, _ := n.dial(l, 80)
		sent := n.sent
		n.runFor(3 * time.Hour)
		if st, _ := n.a.State(c); n.sent != sent || st != Established {
			t.Fatalf("%d segments in 3 idle hours without SO_KEEPALIVE, state %v", n.sent-sent, st)
		}
	})
	t.Run("bounds", func(t *testing.T) {
		s := New(Config{Addrs: []netip.Addr{addrA}, Secret: 1})
		id := s.Open()
		for _, tt := range []struct {
			o Option
			v int
		}{{OptKeepIdle, 0}, {OptKeepIdle, 32768}, {OptKeepIntvl, 0}, {OptKeepCnt, 0}, {OptKeepCnt, 128}} {
			if err := s.SetOption(id, tt.o, tt.v); !errors.Is(err, ErrInvalid) {
				t.Errorf("option %d = %d: %v, want ErrInvalid", tt.o, tt.v, err)
			}
		}
		for o, want := range map[Option]int{OptKeepAlive: 0, OptKeepIdle: 7200, OptKeepIntvl: 75, OptKeepCnt: 9} {
			if v, err := s.GetOption(id, o); v != want || err != nil {
				t.Errorf("option %d: %d %v, want %d", o, v, err, want)
			}
		}
	})
}

// TestSynAckRetries: a listener's half-open connection sends its SYN-ACK
// again 5 times (Linux's tcp_synack_retries), at 1, 3, 7, 15 and 31 s,
// and is gone at 63 s.
func TestSynAckRetries(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	synAcks := 0
	n.filter = func(from *Stack, h Header, p []byte) bool {
		if from == n.b && h.Flags&(SYN|ACK) == SYN|ACK {
			synAcks++
		}
		return false
	}
	start := n.now
	n.inject(n.b, netip.AddrPortFrom(addrA, 40000), netip.AddrPortFrom(addrB, 80), Header{Seq: 1000, Flags: SYN, Window: 65535}, nil)
	n.runUntil("dropped", 10*time.Minute, func() bool { return len(n.b.socks[l].embryos) == 0 })
	if d := n.now.Sub(start); synAcks != 6 || d != 63*time.Second {
		t.Fatalf("%d SYN-ACKs, dropped after %v; want 6 and 63s", synAcks, d)
	}
}

// TestSynCookies: a SYN that finds the listener's queue of half-open
// connections full is answered with a SYN cookie (as Linux with
// tcp_syncookies = 1); the ACK that brings a valid cookie back makes the
// connection, which carries data both ways; a forged or stale cookie is
// refused with a RST and counted.
func TestSynCookies(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 2)
	var clients, accepted []SockID
	for range 5 {
		c := n.a.Open()
		n.a.Connect(n.now, c, netip.AddrPortFrom(addrB, 80))
		clients = append(clients, c)
	}
	n.runUntil("all accepted", 10*time.Second, func() bool {
		if id, _, err := n.b.Accept(l); err == nil {
			accepted = append(accepted, id)
		}
		return len(accepted) == 5
	})
	st := n.b.Stats()
	if st.SynCookiesSent != 3 || st.SynCookiesValidated != 3 || st.SynCookiesFailed != 0 || n.b.Drops()["backlog-full"] != 0 {
		t.Fatalf("cookies sent %d, validated %d, failed %d, backlog-full drops %d; want 3, 3, 0, 0",
			st.SynCookiesSent, st.SynCookiesValidated, st.SynCookiesFailed, n.b.Drops()["backlog-full"])
	}
	for i, c := range clients {
		s := accepted[i]
		x := n.b.socks[s]
		if cookie := i >= 2; cookie != (!x.wsOK && !x.tsOK && !x.sackOK) || x.mss != 1460 && cookie {
			t.Fatalf("connection %d: ws %v ts %v sack %v mss %d", i, x.wsOK, x.tsOK, x.sackOK, x.mss)
		}
		data := pattern(200000, uint64(i))
		if got := n.transfer(n.a, c, n.b, s, data, false, 10*time.Second); !bytes.Equal(got, data) {
			t.Fatalf("connection %d: data corrupted", i)
		}
		if got := n.transfer(n.b, s, n.a, c, data, false, 10*time.Second); !bytes.Equal(got, data) {
			t.Fatalf("connection %d: data corrupted on the way back", i)
		}
	}
	// Cookies made by hand: one from a minute ago is good, one from three
	// minutes ago and a forged one are not.
	tests := []struct {
		name string
		ago  uint32 // minutes
		xor  Seq
		ok   bool
	}{
		{"a minute old", 1, 0, true},
		{"three minutes old", 3, 0, false},
		{"forged", 0, 1 << 12, false},
	}
	for _, port := range []uint16{42000, 42001} { // half-open connections fill the queue
		n.inject(n.b, netip.AddrPortFrom(addrA, port), netip.AddrPortFrom(addrB, 80), Header{Seq: 1000, Flags: SYN, Window: 65535}, nil)
	}
	for i, tt := range tests {
		from := netip.AddrPortFrom(addrA, uint16(41000+i))
		tu := tuple{netip.AddrPortFrom(addrB, 80), from}
		n.inject(n.b, from, tu.local, Header{Seq: 5000, Flags: SYN, Window: 65535}, nil) // a SYN the full queue answers with a cookie
		n.b.Out()
		cookie := n.b.cookie(tu, 5000, cookieCount(n.now)-tt.ago, 2) ^ tt.xor
		before := n.b.Stats()
		n.inject(n.b, from, tu.local, Header{Seq: 5001, Ack: cookie + 1, Flags: ACK, Window: 65535}, nil)
		after := n.b.Stats()
		_, made := n.b.conns[tu]
		if made != tt.ok || after.SynCookiesValidated-before.SynCookiesValidated != b2u(tt.ok) ||
			after.SynCookiesFailed-before.SynCookiesFailed != b2u(!tt.ok) || after.Resets-before.Resets != b2u(!tt.ok) {
			t.Fatalf("%s: connection made %v, validated %d, failed %d, RSTs %d", tt.name, made,
				after.SynCookiesValidated-before.SynCookiesValidated, after.SynCookiesFailed-before.SynCookiesFailed, after.Resets-before.Resets)
		}
		if made && n.b.conns[tu].mss != cookieMSS[2] {
			t.Fatalf("%s: MSS %d, want %d", tt.name, n.b.conns[tu].mss, cookieMSS[2])
		}
		n.b.Accept(l)
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// TestCaps: TIME-WAIT, orphans and buffer memory are capped, and what
// goes past a cap is counted: a connection that would be one more in
// TIME-WAIT acknowledges the FIN and closes at once (Linux's
// tcp_max_tw_buckets), a close that would leave one orphan too many
// resets (tcp_max_orphans), and past the memory cap data that needs a new
// buffer is dropped and a send that needs one fails with ENOBUFS
// (tcp_mem).
func TestCaps(t *testing.T) {
	t.Run("time-wait", func(t *testing.T) {
		n := newNet(t, Config{}, Config{MaxTimeWait: 2})
		l := n.listen(80, 8)
		for range 4 {
			c, s := n.dial(l, 80)
			n.b.Close(n.now, s) // b closes first: b goes to TIME-WAIT
			n.runFor(time.Millisecond)
			n.a.Close(n.now, c)
			n.runFor(time.Millisecond)
		}
		if st := n.b.ByState(); st[TimeWait] != 2 || n.b.Stats().TimeWaitOverflows != 2 {
			t.Fatalf("b: %v, %d overflows; want 2 in TIME-WAIT and 2 overflows", st, n.b.Stats().TimeWaitOverflows)
		}
		if st := n.a.ByState(); len(st) != 0 {
			t.Fatalf("a: %v, want every connection closed (each FIN acknowledged)", st)
		}
	})
	t.Run("orphans", func(t *testing.T) {
		n := newNet(t, Config{}, Config{MaxOrphans: 1})
		l := n.listen(80, 8)
		n.filter = func(from *Stack, h Header, p []byte) bool { return from != n.a || len(p) == 0 && h.Flags&FIN == 0 }
		var ss []SockID
		for range 2 {
			_, s := n.dial(l, 80)
			ss = append(ss, s)
		}
		n.filter = func(from *Stack, h Header, p []byte) bool { return from != n.a } // a goes silent
		for _, s := range ss {
			n.b.Send(n.now, s, []byte("unacknowledged"))
			n.b.Close(n.now, s)
		}
		if n.b.orphans != 1 || n.b.Stats().OrphanResets != 1 {
			t.Fatalf("%d orphans, %d resets; want 1 and 1", n.b.orphans, n.b.Stats().OrphanResets)
		}
		n.runFor(time.Hour)
		if n.b.orphans != 0 || len(n.b.ByState()) != 1 {
			t.Fatalf("%d orphans, states %v after they timed out", n.b.orphans, n.b.ByState())
		}
	})
	t.Run("memory", func(t *testing.T) {
		n := newNet(t, Config{}, Config{MaxMemory: DefaultBuffer + DefaultBuffer/2})
		l := n.listen(80, 8)
		c1, s1 := n.dial(l, 80)
		c2, s2 := n.dial(l, 80)
		if got := n.transfer(n.a, c1, n.b, s1, []byte("first"), false, time.Second); string(got) != "first" {
			t.Fatalf("got %q", got)
		}
		n.a.Send(n.now, c2, []byte("second"))
		n.runFor(100 * time.Millisecond)
		if d := n.b.Drops()["memory"]; d == 0 {
			t.Fatal("no memory drops: the second receive buffer went past the cap")
		}
		if _, err := n.b.Send(n.now, s2, []byte("x")); !errors.Is(err, ErrNoBuffers) {
			t.Fatalf("send past the cap: %v, want ErrNoBuffers", err)
		}
		if n.b.Memory() > DefaultBuffer+DefaultBuffer/2 {
			t.Fatalf("%d bytes of buffers, over the cap", n.b.Memory())
		}
		// The first connection closes and gives its buffer back: the
		// second one's data arrives when sent again.
		n.b.Close(n.now, s1)
		n.a.Close(n.now, c1)
		n.runFor(time.Second)
		var got []byte
		buf := make([]byte, 16)
		n.runUntil("second arrives", time.Minute, func() bool {
			if k, err := n.b.Recv(n.now, s2, buf, false); err == nil {
				got = append(got, buf[:k]...)
			}
			return string(got) == "second"
		})
	})
	t.Run("reset before accept keeps the data", func(t *testing.T) {
		n := newNet(t, Config{}, Config{})
		l := n.listen(80, 8)
		c := n.a.Open()
		n.a.Connect(n.now, c, netip.AddrPortFrom(addrB, 80))
		n.runUntil("established", time.Second, func() bool { st, _ := n.a.State(c); return st == Established })
		n.a.Send(n.now, c, []byte("data"))
		n.runFor(time.Millisecond)
		n.a.Abort(n.now, c)
		n.runFor(time.Millisecond)
		s, _, err := n.b.Accept(l)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		if k, err := n.b.Recv(n.now, s, buf, false); string(buf[:k]) != "data" || err != nil {
			t.Fatalf("recv %q %v, want the data", buf[:k], err)
		}
		if _, err := n.b.Recv(n.now, s, buf, false); !errors.Is(err, ErrConnReset) {
			t.Fatalf("recv %v, want ErrConnReset", err)
		}
		n.b.Close(n.now, s)
		if n.b.Memory() != 0 {
			t.Fatalf("%d bytes of buffers held with no connection", n.b.Memory())
		}
	})
}

// TestChallengeACKLimit: challenge ACKs are limited per connection, one
// each 500 ms (Linux's tcp_invalid_ratelimit), so that one connection's
// challenges say nothing of another's (CVE-2016-5696); with a global cap
// set, each second's budget is drawn at random around it.
func TestChallengeACKLimit(t *testing.T) {
	challenge := func(n *testNet, x *tcb) int {
		n.b.Out()
		n.fromPeer(n.b, x, Header{Seq: 100, Flags: RST}, nil)
		return len(n.b.Out())
	}
	t.Run("per connection", func(t *testing.T) {
		n := newNet(t, Config{}, Config{})
		l := n.listen(80, 8)
		_, s1 := n.dial(l, 80)
		_, s2 := n.dial(l, 80)
		x1, x2 := n.b.socks[s1], n.b.socks[s2]
		n.runFor(time.Second)
		if got := []int{challenge(n, x1), challenge(n, x1), challenge(n, x2)}; got[0] != 1 || got[1] != 0 || got[2] != 1 {
			t.Fatalf("answers %v, want [1 0 1]: one each per connection", got)
		}
		if d := n.b.Drops()["challenge-limited"]; d != 1 {
			t.Fatalf("challenge-limited drops %d, want 1", d)
		}
		n.now = n.now.Add(499 * time.Millisecond)
		if got := challenge(n, x1); got != 0 {
			t.Fatal("a second challenge ACK within 500 ms")
		}
		n.now = n.now.Add(time.Millisecond)
		if got := challenge(n, x1); got != 1 {
			t.Fatal("no challenge ACK after 500 ms")
		}
	})
	t.Run("global budget", func(t *testing.T) {
		n := newNet(t, Config{}, Config{ChallengeACKs: 100, InvalidRateLimit: time.Nanosecond})
		l := n.listen(80, 8)
		_, s := n.dial(l, 80)
		x := n.b.socks[s]
		n.runFor(time.Second)
		n.now = n.now.Truncate(time.Second)
		var budgets []int
		for range 8 {
			sent := 0
			for range 1000 {
				n.now = n.now.Add(time.Microsecond)
				sent += challenge(n, x)
			}
			if sent < 50 || sent > 149 {
				t.Fatalf("%d challenge ACKs in a second, want 50 to 149", sent)
			}
			budgets = append(budgets, sent)
			n.now = n.now.Truncate(time.Second).Add(time.Second)
		}
		if slices.Min(budgets) == slices.Max(budgets) {
			t.Fatalf("budgets %v: the same every second", budgets)
		}
	})
}

// TestSecretNeverZero: a Stack never keys its initial sequence numbers
// with a zero secret: left zero, the secret is random, so that two hosts
// (or two runs) do not choose the same ISNs, ports and cookies (RFC 6528
// 3). A secret set by the caller is kept, for deterministic tests.
func TestSecretNeverZero(t *testing.T) {
	tu := tuple{netip.AddrPortFrom(addrA, 40000), netip.AddrPortFrom(addrB, 80)}
	a, b := New(Config{Addrs: []netip.Addr{addrA}}), New(Config{Addrs: []netip.Addr{addrA}})
	if a.c.Secret == 0 || b.c.Secret == 0 || a.isn(epoch, tu) == b.isn(epoch, tu) {
		t.Fatalf("secrets %#x %#x, ISNs %d %d: want random secrets", a.c.Secret, b.c.Secret, a.isn(epoch, tu), b.isn(epoch, tu))
	}
	if s := New(Config{Secret: 42}); s.c.Secret != 42 {
		t.Fatalf("secret %d, want the one given", s.c.Secret)
	}
}

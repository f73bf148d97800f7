package tcp

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// pureACKs counts the segments in out that carry no data, no SYN and no
// FIN: ACKs alone.
func pureACKs(out []Segment) int {
	k := 0
	for _, seg := range out {
		if h, p, err := Parse(seg.Data); err == nil && len(p) == 0 && h.Flags&(SYN|FIN|RST) == 0 {
			k++
		}
	}
	return k
}

// TestDelayedAck: when b acknowledges at once and when it waits, as
// Linux's delayed-ACK engine decides: each segment at the start of a
// connection (quick-ACK mode), every other segment, the read that empties
// the buffer after a short segment (tcp_cleanup_rbuf), and an interactive
// connection's ACKs riding on the answers, with the delayed-ACK timer as
// the fallback, which ends the interactive mode.
func TestDelayedAck(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	n.a.SetOption(c, OptNoDelay, 1)
	n.b.SetOption(s, OptNoDelay, 1)
	sc := n.b.socks[s]
	buf := make([]byte, 64<<10)
	// arrive sends b from a and hands it to b, leaving what b answers in
	// b's output.
	arrive := func(b []byte) {
		t.Helper()
		n.b.Out()
		if k, err := n.a.Send(n.now, c, b); err != nil || k != len(b) {
			t.Fatalf("send: %d, %v", k, err)
		}
		n.collect()
		for len(n.inflight) > 0 {
			n.deliver()
		}
	}
	read := func() {
		t.Helper()
		if _, err := n.b.Recv(n.now, s, buf, false); err != nil {
			t.Fatalf("recv: %v", err)
		}
	}
	settle := func() { n.collect(); n.runFor(time.Millisecond) }

	// Quick-ACK mode: the first data is acknowledged at once.
	arrive([]byte("one"))
	if k := pureACKs(n.b.Out()); k != 1 {
		t.Fatalf("the first data drew %d ACKs at once, want 1 (quick-ACK mode)", k)
	}
	read()
	// Interactive: b answers within a delayed-ACK time of the request,
	// and from then on the answer carries the ACK.
	n.b.Send(n.now, s, []byte("ONE"))
	settle()
	if !sc.pingpong {
		t.Fatal("an answer at once did not make the connection interactive")
	}
	arrive([]byte("two"))
	if k := pureACKs(n.b.Out()); k != 0 {
		t.Fatalf("an interactive connection's request drew %d ACKs at once, want 0", k)
	}
	read()
	if k := pureACKs(n.b.Out()); k != 0 {
		t.Fatalf("reading an interactive connection's request drew %d ACKs, want 0 (the answer carries it)", k)
	}
	n.b.Send(n.now, s, []byte("TWO"))
	out := n.b.Out()
	if len(out) != 1 {
		t.Fatalf("the answer went as %d segments, want 1", len(out))
	}
	if h, p, _ := Parse(out[0].Data); len(p) != 3 || h.Ack != sc.rcvNxt {
		t.Fatalf("the answer (%d bytes) acknowledges %d, want %d", len(p), h.Ack, sc.rcvNxt)
	}
	settle()
	// No answer: the delayed ACK's timer, and the connection is no
	// longer taken for interactive.
	arrive([]byte("three"))
	read()
	at := n.now
	n.runUntil("delayed ack", time.Second, func() bool { return n.a.socks[c].sndUna == n.a.socks[c].sndMax })
	if d := n.now.Sub(at); d < DefaultDelayedAck || d > DefaultDelayedAck+time.Millisecond {
		t.Fatalf("ACK after %v, want about %v", d, DefaultDelayedAck)
	}
	if sc.pingpong {
		t.Fatal("still interactive after the delayed-ACK timer")
	}
	// Spend the quick ACKs: a segment read at once goes on being
	// acknowledged at once, by the quick-ACK mode, then by the read.
	for i := 0; sc.quickAcks > 0; i++ {
		if i > maxQuickAcks {
			t.Fatalf("quick-ACK mode outlasted %d segments", maxQuickAcks)
		}
		arrive([]byte("q"))
		read()
		settle()
	}
	arrive([]byte("four"))
	if k := pureACKs(n.b.Out()); k != 0 {
		t.Fatalf("a short segment drew %d ACKs before it was read, want 0 (delayed)", k)
	}
	read()
	if k := pureACKs(n.b.Out()); k != 1 {
		t.Fatalf("the read that emptied the buffer after a short segment drew %d ACKs, want 1 (tcp_cleanup_rbuf)", k)
	}
	settle()
	// Two full segments are acknowledged at once.
	arrive(pattern(2*sc.rcvMSS, 1))
	if k := pureACKs(n.b.Out()); k != 1 {
		t.Fatalf("%d ACKs after two full segments, want 1 at once", k)
	}
}

// TestShortLastSegmentNotDelayed: a transfer that ends in a short segment,
// which Nagle's rule holds until everything before it is acknowledged,
// does not wait for a delayed ACK at the end: the receiver's read that
// takes the last full segments acknowledges them (before, one delayed-ACK
// timeout, 40 ms, went to each such transfer). Over the network of the
// tests, well past the quick-ACK mode.
func TestShortLastSegmentNotDelayed(t *testing.T) {
	n := newNet(t, Config{}, Config{})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	for i, size := range []int{300 << 10, 100*1448 + 300, 7*1448 + 1, 10<<10 + 17} {
		data := pattern(size, uint64(i))
		start := n.now
		if got := n.transfer(n.a, c, n.b, s, data, false, 10*time.Second); !bytes.Equal(got, data) {
			t.Fatalf("transfer %d: data corrupted", i)
		}
		n.runFor(time.Millisecond) // the last ACK home
		if took := n.now.Sub(start); took >= DefaultDelayedAck {
			t.Errorf("transfer %d of %d bytes took %v of simulated time, want less than a delayed ACK (%v)", i, size, took, DefaultDelayedAck)
		}
		if sc := n.a.socks[c]; sc.sndUna != sc.sndMax {
			t.Fatalf("transfer %d: not all acknowledged", i)
		}
	}
}

// TestNoWindowUpdateBeyondTheField: without window scaling a buffer larger
// than 64 KiB cannot be advertised beyond 65535 bytes, so a read that
// frees buffer past that opens no window and sends no update (it sent one
// for every read).
func TestNoWindowUpdateBeyondTheField(t *testing.T) {
	cfg := Config{NoWindowScale: true}
	n := newNet(t, cfg, cfg)
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	if sc := n.b.socks[s]; sc.rcv.cap() <= 0xffff {
		t.Fatalf("receive buffer %d bytes, want more than the window field holds", sc.rcv.cap())
	}
	n.a.SetOption(c, OptNoDelay, 1)
	n.a.Send(n.now, c, pattern(2*1460, 1)) // three segments, ACKed at once in quick-ACK mode
	n.collect()
	for len(n.inflight) > 0 {
		n.deliver()
	}
	if sc := n.b.socks[s]; sc.lastAckSent != sc.rcvNxt {
		t.Fatal("the data was not all acknowledged at once")
	}
	n.b.Out()
	if k, err := n.b.Recv(n.now, s, make([]byte, 1<<20), false); err != nil || k != 2*1460 {
		t.Fatalf("recv: %d, %v", k, err)
	}
	if out := n.b.Out(); len(out) != 0 {
		t.Fatalf("the read sent %d segments, want none: the window field was at its most already", len(out))
	}
}

// TestFINAckRidesOnOurFIN: the ACK of the peer's FIN waits, as Linux's
// tcp_fin has it: an application that closes at once sends one segment,
// its FIN carrying the ACK (it was an ACK and then a FIN); one that does
// not close gets the ACK out on the delayed ACK's timer.
func TestFINAckRidesOnOurFIN(t *testing.T) {
	for _, closes := range []bool{true, false} {
		n := newNet(t, Config{}, Config{})
		l := n.listen(80, 8)
		c, s := n.dial(l, 80)
		n.transfer(n.a, c, n.b, s, []byte("request"), false, time.Second)
		n.runFor(time.Second) // quiet: every ACK home
		n.b.Out()
		n.a.Shutdown(n.now, c, false, true) // the client is done
		n.collect()
		for len(n.inflight) > 0 {
			n.deliver()
		}
		sc := n.b.socks[s]
		if sc.state != CloseWait {
			t.Fatalf("server in %v after the FIN, want CLOSE-WAIT", sc.state)
		}
		if out := n.b.Out(); len(out) != 0 {
			t.Fatalf("closes=%v: the FIN drew %d segments at once, want none (the ACK waits)", closes, len(out))
		}
		if closes {
			if err := n.b.Close(n.now, s); err != nil {
				t.Fatal(err)
			}
			out := n.b.Out()
			if len(out) != 1 {
				t.Fatalf("the close sent %d segments, want 1", len(out))
			}
			if h, _, _ := Parse(out[0].Data); h.Flags&(FIN|ACK) != FIN|ACK || h.Ack != sc.rcvNxt {
				t.Fatalf("the close sent flags %b ack %d, want FIN|ACK acknowledging the FIN (%d)", h.Flags, h.Ack, sc.rcvNxt)
			}
			continue
		}
		at := n.now
		n.runUntil("the FIN's ACK", time.Second, func() bool { st, _ := n.a.State(c); return st == FinWait2 })
		if d := n.now.Sub(at); d < DefaultDelayedAck || d > DefaultDelayedAck+time.Millisecond {
			t.Fatalf("the FIN acknowledged after %v, want the delayed ACK's %v", d, DefaultDelayedAck)
		}
	}
}

// TestSendVOneSegment: a header and a body given to SendV together go out
// in one segment, as writev(2)'s buffers do; Send of each in turn gives
// two (the monolith's httpd sent every response as two before SendV).
func TestSendVOneSegment(t *testing.T) {
	for _, tt := range []struct {
		name     string
		together bool
		segments int
	}{
		{"SendV", true, 1},
		{"Send twice", false, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet(t, Config{}, Config{})
			l := n.listen(80, 8)
			c, s := n.dial(l, 80)
			var segs []int
			n.filter = func(from *Stack, h Header, payload []byte) bool {
				if from == n.a && len(payload) > 0 {
					segs = append(segs, len(payload))
				}
				return true
			}
			hdr, body := []byte("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"), pattern(20, 7)
			if tt.together {
				if k, err := n.a.SendV(n.now, c, [][]byte{hdr, body}); k != len(hdr)+len(body) || err != nil {
					t.Fatalf("SendV = %d, %v", k, err)
				}
			} else {
				for _, b := range [][]byte{hdr, body} {
					if k, err := n.a.Send(n.now, c, b); k != len(b) || err != nil {
						t.Fatalf("Send = %d, %v", k, err)
					}
				}
			}
			n.collect()
			n.runFor(time.Millisecond)
			got := make([]byte, 200)
			k, err := n.b.Recv(n.now, s, got, false)
			if err != nil || !bytes.Equal(got[:k], append(slices.Clone(hdr), body...)) {
				t.Fatalf("received %q, %v", got[:k], err)
			}
			if len(segs) != tt.segments {
				t.Errorf("data segments %v, want %d", segs, tt.segments)
			}
		})
	}
}

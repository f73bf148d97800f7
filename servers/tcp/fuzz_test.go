package tcp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// FuzzInput feeds a segment of any bytes to connections in every state
// the fuzzer can reach: a listener, one half-open and one established
// connection, and one in each closing state. Nothing may panic, and the
// stack's invariants must hold afterwards.
func FuzzInput(f *testing.F) {
	seed := func(flags uint8, seq, ack uint32, payload string, opts Options) []byte {
		h := Header{SrcPort: 1000, DstPort: 80, Seq: Seq(seq), Ack: Seq(ack), Flags: flags, Window: 1000, Opts: opts}
		b := make([]byte, HeaderLen+optionsLen(&h.Opts, flags&SYN != 0)+len(payload))
		return b[:h.Marshal(b, []byte(payload))]
	}
	f.Add(uint8(0), seed(SYN, 1, 0, "", Options{MSS: 1460, WS: 7, TS: true, SACKPerm: true}))
	f.Add(uint8(1), seed(ACK, 1, 1, "data", Options{WS: -1}))
	f.Add(uint8(2), seed(RST, 1, 0, "", Options{WS: -1}))
	f.Add(uint8(3), seed(FIN|ACK, 1, 1, "", Options{WS: -1, TS: true}))
	f.Add(uint8(4), seed(ACK, 1, 1, "", Options{WS: -1, SACK: []Block{{1, 2}}}))
	f.Add(uint8(5), []byte{0, 1, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0xf0, 2, 0, 0, 0, 0, 0, 0, 2, 40})
	f.Fuzz(func(t *testing.T, which uint8, seg []byte) {
		n := newNet(t, Config{}, Config{})
		l := n.listen(80, 4)
		c, s := n.dial(l, 80)
		n.transfer(n.a, c, n.b, s, []byte("some data"), false, time.Second)
		// Put other connections in closing states.
		c2, s2 := n.dial(l, 80)
		n.b.Shutdown(n.now, s2, false, true) // FIN-WAIT
		n.runFor(time.Millisecond)
		_ = c2
		targets := []netip.AddrPort{netip.AddrPortFrom(addrA, 0)}
		for _, x := range n.b.conns {
			targets = append(targets, x.remote)
		}
		src := targets[int(which)%len(targets)]
		if len(seg) >= 4 && src.Port() != 0 {
			seg[0], seg[1] = byte(src.Port()>>8), byte(src.Port()) // aim at a live connection
			seg[2], seg[3] = 0, 80
		}
		if len(seg) >= 18 && which&0x80 == 0 {
			seg[16], seg[17] = 0, 0
			cs := checksumOf(src.Addr(), addrB, seg)
			seg[16], seg[17] = byte(cs>>8), byte(cs)
		}
		before := n.sent
		n.b.Input(n.now, src.Addr(), addrB, seg)
		n.runFor(3 * time.Minute) // every timer that can, runs
		if n.sent-before > 2000 {
			t.Fatalf("%d segments after one hostile one: an ACK war", n.sent-before)
		}
		for x := range n.b.all {
			if x.rcv.n < 0 || x.rcv.n > x.rcv.cap() || x.snd.n < 0 || x.snd.n > x.snd.cap() {
				t.Fatalf("buffer bounds broken: rcv %d/%d snd %d/%d", x.rcv.n, x.rcv.cap(), x.snd.n, x.snd.cap())
			}
			if x.sndUna.Diff(x.sndMax) > 0 || x.sndNxt.Diff(x.sndMax) > 0 {
				t.Fatalf("%v: send sequence out of order: una %d nxt %d max %d", x.state, x.sndUna, x.sndNxt, x.sndMax)
			}
		}
	})
}

// FuzzICMPError aims an ICMP error of any type, code, MTU and quoted
// sequence number at a connection with data in flight. Nothing may
// panic, the send sequence stays in order, and, every error being soft
// once synchronized, the connection lives on and delivers all its data.
func FuzzICMPError(f *testing.F) {
	f.Add(int32(0), uint8(3), uint8(4), uint16(576))
	f.Add(int32(0), uint8(3), uint8(3), uint16(0))
	f.Add(int32(1448), uint8(11), uint8(0), uint16(0))
	f.Add(int32(-1), uint8(3), uint8(4), uint16(68))
	f.Fuzz(func(t *testing.T, off int32, typ, code uint8, mtu uint16) {
		n := newNet(t, Config{}, Config{})
		l := n.listen(80, 4)
		c, s := n.dial(l, 80)
		data := pattern(30000, 7)
		k, err := n.a.Send(n.now, c, data)
		if err != nil || k != len(data) {
			t.Fatalf("send: %d, %v", k, err)
		}
		n.collect()
		x := n.a.socks[c]
		n.a.ICMPError(n.now, x.local, x.remote, x.sndUna.Add(int(off)), typ, code, int(mtu))
		if x.sndUna.Diff(x.sndMax) > 0 || x.sndNxt.Diff(x.sndMax) > 0 || x.sndNxt.Before(x.sndUna) {
			t.Fatalf("send sequence out of order: una %d nxt %d max %d", x.sndUna, x.sndNxt, x.sndMax)
		}
		if x.state != Established || x.mss < MinPathMTU-52 {
			t.Fatalf("state %v, MSS %d after the error", x.state, x.mss)
		}
		var got []byte
		buf := make([]byte, 64<<10)
		n.runUntil("delivery", time.Minute, func() bool {
			if k, err := n.b.Recv(n.now, s, buf, false); err == nil {
				got = append(got, buf[:k]...)
			}
			return len(got) >= len(data)
		})
		if string(got) != string(data) {
			t.Fatal("data differs")
		}
	})
}

// FuzzSACKBlocks aims an ACK carrying any SACK blocks (each two 32-bit
// offsets from SND.UNA: D-SACKs below it, blocks past SND.MAX, reversed,
// half the sequence space away), once or several times, at a connection
// in a fast recovery whose reduction D-SACKs could undo. Nothing may
// panic, the scoreboard holds only what is in flight, the send sequence
// stays in order, and the connection delivers all its data.
func FuzzSACKBlocks(f *testing.F) {
	f.Add(uint8(0), []byte{0xff, 0xff, 0xfa, 0x58, 0, 0, 0, 0}) // a D-SACK of the segment below SND.UNA
	f.Fuzz(func(t *testing.T, repeat uint8, raw []byte) {
		n := newNet(t, Config{}, Config{})
		_, s, x, data := dsackSender(t, n)
		for range 3 {
			ackWith(n, x, nil)
		}
		var blocks []rel
		for i := 0; i+8 <= len(raw) && len(blocks) < 3; i += 8 {
			blocks = append(blocks, rel{int(int32(binary.BigEndian.Uint32(raw[i:]))), int(int32(binary.BigEndian.Uint32(raw[i+4:])))})
		}
		for range 1 + repeat%4 {
			ackWith(n, x, blocks)
		}
		if x.sndMax.Before(x.sndNxt) || x.sndNxt.Before(x.sndUna) {
			t.Fatalf("send sequence out of order: una %d nxt %d max %d", x.sndUna, x.sndNxt, x.sndMax)
		}
		for _, b := range x.sacked {
			if !x.sndUna.Before(b.Start) || !b.Start.Before(b.End) || x.sndMax.Before(b.End) {
				t.Fatalf("scoreboard holds %v, outside (%d, %d]", b, x.sndUna, x.sndMax)
			}
		}
		if len(x.undoRxt) > maxRanges {
			t.Fatalf("%d retransmissions kept for undo, more than %d", len(x.undoRxt), maxRanges)
		}
		n.filter = nil
		deliverAll(t, n, s, x, data, time.Minute)
	})
}

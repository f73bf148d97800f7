package tcp

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	addrA = netip.MustParseAddr("198.18.0.1")
	addrB = netip.MustParseAddr("198.18.0.2")
	epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// packet is a segment in flight on a testNet.
type packet struct {
	at  time.Time
	seq int // arrival order among equal times
	to  *Stack
	seg Segment
}

// testNet joins two Stacks with a fake clock and a network that delays,
// loses, duplicates and reorders segments, deterministically from a seed.
type testNet struct {
	t          testing.TB
	now        time.Time
	a, b       *Stack
	inflight   []packet
	n          int
	delay      time.Duration
	jitter     time.Duration // reordering: each segment is delayed up to this much more
	loss, dup  float64
	rng        *rand.Rand
	filter     func(from *Stack, h Header, payload []byte) bool // false drops the segment
	sent, lost int
	log        bool
	tso        tsoSeen // the segments the NIC cut (tso_test.go)
}

func newNet(t testing.TB, ca, cb Config) *testNet {
	ca.Addrs, cb.Addrs = []netip.Addr{addrA}, []netip.Addr{addrB}
	ca.Secret, cb.Secret = 1, 2
	return &testNet{t: t, now: epoch, a: New(ca), b: New(cb), delay: 50 * time.Microsecond, rng: rand.New(rand.NewPCG(1, 2))}
}

// collect moves both stacks' output onto the wire.
func (n *testNet) collect() {
	for _, from := range []*Stack{n.a, n.b} {
		to := n.b
		if from == n.b {
			to = n.a
		}
		for _, seg := range n.cut(from.Out()) {
			n.sent++
			h, p, err := Parse(seg.Data)
			if err != nil {
				n.t.Fatalf("stack sent a malformed segment: %v", err)
			}
			if n.log {
				n.t.Logf("%v %s", n.now.Sub(epoch), describe(from == n.a, h, p))
			}
			if n.filter != nil && !n.filter(from, h, p) {
				n.lost++
				continue
			}
			if n.loss > 0 && n.rng.Float64() < n.loss {
				n.lost++
				continue
			}
			copies := 1
			if n.dup > 0 && n.rng.Float64() < n.dup {
				copies = 2
			}
			for range copies {
				d := n.delay
				if n.jitter > 0 {
					d += time.Duration(n.rng.Int64N(int64(n.jitter)))
				}
				n.n++
				n.inflight = append(n.inflight, packet{at: n.now.Add(d), seq: n.n, to: to,
					seg: Segment{Src: seg.Src, Dst: seg.Dst, Data: slices.Clone(seg.Data)}})
			}
		}
	}
}

func describe(fromA bool, h Header, p []byte) string {
	dir := "B->A"
	if fromA {
		dir = "A->B"
	}
	f := ""
	for i, name := range []string{"F", "S", "R", "P", ".", "U"} {
		if h.Flags&(1<<i) != 0 {
			f += name
		}
	}
	return dir + " [" + f + "] seq=" + itoa(uint32(h.Seq)) + " ack=" + itoa(uint32(h.Ack)) + " win=" + itoa(uint32(h.Window)) + " len=" + itoa(uint32(len(p)))
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}

// step advances to the next event (a segment arriving or a timer) and
// handles it; false when nothing is left to happen.
func (n *testNet) step() bool { return n.stepUntil(time.Time{}) }

// stepUntil is step, but leaves alone an event after limit (unless zero).
func (n *testNet) stepUntil(limit time.Time) bool {
	n.collect()
	next := time.Time{}
	idx := -1
	for i, p := range n.inflight {
		if idx < 0 || p.at.Before(next) || (p.at.Equal(next) && p.seq < n.inflight[idx].seq) {
			next, idx = p.at, i
		}
	}
	for _, s := range []*Stack{n.a, n.b} {
		if d, ok := s.Deadline(); ok && (idx < 0 && next.IsZero() || d.Before(next)) {
			next, idx = d, -1
		}
	}
	if next.IsZero() || (!limit.IsZero() && next.After(limit)) {
		return false
	}
	if next.After(n.now) {
		n.now = next
	}
	if idx >= 0 {
		p := n.inflight[idx]
		n.inflight = append(n.inflight[:idx], n.inflight[idx+1:]...)
		p.to.Input(n.now, p.seg.Src, p.seg.Dst, p.seg.Data)
	} else {
		n.a.Tick(n.now)
		n.b.Tick(n.now)
	}
	n.collect()
	n.checkTimers()
	return true
}

// checkTimers fails the test when a connection has something to send or
// in flight and no timer that will get it going (a stall).
func (n *testNet) checkTimers() {
	n.t.Helper()
	for _, s := range []*Stack{n.a, n.b} {
		for c := range s.all {
			if c.state < Established || c.state == TimeWait {
				continue
			}
			waiting := c.snd.n > c.sndNxt.Diff(c.sndBase) || c.sndMax != c.sndUna
			if waiting && c.rtxAt.IsZero() {
				n.t.Fatalf("%v stalled: una %d nxt %d max %d, %d bytes queued, window %d, no timer",
					c.state, c.sndUna, c.sndNxt, c.sndMax, c.snd.n, c.sndWnd)
			}
		}
	}
}

// runUntil steps until cond holds, failing after limit of simulated time.
func (n *testNet) runUntil(what string, limit time.Duration, cond func() bool) {
	n.t.Helper()
	end := n.now.Add(limit)
	for !cond() {
		if !n.step() || n.now.After(end) {
			n.t.Fatalf("%s: did not happen within %v (now %v)", what, limit, n.now.Sub(epoch))
		}
	}
}

// runFor steps through d of simulated time.
func (n *testNet) runFor(d time.Duration) {
	end := n.now.Add(d)
	for n.stepUntil(end) {
	}
	if n.now.Before(end) {
		n.now = end
		n.a.Tick(n.now)
		n.b.Tick(n.now)
		n.collect()
	}
}

// listen makes a listener on b at port.
func (n *testNet) listen(port uint16, backlog int) SockID {
	n.t.Helper()
	l := n.b.Open()
	if err := n.b.Bind(l, netip.AddrPortFrom(addrB, port)); err != nil {
		n.t.Fatalf("bind: %v", err)
	}
	if err := n.b.Listen(l, backlog); err != nil {
		n.t.Fatalf("listen: %v", err)
	}
	return l
}

// dial connects from a to b's port and returns the connected pair.
func (n *testNet) dial(l SockID, port uint16) (client, server SockID) {
	n.t.Helper()
	client = n.a.Open()
	if err := n.a.Connect(n.now, client, netip.AddrPortFrom(addrB, port)); err != ErrInProgress {
		n.t.Fatalf("connect: %v, want ErrInProgress", err)
	}
	n.runUntil("accept", 10*time.Second, func() bool {
		id, _, err := n.b.Accept(l)
		if err == nil {
			server = id
			return true
		}
		return false
	})
	n.runUntil("client established", 10*time.Second, func() bool { st, _ := n.a.State(client); return st == Established })
	return client, server
}

// transfer sends data from one stack's socket to another's, driving both,
// and returns what was received up to end of file when eof, else up to
// len(data).
func (n *testNet) transfer(from *Stack, fid SockID, to *Stack, tid SockID, data []byte, closeAfter bool, limit time.Duration) []byte {
	n.t.Helper()
	var got []byte
	sent := 0
	buf := make([]byte, 64<<10)
	eof := false
	done := func() bool {
		for {
			k, err := to.Recv(n.now, tid, buf, false)
			if err == ErrWouldBlock {
				break
			}
			if err != nil {
				n.t.Fatalf("recv: %v", err)
			}
			if k == 0 {
				eof = true
				break
			}
			got = append(got, buf[:k]...)
		}
		for sent < len(data) {
			k, err := from.Send(n.now, fid, data[sent:])
			if err == ErrWouldBlock {
				break
			}
			if err != nil {
				n.t.Fatalf("send: %v", err)
			}
			sent += k
			if sent == len(data) && closeAfter {
				if err := from.Close(n.now, fid); err != nil {
					n.t.Fatalf("close: %v", err)
				}
			}
		}
		if closeAfter {
			return eof
		}
		return len(got) >= len(data)
	}
	n.runUntil("transfer", limit, done)
	return got
}

func pattern(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func checksumOf(src, dst netip.Addr, b []byte) uint16 { return checksumPseudo(src, dst, b) }

// deliver hands the earliest segment in flight to its stack, without
// collecting what that makes.
func (n *testNet) deliver() {
	n.t.Helper()
	idx := -1
	for i, p := range n.inflight {
		if idx < 0 || p.at.Before(n.inflight[idx].at) {
			idx = i
		}
	}
	if idx < 0 {
		n.t.Fatal("nothing in flight")
	}
	p := n.inflight[idx]
	n.inflight = append(n.inflight[:idx], n.inflight[idx+1:]...)
	if p.at.After(n.now) {
		n.now = p.at
	}
	p.to.Input(n.now, p.seg.Src, p.seg.Dst, p.seg.Data)
}

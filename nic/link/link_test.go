package link_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"testing"
	"time"

	"github.com/newtsim/newtsim/nic/link"
)

// t0 is the fake clock's start.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newLink(t testing.TB, p link.Params) *link.Link {
	t.Helper()
	l, err := link.New(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// numbered returns a frame of size bytes (at least 4) carrying i.
func numbered(i, size int) []byte {
	f := make([]byte, max(size, 4))
	binary.BigEndian.PutUint32(f, uint32(i))
	return f
}

// arrival is a frame and when Receive handed it out.
type arrival struct {
	at    time.Time
	frame []byte
}

// drain receives everything in flight, stepping the fake clock from one
// arrival to the next.
func drain(l *link.Link) []arrival {
	var out []arrival
	for {
		at, ok := l.NextArrival()
		if !ok {
			return out
		}
		if got := l.Receive(at.Add(-1)); got != nil {
			panic("Receive before NextArrival returned frames")
		}
		for _, f := range l.Receive(at) {
			out = append(out, arrival{at, f})
		}
	}
}

func TestTiming(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		p     link.Params
		sends []time.Duration // send times after t0
		size  int
		want  []time.Duration // arrival times after t0
	}{
		{"1500 B at 12 Mbit/s", link.Params{Bandwidth: 12e6}, []time.Duration{0, 0, 0}, 1500, []time.Duration{1 * ms, 2 * ms, 3 * ms}},
		{"plus delay", link.Params{Bandwidth: 12e6, Delay: 5 * ms}, []time.Duration{0, 0, 0}, 1500, []time.Duration{6 * ms, 7 * ms, 8 * ms}},
		{"1500 B at 1 Gbit/s", link.Params{Bandwidth: 1e9, Delay: 100 * time.Microsecond}, []time.Duration{0, 0}, 1500, []time.Duration{112 * time.Microsecond, 124 * time.Microsecond}},
		{"idle between", link.Params{Bandwidth: 12e6, Delay: ms}, []time.Duration{0, 10 * ms, 10*ms + 500*time.Microsecond}, 1500, []time.Duration{2 * ms, 12 * ms, 13 * ms}},
		{"unlimited", link.Params{Delay: 3 * ms}, []time.Duration{0, 0, time.Microsecond}, 9000, []time.Duration{3 * ms, 3 * ms, 3*ms + time.Microsecond}},
		{"no delay, unlimited", link.Params{}, []time.Duration{0, 7}, 64, []time.Duration{0, 7}},
		// 4 bytes at 3 Kbit/s take 32/3 ms: the fraction is carried,
		// so the third frame arrives at exactly 32 ms.
		{"fractions carry", link.Params{Bandwidth: 3000}, []time.Duration{0, 0, 0}, 4, []time.Duration{10666666, 21333333, 32 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLink(t, tt.p)
			for i, s := range tt.sends {
				l.Send(t0.Add(s), numbered(i, tt.size))
			}
			got := drain(l)
			if len(got) != len(tt.want) {
				t.Fatalf("%d frames arrived, want %d", len(got), len(tt.want))
			}
			for i, a := range got {
				if n := binary.BigEndian.Uint32(a.frame); n != uint32(i) || a.at != t0.Add(tt.want[i]) {
					t.Errorf("arrival %d: frame %d at %v, want frame %d at %v", i, n, a.at.Sub(t0), i, tt.want[i])
				}
			}
			if st := l.Stats(); st.Sent != uint64(len(tt.sends)) || st.Delivered != st.Sent || st.DeliveredBytes != st.SentBytes {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestQueueFull(t *testing.T) {
	// 8 Kbit/s is 1000 bytes a second; the queue holds 3000 bytes.
	l := newLink(t, link.Params{Bandwidth: 8000, QueueBytes: 3000})
	for i := range 4 {
		l.Send(t0, numbered(i, 1000))
	}
	if st := l.Stats(); st.QueueFull != 1 || l.InFlight() != 3 {
		t.Fatalf("after 4 frames: %d queue-full, %d in flight; want 1, 3", st.QueueFull, l.InFlight())
	}
	// Half a frame later, half a frame has left: 500 bytes are free.
	l.Send(t0.Add(500*time.Millisecond), numbered(4, 501))
	l.Send(t0.Add(500*time.Millisecond), numbered(5, 500))
	if st := l.Stats(); st.QueueFull != 2 || l.InFlight() != 4 {
		t.Fatalf("at 0.5 s: %d queue-full, %d in flight; want 2, 4", st.QueueFull, l.InFlight())
	}
	// A frame larger than the queue never fits, even on an idle wire.
	l.Send(t0.Add(time.Hour), make([]byte, 3001))
	l.Send(t0.Add(time.Hour), make([]byte, 3000))
	if st := l.Stats(); st.QueueFull != 3 {
		t.Fatalf("oversized frame: %d queue-full, want 3", st.QueueFull)
	}
	got := drain(l)
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3500 * time.Millisecond, time.Hour + 3*time.Second}
	for i, a := range got {
		if i >= len(want) || a.at != t0.Add(want[i]) {
			t.Fatalf("arrival %d at %v, want %v", i, a.at.Sub(t0), want)
		}
	}
	// At unlimited bandwidth nothing waits, so nothing is refused.
	u := newLink(t, link.Params{QueueBytes: 10})
	for range 100 {
		u.Send(t0, make([]byte, 1500))
	}
	if st := u.Stats(); st.QueueFull != 0 {
		t.Fatalf("unlimited bandwidth: %d queue-full", st.QueueFull)
	}
}

func TestLossAll(t *testing.T) {
	l := newLink(t, link.Params{Loss: 1, Delay: time.Millisecond, Bandwidth: 1e9})
	for i := range 1000 {
		l.Send(t0.Add(time.Duration(i)*time.Microsecond), numbered(i, 100))
	}
	if got := l.Receive(t0.Add(time.Hour)); got != nil {
		t.Fatalf("%d frames delivered at loss 1", len(got))
	}
	if _, ok := l.NextArrival(); ok {
		t.Fatal("a frame in flight at loss 1")
	}
	if st := l.Stats(); st.Lost != 1000 || st.Delivered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDuplicateAll(t *testing.T) {
	l := newLink(t, link.Params{Duplicate: 1, Delay: time.Millisecond, Bandwidth: 1e8})
	const n = 500
	for i := range n {
		l.Send(t0, numbered(i, 200))
	}
	got := drain(l)
	if len(got) != 2*n {
		t.Fatalf("%d frames delivered, want %d", len(got), 2*n)
	}
	for i := range n {
		a, b := got[2*i], got[2*i+1]
		if !bytes.Equal(a.frame, numbered(i, 200)) || !bytes.Equal(b.frame, a.frame) || a.at != b.at {
			t.Fatalf("frame %d: copies %x at %v and %x at %v", i, a.frame[:4], a.at, b.frame[:4], b.at)
		}
		if &a.frame[0] == &b.frame[0] {
			t.Fatalf("frame %d: the copies share memory", i)
		}
	}
	if st := l.Stats(); st.Duplicated != n || st.Delivered != 2*n || st.DeliveredBytes != 2*st.SentBytes {
		t.Fatalf("stats %+v", st)
	}
}

func TestReorder(t *testing.T) {
	l := newLink(t, link.Params{Reorder: 0.2, Delay: time.Millisecond, Seed: 3})
	const n = 2000
	for i := range n {
		l.Send(t0.Add(time.Duration(i)*10*time.Microsecond), numbered(i, 64))
	}
	got := drain(l)
	if len(got) != n {
		t.Fatalf("%d frames delivered, want %d", len(got), n)
	}
	seen := make([]bool, n)
	late, held, last := 0, 0, -1
	for _, a := range got {
		i := int(binary.BigEndian.Uint32(a.frame))
		if seen[i] {
			t.Fatalf("frame %d delivered twice", i)
		}
		seen[i] = true
		if i < last {
			late++
		} else {
			last = i
		}
		want := t0.Add(time.Duration(i)*10*time.Microsecond + time.Millisecond)
		switch a.at {
		case want:
		case want.Add(2 * time.Millisecond): // ReorderDelay defaults to 2*Delay
			held++
		default:
			t.Fatalf("frame %d at %v, want %v or 2ms later", i, a.at.Sub(t0), want.Sub(t0))
		}
	}
	st := l.Stats()
	if late == 0 || late > held || uint64(held) != st.Reordered {
		t.Fatalf("%d frames arrived after a later one, %d held back; %d reordered", late, held, st.Reordered)
	}
	if st.Reordered < n/10 || st.Reordered > 3*n/10 {
		t.Fatalf("%d of %d reordered at 0.2", st.Reordered, n)
	}
}

func TestCorrupt(t *testing.T) {
	l := newLink(t, link.Params{Corrupt: 1, Bandwidth: 1e9})
	const n = 1000
	sent := make([][]byte, n)
	for i := range n {
		sent[i] = numbered(i, 1+i%300)
		for j := 4; j < len(sent[i]); j++ {
			sent[i][j] = byte(i * j)
		}
		l.Send(t0, sent[i])
	}
	got := drain(l)
	if len(got) != n {
		t.Fatalf("%d frames delivered", len(got))
	}
	positions := map[int]bool{}
	for i, a := range got {
		if len(a.frame) != len(sent[i]) {
			t.Fatalf("frame %d: length %d, want %d", i, len(a.frame), len(sent[i]))
		}
		flipped := 0
		for j := range a.frame {
			if d := a.frame[j] ^ sent[i][j]; d != 0 {
				flipped += bits.OnesCount8(d)
				positions[8*j+bits.TrailingZeros8(d)] = true
			}
		}
		if flipped != 1 {
			t.Fatalf("frame %d: %d bits flipped, want 1", i, flipped)
		}
	}
	if len(positions) < 100 {
		t.Fatalf("flipped bits fall on only %d positions", len(positions))
	}
	if st := l.Stats(); st.Corrupted != n {
		t.Fatalf("stats %+v", st)
	}
	// An empty frame has no bit to flip.
	l.Send(t0, nil)
	if got := drain(l); len(got) != 1 || len(got[0].frame) != 0 || l.Stats().Corrupted != n {
		t.Fatalf("empty frame: %v, %+v", got, l.Stats())
	}
}

// TestSendCopies checks that Send copies the frame.
func TestSendCopies(t *testing.T) {
	l := newLink(t, link.Params{Delay: time.Millisecond})
	f := []byte("frame")
	l.Send(t0, f)
	copy(f, "XXXXX")
	if got := l.Receive(t0.Add(time.Second)); len(got) != 1 || string(got[0]) != "frame" {
		t.Fatalf("Receive = %q", got)
	}
}

// run sends n numbered frames over a link with p, 1 us apart, and returns
// what arrives.
func run(t testing.TB, p link.Params, n int) []arrival {
	l := newLink(t, p)
	for i := range n {
		l.Send(t0.Add(time.Duration(i)*time.Microsecond), numbered(i, 100))
	}
	return drain(l)
}

func TestDeterminism(t *testing.T) {
	p := link.Params{Bandwidth: 1e9, Delay: 20 * time.Microsecond, Loss: 0.1, Duplicate: 0.1, Reorder: 0.1, Corrupt: 0.1, Seed: 42}
	a, b := run(t, p, 5000), run(t, p, 5000)
	if !equalArrivals(a, b) {
		t.Fatal("the same seed gave two different sequences")
	}
	p.Seed = 43
	if c := run(t, p, 5000); equalArrivals(a, c) {
		t.Fatal("seeds 42 and 43 gave the same sequence")
	}
}

func equalArrivals(a, b []arrival) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].at != b[i].at || !bytes.Equal(a[i].frame, b[i].frame) {
			return false
		}
	}
	return true
}

// TestPairedDraws checks that a frame's fate under one impairment does not
// depend on the others: the same seed loses the same frames whether or not
// frames are also duplicated, reordered and corrupted.
func TestPairedDraws(t *testing.T) {
	lost := func(p link.Params) map[uint32]bool {
		m := map[uint32]bool{}
		for i := range 3000 {
			m[uint32(i)] = true
		}
		for _, a := range run(t, p, 3000) {
			delete(m, binary.BigEndian.Uint32(a.frame))
		}
		return m
	}
	plain := lost(link.Params{Loss: 0.1, Seed: 9})
	busy := lost(link.Params{Loss: 0.1, Duplicate: 0.3, Reorder: 0.3, Seed: 9})
	if len(plain) < 200 || len(plain) != len(busy) {
		t.Fatalf("lost %d frames alone, %d with other impairments", len(plain), len(busy))
	}
	for i := range plain {
		if !busy[i] {
			t.Fatalf("frame %d lost alone but not with other impairments", i)
		}
	}
}

// TestRates checks each impairment's measured rate over 100k frames, for
// several seeds, against its probability: within 1 percentage point (the
// standard deviation at 0.05 is 0.07 points).
func TestRates(t *testing.T) {
	if testing.Short() {
		t.Skip("100k frames per case")
	}
	const n = 100000
	tests := []struct {
		name string
		p    link.Params
		stat func(link.Stats) uint64
	}{
		{"loss", link.Params{Loss: 0.05}, func(s link.Stats) uint64 { return s.Lost }},
		{"dup", link.Params{Duplicate: 0.05}, func(s link.Stats) uint64 { return s.Duplicated }},
		{"reorder", link.Params{Reorder: 0.05}, func(s link.Stats) uint64 { return s.Reordered }},
		{"corrupt", link.Params{Corrupt: 0.05}, func(s link.Stats) uint64 { return s.Corrupted }},
	}
	frame := make([]byte, 64)
	for _, tt := range tests {
		for seed := uint64(1); seed <= 3; seed++ {
			p := tt.p
			p.Seed = seed
			l := newLink(t, p)
			for range n {
				l.Send(t0, frame)
				l.Receive(t0.Add(time.Hour))
			}
			rate := float64(tt.stat(l.Stats())) / n
			if math.Abs(rate-0.05) > 0.01 {
				t.Errorf("%s seed %d: rate %.4f, want 0.05 +- 0.01", tt.name, seed, rate)
			}
			if tt.name == "loss" {
				if st := l.Stats(); st.Delivered+st.Lost != n {
					t.Errorf("loss seed %d: %d delivered + %d lost != %d", seed, st.Delivered, st.Lost, n)
				}
				t.Logf("loss seed %d: %.4f", seed, rate)
			}
		}
	}
}

func TestNewInvalid(t *testing.T) {
	tests := []struct {
		name string
		p    link.Params
	}{
		{"negative bandwidth", link.Params{Bandwidth: -1}},
		{"bandwidth below minimum", link.Params{Bandwidth: 999}},
		{"negative delay", link.Params{Delay: -1}},
		{"negative reorder delay", link.Params{ReorderDelay: -time.Second}},
		{"loss above 1", link.Params{Loss: 1.5}},
		{"negative dup", link.Params{Duplicate: -0.1}},
		{"NaN reorder", link.Params{Reorder: math.NaN()}},
		{"infinite corrupt", link.Params{Corrupt: math.Inf(1)}},
		{"negative queue", link.Params{QueueBytes: -1}},
		{"huge queue", link.Params{QueueBytes: link.MaxQueueBytes + 1}},
	}
	for _, tt := range tests {
		if l, err := link.New(tt.p); err == nil || l != nil {
			t.Errorf("%s: New = %v, %v; want an error", tt.name, l, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		p            link.Params
		reorderDelay time.Duration
		queue        int
	}{
		{link.Params{}, time.Millisecond, link.DefaultQueueBytes},
		{link.Params{Delay: 3 * time.Millisecond}, 6 * time.Millisecond, link.DefaultQueueBytes},
		{link.Params{Delay: time.Millisecond, ReorderDelay: time.Microsecond, QueueBytes: 10}, time.Microsecond, 10},
		{link.Params{Delay: math.MaxInt64}, math.MaxInt64, link.DefaultQueueBytes},
	}
	for _, tt := range tests {
		got := newLink(t, tt.p).Params()
		if got.ReorderDelay != tt.reorderDelay || got.QueueBytes != tt.queue {
			t.Errorf("New(%v).Params() = %v; want reorder-delay %v, queue %d", tt.p, got, tt.reorderDelay, tt.queue)
		}
	}
}

// TestLimits sends the largest frame the largest queue holds at the lowest
// bandwidth, where the arithmetic is closest to overflowing.
func TestLimits(t *testing.T) {
	l := newLink(t, link.Params{Bandwidth: link.MinBandwidth, QueueBytes: link.MaxQueueBytes})
	big := make([]byte, 1<<20)
	l.Send(t0, big)
	l.Send(t0, big)
	at, _ := l.NextArrival()
	if want := t0.Add(time.Duration(8<<20) * time.Millisecond); at != want {
		t.Fatalf("1 MiB at 1 Kbit/s arrives at %v, want %v", at.Sub(t0), want.Sub(t0))
	}
	// A clock that runs backwards neither panics nor frees the queue.
	l.Send(t0.Add(-time.Hour), big)
	if st := l.Stats(); st.QueueFull != 0 || l.InFlight() != 3 {
		t.Fatalf("stats %+v, %d in flight", st, l.InFlight())
	}
}

// Package link models one direction of the `wire` between two simulated
// NICs: a serializer of limited bandwidth with a bounded queue in front of
// it, a propagation delay behind it, and random loss, duplication,
// reordering and corruption of the frames it carries. Two Links, one each
// way, make a wire.
//
// The package is pure: it does no I/O, starts no goroutines and reads no
// clock. The NIC model around it passes the time to every call and asks
// NextArrival when to call Receive next. Given the same Params (Seed
// included) and the same calls, a Link delivers the same frames at the
// same times. A Link is not safe for concurrent use.
//
// See docs/LINK.md.
package link

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"time"
)

// Stats count what a Link did with the frames given to it.
type Stats struct {
	Sent      uint64 // frames given to Send
	SentBytes uint64 // their bytes
	// Delivered and DeliveredBytes count frames handed out by Receive,
	// the extra copies of duplicated frames included.
	Delivered      uint64
	DeliveredBytes uint64
	Lost           uint64 // frames lost on the wire
	Duplicated     uint64 // frames sent twice (the extra copies)
	Reordered      uint64 // copies held back by ReorderDelay
	Corrupted      uint64 // copies with a bit flipped
	QueueFull      uint64 // frames dropped because the queue was full
}

// A Link is one direction of a wire.
type Link struct {
	p   Params // with defaults
	rng *rand.PCG

	// The wire is busy until freeAt + frac/Bandwidth ns (frac <
	// Bandwidth): times are kept to the nanosecond, and the fraction is
	// carried so that serialization times do not drift.
	freeAt time.Time
	frac   uint64

	seq     uint64  // copies queued so far; orders copies arriving together
	flight  []entry // copies in flight: a min-heap by (at, seq)
	stats   Stats
	scratch [draws]uint64
}

// An entry is a copy of a frame in flight.
type entry struct {
	at   time.Time // arrival
	seq  uint64
	data []byte
}

// draws is how many random numbers each Send takes, whatever happens to
// the frame, so that a frame's fate depends only on the seed and on how
// many frames were sent before it, not on the other probabilities: the
// same seed loses the same frames at loss=0.05 with or without
// duplication. They are: loss, duplicate, then for each of the two copies
// reorder, corrupt and the bit to flip.
const draws = 8

// New returns a Link with parameters p, or an error if p does not
// validate.
func New(p Params) (*Link, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("link: new: %w", err)
	}
	return &Link{
		p:   p.withDefaults(),
		rng: rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15),
	}, nil
}

// Params returns the Link's parameters with their defaults filled in.
func (l *Link) Params() Params { return l.p }

// Stats returns the Link's counters.
func (l *Link) Stats() Stats { return l.stats }

// Why a frame sent did not go on the wire (Send's answer; Stats counts
// them too).
const (
	DropQueueFull = "queue-full" // it did not fit in the queue
	DropLost      = "lost"       // lost on the wire
)

// Send puts a copy of frame on the wire at time now. The frame is sent
// after those queued before it, at Bandwidth, and arrives Delay after its
// last bit has left (ReorderDelay later if reordered). It is dropped if it
// does not fit in the queue, or lost on the wire, after taking its turn on
// it: Send returns why (DropQueueFull, DropLost), or "" when the frame is
// on its way. Send keeps no reference to frame.
func (l *Link) Send(now time.Time, frame []byte) (dropped string) {
	l.stats.Sent++
	l.stats.SentBytes += uint64(len(frame))
	u := &l.scratch
	for i := range u {
		u[i] = l.rng.Uint64()
	}
	depart := now
	if bw := uint64(l.p.Bandwidth); bw > 0 {
		if l.freeAt.Before(now) || (l.freeAt.Equal(now) && l.frac == 0) {
			l.freeAt, l.frac = now, 0 // the wire is idle
		}
		if b := l.backlog(now, bw); b > uint64(l.p.QueueBytes) || uint64(len(frame)) > uint64(l.p.QueueBytes)-b {
			l.stats.QueueFull++
			return DropQueueFull
		}
		// len(frame) <= MaxQueueBytes and bw >= MinBandwidth keep hi < bw
		// and the quotient within a Duration.
		hi, lo := bits.Mul64(uint64(len(frame)), 8e9)
		lo, c := bits.Add64(lo, l.frac, 0)
		ns, frac := bits.Div64(hi+c, lo, bw)
		l.freeAt, l.frac = l.freeAt.Add(time.Duration(ns)), frac
		depart = l.freeAt
	}
	if chance(u[0], l.p.Loss) {
		l.stats.Lost++
		return DropLost
	}
	copies := 1
	if chance(u[1], l.p.Duplicate) {
		copies = 2
		l.stats.Duplicated++
	}
	for c := range copies {
		r := u[2+3*c:]
		at := depart.Add(l.p.Delay)
		if chance(r[0], l.p.Reorder) {
			at = at.Add(l.p.ReorderDelay)
			l.stats.Reordered++
		}
		data := make([]byte, len(frame))
		copy(data, frame)
		if len(data) > 0 && chance(r[1], l.p.Corrupt) {
			bit, _ := bits.Mul64(r[2], uint64(len(data))*8) // uniform in [0, 8*len)
			data[bit/8] ^= 1 << (bit % 8)
			l.stats.Corrupted++
		}
		l.push(entry{at: at, seq: l.seq, data: data})
		l.seq++
	}
	return ""
}

// chance reports whether the random number u falls below probability p.
func chance(u uint64, p float64) bool {
	return float64(u>>11)*(1.0/(1<<53)) < p
}

// backlog returns the bytes the wire has still to send at now, rounded up.
func (l *Link) backlog(now time.Time, bw uint64) uint64 {
	if !l.freeAt.After(now) && l.frac == 0 {
		return 0
	}
	rest := l.freeAt.Sub(now) // saturates; >= 0 here
	hi, lo := bits.Mul64(uint64(rest), bw)
	lo, c := bits.Add64(lo, l.frac, 0)
	hi += c
	const bitNs = 8e9 // bits * ns per byte-second
	if hi >= bitNs {
		return ^uint64(0)
	}
	q, r := bits.Div64(hi, lo, bitNs)
	if r != 0 {
		q++
	}
	return q
}

// Receive returns the frames that have arrived by now, in arrival order,
// frames arriving at the same time in the order they were sent (a
// duplicate after its original). The frames are the caller's. It returns
// nil when none has arrived.
func (l *Link) Receive(now time.Time) [][]byte {
	var out [][]byte
	for len(l.flight) > 0 && !l.flight[0].at.After(now) {
		e := l.pop()
		l.stats.Delivered++
		l.stats.DeliveredBytes += uint64(len(e.data))
		out = append(out, e.data)
	}
	return out
}

// NextArrival returns when the next frame arrives, and false when none is
// in flight.
func (l *Link) NextArrival() (time.Time, bool) {
	if len(l.flight) == 0 {
		return time.Time{}, false
	}
	return l.flight[0].at, true
}

// InFlight returns the number of frames sent and not yet received,
// duplicates counted twice.
func (l *Link) InFlight() int { return len(l.flight) }

// less orders entries by arrival, then by the order they were queued.
func less(a, b *entry) bool {
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.seq < b.seq
}

// push adds e to the heap.
func (l *Link) push(e entry) {
	l.flight = append(l.flight, e)
	h := l.flight
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !less(&h[i], &h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

// pop removes and returns the earliest entry.
func (l *Link) pop() entry {
	h := l.flight
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = entry{}
	h = h[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && less(&h[c+1], &h[c]) {
			c++
		}
		if !less(&h[c], &h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	l.flight = h
	return top
}

package probe

import (
	"math/rand/v2"
	"testing"
	"time"
)

// fakeClock is a clock whose time moves only when it is read (by tick,
// as a spinning loop's reads take time) or slept on (by the sleep and
// an overshoot drawn from over, as a loaded machine's sleeps overshoot).
type fakeClock struct {
	now    time.Time
	tick   time.Duration
	over   func() time.Duration
	sleeps int
}

func (c *fakeClock) Now() time.Time {
	c.now = c.now.Add(c.tick)
	return c.now
}

func (c *fakeClock) Sleep(d time.Duration) {
	c.sleeps++
	c.now = c.now.Add(d + c.over())
}

// The pacer keeps its mean rate exact: n datagrams paced at a rate go out
// over (n-1)/rate, never before their due time and never later than a
// sleep's overshoot after it, whether the gaps are slept (low rates) or
// spun (high rates), and however much the sleeps overshoot. A sender
// stalled for longer than its lag is never more than the lag behind (so
// it sends at most lag+1 datagrams at once after the stall), and the
// stall, less the lag, lengthens the stream.
func TestPacer(t *testing.T) {
	for _, c := range []struct {
		name   string
		rate   float64
		over   time.Duration // the most a sleep overshoots by
		stall  time.Duration // the sender stalls this long before the middle datagram
		sleeps bool          // whether the pacer should sleep at all
	}{
		{"spun", 50000, 0, 0, false},
		{"spun-above-margin-rate", 1000, 3 * time.Millisecond, 0, false},
		{"slept-exact", 100, 0, 0, true},
		{"slept-overshooting", 100, 1500 * time.Microsecond, 0, true},
		{"slept-overshooting-past-gaps", 300, 10 * time.Millisecond, 0, true},
		{"spun-stalled", 50000, 0, 300 * time.Millisecond, false},
		{"slept-stalled", 300, 1500 * time.Microsecond, time.Second, true},
		{"spun-stalled-within-lag", 50000, 0, 500 * time.Microsecond, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			const n = 1000
			rng := rand.New(rand.NewPCG(1, 2))
			clk := &fakeClock{now: time.Unix(1000, 0), tick: time.Microsecond,
				over: func() time.Duration { return time.Duration(rng.Int64N(int64(c.over) + 1)) }}
			p := pacer{start: clk.Now(), rate: c.rate, lag: PaceLag}
			gap := time.Duration(float64(time.Second) / c.rate)
			var first, last time.Time
			var late time.Duration
			for i := range n {
				if i == n/2 {
					clk.now = clk.now.Add(c.stall)
				}
				p.wait(clk, i)
				sent := clk.Now()
				if sent.Before(p.due(i)) {
					t.Fatalf("datagram %d went at %v, before it was due at %v", i, sent, p.due(i))
				}
				late = max(late, sent.Sub(p.due(i)))
				if i == 0 {
					first = sent
				}
				last = sent
			}
			if (clk.sleeps > 0) != c.sleeps {
				t.Errorf("%d sleeps; want sleeping %v", clk.sleeps, c.sleeps)
			}
			lagTime := time.Duration(float64(PaceLag) * float64(time.Second) / c.rate)
			if limit := max(c.over, min(c.stall, lagTime)) + 3*clk.tick; late > limit { // the pacer's readings and ours
				t.Errorf("a datagram went %v late, more than a sleep's overshoot or the lag (%v)", late, limit)
			}
			// The first and last datagram are each late by at most an
			// overshoot: the span is off by no more than that, besides
			// the stall beyond the lag (and a gap: the stall starts up to
			// a gap before the datagram after it is due).
			span := last.Sub(first)
			want := time.Duration(float64(n-1)*float64(time.Second)/c.rate) + max(c.stall-lagTime, 0)
			tol := 2 * (c.over + 3*clk.tick)
			if c.stall > 0 {
				tol += gap
			}
			if span < want-tol || span > want+tol {
				t.Errorf("%d datagrams over %v, want %v within %v (mean rate %.1f/s, target %.0f/s)", n, span, want, tol, float64(n-1)/span.Seconds(), c.rate)
			}
		})
	}
}

// The search converges on the boundary of a trial function that passes
// below it: to within the resolution, from below, trying each rate once;
// a noisy trial function (random between two rates) leaves the result
// between a rate that passed and one that failed; a function that fails
// everywhere gives 0 after trying down to the floor; and an error stops
// the search.
func TestSearchRate(t *testing.T) {
	const ceiling, res = 100000.0, 0.05
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		name   string
		pass   func(rate float64) bool
		lo, hi float64 // the result must lie in [lo, hi]
		most   int     // trials at most
	}{
		{"boundary-high", func(r float64) bool { return r <= 90000 }, 90000 / (1 + res), 90000, 2 + 4},
		{"boundary-mid", func(r float64) bool { return r <= 37000 }, 37000 / (1 + res), 37000, 3 + 4},
		{"boundary-just-above-floor", func(r float64) bool { return r <= 6500 }, 6500 / (1 + res), 6500, 5 + 4},
		{"boundary-at-floor", func(r float64) bool { return r <= ceiling/16 }, ceiling / 16, ceiling / 16, 4 + 4},
		{"boundary-at-half", func(r float64) bool { return r <= ceiling/2 }, ceiling / 2, ceiling / 2, 1 + 4},
		{"nothing-passes", func(float64) bool { return false }, 0, 0, 4},
		{"noisy", func(r float64) bool {
			switch {
			case r < 20000:
				return true
			case r > 30000:
				return false
			}
			return rng.IntN(2) == 0
		}, 20000 / (1 + res), 30000, 12},
	} {
		t.Run(c.name, func(t *testing.T) {
			var tried []float64
			var passed, failed []float64
			got, err := searchRate(searchRange{Ceiling: ceiling, Floor: ceiling / 16, Resolution: res}, func(r float64) (bool, error) {
				for _, x := range tried {
					if x == r {
						t.Errorf("rate %v tried twice", r)
					}
				}
				tried = append(tried, r)
				if r < ceiling/16 || r >= ceiling {
					t.Errorf("rate %v outside the floor and ceiling", r)
				}
				p := c.pass(r)
				if p {
					passed = append(passed, r)
				} else {
					failed = append(failed, r)
				}
				return p, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got < c.lo || got > c.hi || len(tried) > c.most {
				t.Errorf("found %.0f in %d trials %v, want in [%.0f, %.0f] in at most %d", got, len(tried), tried, c.lo, c.hi, c.most)
			}
			if got > 0 {
				// What it found passed, and the lowest rate above it that
				// failed (or the ceiling) is within the resolution.
				hi := ceiling
				for _, f := range failed {
					if f > got {
						hi = min(hi, f)
					}
				}
				if !contains(passed, got) || hi > got*(1+res)*(1+1e-12) {
					t.Errorf("found %.0f: passed %v, the lowest failure above it %.0f", got, passed, hi)
				}
			}
		})
	}
	t.Run("error", func(t *testing.T) {
		boom := errTrial{}
		n := 0
		_, err := searchRate(searchRange{Ceiling: ceiling, Floor: 1, Resolution: res}, func(float64) (bool, error) { n++; return false, boom })
		if err != boom || n != 1 {
			t.Errorf("got %v after %d trials, want the trial's error after one", err, n)
		}
	})
}

type errTrial struct{}

func (errTrial) Error() string { return "trial failed" }

func contains(xs []float64, x float64) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

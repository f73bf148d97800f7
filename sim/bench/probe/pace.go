package probe

import (
	"math"
	"time"
)

// Pacing and the throughput search of the UDP stream, after the field's
// conventions: iperf3 -u sends at a target bitrate and reports the loss
// at that offered rate; RFC 2544 (section 26.1, terms from RFC 1242)
// defines throughput as the highest offered rate at which no frame is
// lost, found by a search over trials at fixed rates.

// A clock tells the time and sleeps: the real one, or a test's.
type clock interface {
	Now() time.Time
	Sleep(time.Duration)
}

// realClock is the time package's clock.
type realClock struct{}

func (realClock) Now() time.Time        { return time.Now() }
func (realClock) Sleep(d time.Duration) { time.Sleep(d) }

// SleepMargin is how close to a datagram's due time the pacer stops
// sleeping and spins on the clock instead: a sleep on the 2-vCPU VM this
// was built on overshoots by about a millisecond (median 0.9-1.1 ms for
// sleeps of 10 µs to 200 µs, 0.1 ms for 1 ms, up to 2-10 ms at the 99th
// percentile while others load it), so a pacer that slept the whole gap
// would send late and in bursts. Gaps shorter than the margin are spun
// out whole (an offered rate above 500 datagrams per second spins all the
// time, a core's worth of the sender's CPU; the sender is alone on its
// core in bench udp's plans).
const SleepMargin = 2 * time.Millisecond

// A pacer spreads datagrams evenly at rate per second from start:
// datagram i is due at start + i/rate, computed from i and not by adding
// gaps, so the mean rate is exact however late a single datagram goes
// out. A datagram that is late (a sleep overshot, the sender was
// descheduled) goes at once, and the ones after it follow at once until
// the sender is back on time, but the sender falls no more than lag
// datagrams behind: a sender stalled longer (on the loaded 2-vCPU VM a
// spinning sender was seen stalled for 50-500 ms) moves its schedule
// back, so it sends a burst of at most lag+1 datagrams after the stall and
// then keeps the rate, rather than thousands at once that a receiver's
// queue of 256 could not hold whatever the path. The stall then shows as
// an offered rate below the target (the stream's first to last datagram,
// as the blaster measures it), not as a burst the path is blamed for.
type pacer struct {
	start time.Time
	rate  float64 // datagrams per second, > 0
	lag   int     // datagrams the sender may fall behind; 0: no bound
}

// PaceLag is the pacer's lag in bench udp's streams: an eighth of the
// sink's queue of 256.
const PaceLag = 32

// due is when datagram i may go.
func (p *pacer) due(i int) time.Time {
	return p.start.Add(time.Duration(float64(i) * float64(time.Second) / p.rate))
}

// wait returns when datagram i is due, sleeping on c until SleepMargin
// before it and then spinning on c's time; first, if datagram i is more
// than lag datagrams late, it moves the schedule back so that it is just
// that late.
func (p *pacer) wait(c clock, i int) {
	due := p.due(i)
	if p.lag > 0 {
		limit := time.Duration(float64(p.lag) * float64(time.Second) / p.rate)
		if late := c.Now().Sub(due); late > limit {
			p.start = p.start.Add(late - limit)
			due = p.due(i)
		}
	}
	for {
		d := due.Sub(c.Now())
		if d <= 0 {
			return
		}
		if d > SleepMargin {
			c.Sleep(d - SleepMargin)
		}
	}
}

// A searchTrial runs a trial stream at rate datagrams per second and says
// whether enough of it arrived.
type searchTrial func(rate float64) (pass bool, err error)

// searchRange bounds a throughput search.
type searchRange struct {
	Ceiling    float64 // a rate known to fail (the unpaced stream's offered rate)
	Floor      float64 // the lowest rate tried; the search gives 0 if it fails there
	Resolution float64 // stop when the failing rate is within 1+Resolution of the passing one
}

// searchRate is RFC 2544's throughput search over rates: from the
// ceiling, a rate known to fail, it halves the rate (not below the floor)
// until a trial passes, then bisects geometrically (at the square root of
// the product) between the highest rate that passed and the lowest that
// failed, until they are within the resolution. It returns the highest
// rate that passed, or 0 if the floor failed. Each rate is tried once: a
// noisy trial moves the bracket but the result stays between a rate that
// passed and one that failed.
func searchRate(r searchRange, try searchTrial) (float64, error) {
	hi, lo := r.Ceiling, 0.0
	for lo == 0 {
		if hi <= r.Floor {
			return 0, nil
		}
		rate := math.Max(hi/2, r.Floor)
		pass, err := try(rate)
		if err != nil {
			return 0, err
		}
		if pass {
			lo = rate
		} else {
			hi = rate
		}
	}
	for hi > lo*(1+r.Resolution) {
		rate := math.Sqrt(lo * hi)
		pass, err := try(rate)
		if err != nil {
			return lo, err
		}
		if pass {
			lo = rate
		} else {
			hi = rate
		}
	}
	return lo, nil
}

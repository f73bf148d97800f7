// Package tsc reads the processor's time-stamp counter, the cheapest clock
// there is, for timing single round trips in cycles.
//
// On amd64 Read executes LFENCE; RDTSC, so that the read is not hoisted
// above earlier instructions (RDTSCP is not used: it also waits for earlier
// stores, which a round-trip timer does not want to pay for). On other
// architectures Read returns nanoseconds since the package was initialised
// and Available reports false.
package tsc

import (
	"slices"
	"time"
)

// Calibrate measures how many counter ticks pass per second of the
// monotonic clock. It times five windows of d/5 each and returns the
// median rate, in Hz. Windows shorter than 100µs are lengthened to 100µs.
func Calibrate(d time.Duration) float64 {
	const windows = 5
	w := max(d/windows, 100*time.Microsecond)
	rates := make([]float64, windows)
	for i := range rates {
		t0, c0 := time.Now(), Read()
		time.Sleep(w)
		c1, el := Read(), time.Since(t0)
		rates[i] = float64(c1-c0) / el.Seconds()
	}
	slices.Sort(rates)
	return rates[windows/2]
}

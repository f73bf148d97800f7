// Package bench measures newtsim: round trips over its transports beside the
// bare references they must be judged against, each in separate pinned
// processes, reported as medians over batches with the machine and the core
// plan recorded beside every figure.
package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/newtsim/newtsim/sim/tsc"
)

// Sample is what a measuring process found: the median and the spread over
// batches of round trips.
type Sample struct {
	NS         float64 `json:"ns"`     // median ns per round trip
	Cycles     float64 `json:"cycles"` // median TSC cycles per round trip
	MinNS      float64 `json:"min_ns"`
	MaxNS      float64 `json:"max_ns"`
	RoundTrips int     `json:"round_trips"`
	Batches    int     `json:"batches"`
}

// Budget says how long a measurement runs.
type Budget struct {
	Warmup  time.Duration // spent before measuring, also to size batches
	Batch   time.Duration // target length of one batch
	Batches int
}

// DefaultBudget keeps a row under about a second.
var DefaultBudget = Budget{Warmup: 100 * time.Millisecond, Batch: 40 * time.Millisecond, Batches: 15}

// Measure runs rt (one round trip) first for the warm-up, then in batches
// sized so each takes about b.Batch, and returns the per-round-trip medians.
// rt returns an error to stop.
func Measure(b Budget, rt func(i int) error) (Sample, error) {
	start := time.Now()
	n := 0
	for time.Since(start) < b.Warmup || n < 10 {
		if err := rt(n); err != nil {
			return Sample{}, err
		}
		n++
	}
	per := time.Since(start) / time.Duration(n)
	size := int(b.Batch / max(per, 1))
	size = max(size, 5)
	ns := make([]float64, b.Batches)
	cyc := make([]float64, b.Batches)
	total := 0
	for k := range ns {
		c0, t0 := tsc.Read(), time.Now()
		for i := 0; i < size; i++ {
			if err := rt(n); err != nil {
				return Sample{}, err
			}
			n++
		}
		d, c1 := time.Since(t0), tsc.Read()
		ns[k] = float64(d.Nanoseconds()) / float64(size)
		cyc[k] = float64(c1-c0) / float64(size)
		total += size
	}
	s := Sample{NS: median(ns), Cycles: median(cyc), RoundTrips: total, Batches: b.Batches}
	sort.Float64s(ns)
	s.MinNS, s.MaxNS = ns[0], ns[len(ns)-1]
	return s, nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// writeSample writes s to path as JSON, atomically, for the driver to read.
func writeSample(path string, s Sample) error {
	b, _ := json.Marshal(s)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readSample waits for a measuring process's result file.
func readSample(path string, timeout time.Duration, failed <-chan error) (Sample, error) {
	deadline := time.After(timeout)
	for {
		if b, err := os.ReadFile(path); err == nil {
			var s Sample
			if err := json.Unmarshal(b, &s); err != nil {
				return s, fmt.Errorf("bench: parse %s: %w", path, err)
			}
			return s, nil
		}
		select {
		case err := <-failed:
			return Sample{}, fmt.Errorf("bench: measuring process failed: %v", err)
		case <-deadline:
			return Sample{}, fmt.Errorf("bench: no result in %s after %v", path, timeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

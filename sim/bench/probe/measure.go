// Package probe is the measuring side of newtsim's benchmarks: what runs
// inside the measured processes, on the simulated host as roles
// (PingerRole, UDPSinkRole, TCPConnectRole, ...) or on Linux as `newtsim
// bench peer` (PeerMain) and `newtsim bench http-peer` (HTTPPeerMain). It
// times round trips in batches (Measure, MeasurePaired), runs the UDP and
// TCP streams and connection loops on any backend of the socket library,
// and writes what it found to a result file for package bench, the
// launcher side, to read. It starts no processes.
package probe

import (
	"sort"
	"time"

	"github.com/newtsim/newtsim/internal/stats"
	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/internal/tsc"
	"github.com/newtsim/newtsim/servers/sys"
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

// timed runs rt n times from index i and returns ns and TSC cycles per call.
func timed(i, n int, rt func(i int) error) (ns, cycles float64, err error) {
	c0, t0 := tsc.Read(), time.Now()
	for k := 0; k < n; k++ {
		if err := rt(i + k); err != nil {
			return 0, 0, err
		}
	}
	d, c1 := time.Since(t0), tsc.Read()
	return float64(d.Nanoseconds()) / float64(n), float64(c1-c0) / float64(n), nil
}

// Batch runs n round trips and returns what one cost, in ns and cycles.
type Batch func(n int) (ns, cycles float64, err error)

// Measure runs rt (one round trip) first for the warm-up, then in batches
// sized so each takes about b.Batch, and returns the per-round-trip medians.
// rt returns an error to stop.
func Measure(b Budget, rt func(i int) error) (Sample, error) {
	i := 0
	batch := func(n int) (float64, float64, error) {
		ns, cyc, err := timed(i, n, rt)
		i += n
		return ns, cyc, err
	}
	s, _, _, err := measure(b, batch, nil)
	return s, err
}

// MeasurePaired runs two kinds of round trip in alternating batches, so that
// each batch of a has a batch of b beside it, measured under the same
// conditions (on a VM whose vCPUs move between host cores, a comparison made
// seconds apart can differ tenfold). It returns both samples and the ratio
// a/b of each adjacent pair of batches.
func MeasurePaired(bud Budget, a, b Batch) (sa, sb Sample, ratios []float64, err error) {
	return measure(bud, a, b)
}

func measure(bud Budget, a, b Batch) (sa, sb Sample, ratios []float64, err error) {
	size := func(f Batch) (int, error) {
		start, n := time.Now(), 0
		for time.Since(start) < bud.Warmup || n < 10 {
			if _, _, err := f(10); err != nil {
				return 0, err
			}
			n += 10
		}
		per := time.Since(start) / time.Duration(n)
		return max(int(bud.Batch/max(per, 1)), 5), nil
	}
	na, err := size(a)
	if err != nil {
		return sa, sb, nil, err
	}
	var nb int
	if b != nil {
		if nb, err = size(b); err != nil {
			return sa, sb, nil, err
		}
	}
	var nsA, cycA, nsB, cycB []float64
	if trace.On() {
		// A breakdown times the same calls (bench eagain --breakdown).
		trace.Record(trace.Mark, 0, 0, 0, trace.MarkTimed)
		defer trace.Record(trace.Mark, 0, 0, 0, trace.MarkUntimed)
	}
	for k := 0; k < bud.Batches; k++ {
		ns, cyc, err := a(na)
		if err != nil {
			return sa, sb, nil, err
		}
		nsA, cycA = append(nsA, ns), append(cycA, cyc)
		if b == nil {
			continue
		}
		ns, cyc, err = b(nb)
		if err != nil {
			return sa, sb, nil, err
		}
		nsB, cycB = append(nsB, ns), append(cycB, cyc)
		ratios = append(ratios, nsA[k]/ns)
	}
	sa = summarize(nsA, cycA, na)
	if b != nil {
		sb = summarize(nsB, cycB, nb)
	}
	return sa, sb, ratios, nil
}

// summarize makes a Sample of per-batch figures of size round trips each.
func summarize(ns, cyc []float64, size int) Sample {
	s := Sample{NS: stats.Median(ns), Cycles: stats.Median(cyc), RoundTrips: size * len(ns), Batches: len(ns)}
	sorted := append([]float64(nil), ns...)
	sort.Float64s(sorted)
	s.MinNS, s.MaxNS = sorted[0], sorted[len(sorted)-1]
	return s
}

// Result is what a measuring process writes: its sample, and for a paired
// measurement the reference's sample and the per-pair ratios.
type Result struct {
	Sample
	Ref    *Sample   `json:"ref,omitempty"`
	Ratios []float64 `json:"ratios,omitempty"`
}

// writeSample writes a result to path as JSON, atomically, for the driver
// to read.
func writeSample(path string, s Sample) error { return writeResult(path, Result{Sample: s}) }

func writeResult(path string, r Result) error { return writeJSON(path, r) }

// writeJSON writes v to path as JSON, atomically, for the driver to read.
func writeJSON(path string, v any) error { return sys.WriteResult(path, v) }

package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the value of rank ceil(q*n) among sorted, the definition
// Histogram.Quantile approximates.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

func TestHistogramQuantileAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() time.Duration
	}{
		// Log-uniform from 1ns to 100s: every bucket size the histogram has.
		{"log-uniform", func() time.Duration { return time.Duration(math.Exp(rng.Float64() * math.Log(100e9))) }},
		{"uniform 1ms-2ms", func() time.Duration { return time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond))) }},
		{"exponential 250us", func() time.Duration { return time.Duration(rng.ExpFloat64() * 250e3) }},
		{"small exact", func() time.Duration { return time.Duration(rng.IntN(128)) }},
		{"bimodal", func() time.Duration {
			if rng.IntN(10) == 0 {
				return 40*time.Millisecond + time.Duration(rng.IntN(1e6))
			}
			return 80*time.Microsecond + time.Duration(rng.IntN(1e4))
		}},
	}
	quantiles := []float64{0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			vals := make([]time.Duration, 100000)
			var sum time.Duration
			for i := range vals {
				vals[i] = tt.gen()
				sum += vals[i]
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range quantiles {
				want, got := exactQuantile(vals, q), h.Quantile(q)
				if d := math.Abs(float64(got - want)); d > 0.01*float64(want) {
					t.Errorf("Quantile(%v) = %v, want %v within 1%%", q, got, want)
				}
			}
			if h.Count() != int64(len(vals)) || h.Max() != vals[len(vals)-1] || h.Min() != vals[0] ||
				h.Mean() != sum/time.Duration(len(vals)) {
				t.Errorf("count %d max %v min %v mean %v; want %d %v %v %v",
					h.Count(), h.Max(), h.Min(), h.Mean(), len(vals), vals[len(vals)-1], vals[0], sum/time.Duration(len(vals)))
			}
			var sq float64
			mean := float64(sum) / float64(len(vals))
			for _, v := range vals {
				sq += (float64(v) - mean) * (float64(v) - mean)
			}
			want := math.Sqrt(sq / float64(len(vals)))
			if got := float64(h.Stdev()); math.Abs(got-want) > 0.01*want+1 {
				t.Errorf("Stdev() = %v, want %v within 1%%", h.Stdev(), time.Duration(want))
			}
		})
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every bucket starts where the one before it ends, and the values at
	// either end of a bucket fall in it.
	for i := 1; i < bucketOf(math.MaxInt64)+1; i++ {
		lo, w := bucketRange(i)
		plo, pw := bucketRange(i - 1)
		if plo+pw != lo {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, lo, i-1, plo+pw)
		}
		if bucketOf(lo) != i || bucketOf(lo+w-1) != i {
			t.Fatalf("bucket %d is [%d, %d) but holds %d and %d in %d, %d", i, lo, lo+w, lo, lo+w-1, bucketOf(lo), bucketOf(lo+w-1))
		}
		if i >= subBuckets && float64(w)/float64(lo) > 1.0/subBuckets {
			t.Fatalf("bucket %d is %d wide at %d", i, w, lo)
		}
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Max() != 0 || h.Stdev() != 0 || h.Count() != 0 {
		t.Fatal("an empty histogram reports values")
	}
	h.Record(-time.Second)
	h.Record(time.Duration(math.MaxInt64))
	if h.Min() != 0 || h.Max() != time.Duration(math.MaxInt64) || h.Quantile(1) != h.Max() || h.Quantile(0) != 0 {
		t.Fatalf("min %v max %v; want 0 and the largest duration", h.Min(), h.Max())
	}
	if q := h.Quantile(math.NaN()); q != 0 {
		t.Fatalf("Quantile(NaN) = %v", q)
	}
}

func TestHistogramMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var a, b, all Histogram
	for i := range 10000 {
		v := time.Duration(rng.Int64N(int64(time.Second)))
		if i%3 == 0 {
			v *= 50 // b holds larger values, so merging must grow a
			b.Record(v)
		} else {
			a.Record(v)
		}
		all.Record(v)
	}
	var empty Histogram
	a.Merge(&empty)
	empty.Merge(&b)
	a.Merge(&empty)
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 1} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("merged Quantile(%v) = %v, want %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.Count() != all.Count() || a.Mean() != all.Mean() || a.Min() != all.Min() || a.Max() != all.Max() {
		t.Errorf("merged count %d mean %v min %v max %v; want %d %v %v %v",
			a.Count(), a.Mean(), a.Min(), a.Max(), all.Count(), all.Mean(), all.Min(), all.Max())
	}
}

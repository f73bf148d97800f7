package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power-of-two range of values
// is split into 2^subBits buckets of equal width, so a bucket is at most
// 1/128 of the values in it wide, and the value a quantile reports (the
// middle of its bucket) is within 0.4% of the recorded one.
const subBits = 7

const subBuckets = 1 << subBits

// Histogram is a log-linear histogram of durations in the manner of
// HdrHistogram: values below 128ns are counted exactly, and above that every
// power-of-two range is split into 128 linear buckets, so quantiles are
// within 1% of the true ones over the whole range of a time.Duration while
// memory grows only with the logarithm of the largest value. Count, Max,
// Min and Mean are exact.
//
// The zero value is an empty histogram ready to use. A Histogram is not
// safe for concurrent use.
type Histogram struct {
	counts   []int64
	count    int64
	sum      int64 // nanoseconds
	min, max time.Duration
}

// bucketOf returns the index of the bucket that counts v ≥ 0.
func bucketOf(v int64) int {
	if v < subBuckets {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 1 // v is in [2^e, 2^(e+1)), e ≥ subBits
	sub := int(v>>(e-subBits)) - subBuckets
	return (e-subBits+1)*subBuckets + sub
}

// bucketRange returns the smallest value bucket i counts and the bucket's
// width.
func bucketRange(i int) (lo, width int64) {
	if i < subBuckets {
		return int64(i), 1
	}
	k := uint(i >> subBits)
	sub := int64(i & (subBuckets - 1))
	return (subBuckets + sub) << (k - 1), 1 << (k - 1)
}

// bucketMid returns the middle of bucket i, the value it reports.
func bucketMid(i int) int64 {
	lo, w := bucketRange(i)
	return lo + (w-1)/2
}

// Record adds one value; a negative one counts as zero.
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	i := bucketOf(int64(d))
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]int64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	if h.count == 0 || d < h.min {
		h.min = d
	}
	h.max = max(h.max, d)
	h.count++
	h.sum += int64(d)
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.count == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.counts = append(h.counts, make([]int64, len(o.counts)-len(h.counts))...)
	}
	for i, n := range o.counts {
		h.counts[i] += n
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.count += o.count
	h.sum += o.sum
}

// Count returns how many values were recorded.
func (h *Histogram) Count() int64 { return h.count }

// Max returns the largest value recorded, or 0 where there is none.
func (h *Histogram) Max() time.Duration { return h.max }

// Min returns the smallest value recorded, or 0 where there is none.
func (h *Histogram) Min() time.Duration { return h.min }

// Mean returns the mean of the values recorded, or 0 where there is none.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / h.count)
}

// Quantile returns the value below or at which a fraction q of the recorded
// values lie: Quantile(0.99) is the 99th percentile. Quantile(0) is Min and
// Quantile(1) is Max; others are within 1% of the recorded value of that
// rank. An empty histogram returns 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	switch {
	case h.count == 0:
		return 0
	case q <= 0 || math.IsNaN(q):
		return h.min
	case q >= 1:
		return h.max
	}
	rank := max(int64(math.Ceil(q*float64(h.count))), 1)
	var seen int64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			return min(max(time.Duration(bucketMid(i)), h.min), h.max)
		}
	}
	return h.max
}

// Stdev returns the standard deviation of the values recorded, computed
// from the buckets.
func (h *Histogram) Stdev() time.Duration {
	if h.count == 0 {
		return 0
	}
	mean := float64(h.sum) / float64(h.count)
	var sq float64
	for i, n := range h.counts {
		if n != 0 {
			d := float64(bucketMid(i)) - mean
			sq += float64(n) * d * d
		}
	}
	return time.Duration(math.Sqrt(sq / float64(h.count)))
}

// withinStdev returns the fraction of the values within one standard
// deviation of the mean, wrk's "+/- Stdev".
func (h *Histogram) withinStdev() float64 {
	if h.count == 0 {
		return 0
	}
	mean, sd := h.Mean(), h.Stdev()
	lo, hi := int64(mean-sd), int64(mean+sd)
	var in int64
	for i, n := range h.counts {
		if v := bucketMid(i); n != 0 && lo <= v && v <= hi {
			in += n
		}
	}
	return float64(in) / float64(h.count)
}

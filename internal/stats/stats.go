// Package stats summarises repeated measurements and compares two sets of
// them the way benchstat does: the median and the extremes, a
// distribution-free confidence interval for the median (from order
// statistics, so it needs no assumption about the shape of the noise), and
// the Mann-Whitney U test of whether two sets differ.
package stats

import (
	"math"
	"slices"
)

// Summary describes a set of measurements.
type Summary struct {
	N        int
	Median   float64
	Min, Max float64
	// Lo and Hi bound the median with the confidence Summarize was asked
	// for; HasCI is false where N is too small for any interval of order
	// statistics to reach it (under 6 for 95%).
	Lo, Hi float64
	HasCI  bool
}

// Summarize returns the median, extremes and confidence interval of xs at
// confidence (such as 0.95). An empty xs gives a zero Summary.
func Summarize(xs []float64, confidence float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Sorted(slices.Values(xs))
	sum := Summary{N: len(s), Median: median(s), Min: s[0], Max: s[len(s)-1]}
	sum.Lo, sum.Hi, sum.HasCI = MedianCI(s, confidence)
	return sum
}

// Median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return median(slices.Sorted(slices.Values(xs)))
}

func median(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MedianCI returns the narrowest interval [s[k-1], s[n-k]] of the sorted
// sample s that holds the median with at least confidence, whatever the
// distribution: the median lies below the k-th smallest of n values with
// probability P(Binomial(n, 1/2) < k). ok is false where even the whole
// range, from the least to the greatest, falls short.
func MedianCI(s []float64, confidence float64) (lo, hi float64, ok bool) {
	n := len(s)
	best := 0
	for k := 1; k <= n/2; k++ {
		if 1-2*binomCDF(n, k-1) >= confidence {
			best = k
		} else {
			break
		}
	}
	if best == 0 {
		return 0, 0, false
	}
	return s[best-1], s[n-best], true
}

// binomCDF is P(Binomial(n, 1/2) <= k).
func binomCDF(n, k int) float64 {
	p := 0.0
	for i := 0; i <= k; i++ {
		p += math.Exp(lchoose(n, i) - float64(n)*math.Ln2)
	}
	return p
}

func lchoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

// MannWhitney returns the two-sided p-value of the Mann-Whitney U test
// that a and b come from the same distribution: exact where there are no
// ties and both sets are small (at most 50 each), from the normal
// approximation with the tie correction otherwise. Two sets of three
// cannot give p below 0.1; four and four give 0.029 at best. It returns 1
// where either set is empty or every value is equal.
func MannWhitney(a, b []float64) float64 {
	n1, n2 := len(a), len(b)
	if n1 == 0 || n2 == 0 {
		return 1
	}
	type v struct {
		x     float64
		first bool
	}
	all := make([]v, 0, n1+n2)
	for _, x := range a {
		all = append(all, v{x, true})
	}
	for _, x := range b {
		all = append(all, v{x, false})
	}
	slices.SortFunc(all, func(p, q v) int {
		switch {
		case p.x < q.x:
			return -1
		case p.x > q.x:
			return 1
		}
		return 0
	})
	// Ranks from 1, ties sharing their mean rank; the tie term for the
	// variance's correction.
	r1, ties, tied := 0.0, 0.0, false
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].x == all[i].x {
			j++
		}
		rank := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			if all[k].first {
				r1 += rank
			}
		}
		if t := float64(j - i); t > 1 {
			ties += t*t*t - t
			tied = true
		}
		i = j
	}
	u := r1 - float64(n1*(n1+1))/2
	if !tied && n1 <= 50 && n2 <= 50 {
		return exactP(n1, n2, u)
	}
	n := float64(n1 + n2)
	mean := float64(n1*n2) / 2
	variance := float64(n1*n2) / 12 * (n + 1 - ties/(n*(n-1)))
	if variance <= 0 {
		return 1
	}
	z := (math.Abs(u-mean) - 0.5) / math.Sqrt(variance) // with continuity correction
	if z < 0 {
		z = 0
	}
	return math.Min(1, math.Erfc(z/math.Sqrt2))
}

// exactP is the two-sided p-value of U for sets of n1 and n2 without ties:
// the count of orderings with U as extreme, over every ordering.
func exactP(n1, n2 int, u float64) float64 {
	// counts[i][j][k]: orderings of i values of the first set and j of the
	// second with U = k; built a row of i at a time.
	maxU := n1 * n2
	prev := make([][]float64, n2+1)
	for j := range prev {
		prev[j] = make([]float64, maxU+1)
		prev[j][0] = 1 // no value of the first set: U = 0
	}
	for i := 1; i <= n1; i++ {
		cur := make([][]float64, n2+1)
		cur[0] = make([]float64, maxU+1)
		cur[0][0] = 1
		for j := 1; j <= n2; j++ {
			cur[j] = make([]float64, maxU+1)
			for k := 0; k <= i*j; k++ {
				// The largest value is the first set's (it beats all j of
				// the second) or the second's.
				if k >= j {
					cur[j][k] += prev[j][k-j]
				}
				cur[j][k] += cur[j-1][k]
			}
		}
		prev = cur
	}
	dist := prev[n2]
	total := 0.0
	for _, c := range dist {
		total += c
	}
	lo, hi := 0.0, 0.0
	for k, c := range dist {
		if float64(k) <= u {
			lo += c
		}
		if float64(k) >= u {
			hi += c
		}
	}
	return math.Min(1, 2*math.Min(lo, hi)/total)
}

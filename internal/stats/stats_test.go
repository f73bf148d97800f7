package stats

import (
	"math"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name   string
		xs     []float64
		median float64
		min    float64
		max    float64
		ci     bool
		lo, hi float64
	}{
		{"none", nil, 0, 0, 0, false, 0, 0},
		{"one", []float64{5}, 5, 5, 5, false, 0, 0},
		{"three, unsorted", []float64{3, 1, 2}, 2, 1, 3, false, 0, 0},
		{"four: the mean of the middle two", []float64{4, 1, 3, 2}, 2.5, 1, 4, false, 0, 0},
		// Six values: the whole range covers the median with 1-2/64 =
		// 0.969 >= 0.95; [x2, x5] only with 1-2*7/64 = 0.78.
		{"six: the range", []float64{6, 5, 4, 3, 2, 1}, 3.5, 1, 6, true, 1, 6},
		// Ten: [x2, x9] covers with 1-2*11/1024 = 0.979, [x3, x8] with
		// 1-2*56/1024 = 0.89.
		{"ten", []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 5.5, 1, 10, true, 2, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summarize(tt.xs, 0.95)
			if s.N != len(tt.xs) || s.Median != tt.median || s.Min != tt.min || s.Max != tt.max {
				t.Errorf("Summarize(%v) = %+v, want median %v, min %v, max %v", tt.xs, s, tt.median, tt.min, tt.max)
			}
			if s.HasCI != tt.ci || s.Lo != tt.lo || s.Hi != tt.hi {
				t.Errorf("Summarize(%v) interval %v [%v, %v], want %v [%v, %v]", tt.xs, s.HasCI, s.Lo, s.Hi, tt.ci, tt.lo, tt.hi)
			}
		})
	}
}

func TestMannWhitney(t *testing.T) {
	tests := []struct {
		name string
		a, b []float64
		want float64
	}{
		// Apart, three and three: 1 ordering of 20 each way.
		{"3 vs 3 apart", []float64{1, 2, 3}, []float64{4, 5, 6}, 0.1},
		// Four and four apart: 2/70.
		{"4 vs 4 apart", []float64{1, 2, 3, 4}, []float64{5, 6, 7, 8}, 2.0 / 70},
		{"4 vs 4 apart, the other way", []float64{5, 6, 7, 8}, []float64{1, 2, 3, 4}, 2.0 / 70},
		// Interleaved evenly: U = 8 of 16, the middle.
		{"interleaved", []float64{1, 4, 5, 8}, []float64{2, 3, 6, 7}, 1},
		{"empty", nil, []float64{1}, 1},
		{"all equal", []float64{1, 1, 1}, []float64{1, 1, 1}, 1},
		// Three 5s share rank 6: R1 = 22, U = 1, mean 18; the variance
		// 36/12 * (13 - 24/132) = 38.4545; z = (17 - 0.5)/6.2012 =
		// 2.6608; p = erfc(z/sqrt 2) = 0.007796.
		{"ties: normal approximation", []float64{1, 2, 3, 4, 5, 5}, []float64{5, 6, 7, 8, 9, 10}, 0.007796},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MannWhitney(tt.a, tt.b); math.Abs(got-tt.want) > 1e-4 {
				t.Errorf("MannWhitney(%v, %v) = %.6f, want %.6f", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

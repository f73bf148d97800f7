package bench

import (
	"errors"
	"fmt"
	"slices"

	"github.com/newtsim/newtsim/sim/chart"
)

// WriteSVG draws the report of bench ipc, udp or tcp as a bar chart in the
// file at path: the round-trip rows (ipc, udp) in ns, or for tcp the bulk
// throughput rows in Mbit/s; each bar with its least and greatest batch or
// repetition as an error bar, and the machine and commit under it.
func (r *Report) WriteSVG(path string) error {
	c := chart.Chart{Caption: Caption(r.Machine, r.Command)}
	switch {
	case len(r.Rows) > 0:
		c.Title, c.Unit = fmt.Sprintf("bench %s: time per round trip, median of batches (bars: least to greatest)", r.Bench), "ns"
		for _, row := range r.Rows {
			b := chart.Bar{Label: row.Name, Value: row.NS, Note: fmt.Sprintf("%.0f cycles", row.Cycles)}
			if row.MaxNS > 0 && row.MinNS > 0 && row.MinNS <= row.NS && row.NS <= row.MaxNS {
				b.Lo, b.Hi = row.MinNS, row.MaxNS
			}
			c.Bars = append(c.Bars, b)
		}
	case len(r.Bulk) > 0:
		c.Title, c.Unit = fmt.Sprintf("bench %s: bulk throughput, median of repetitions (bars: least to greatest)", r.Bench), "Mbit/s"
		for _, row := range r.Bulk {
			b := chart.Bar{Label: row.Name, Value: row.Mbits, Note: fmt.Sprintf("%d repetitions", row.Reps)}
			if row.MaxMbits > 0 && row.MinMbits > 0 && row.MinMbits <= row.Mbits && row.Mbits <= row.MaxMbits {
				b.Lo, b.Hi = row.MinMbits, row.MaxMbits
			}
			c.Bars = append(c.Bars, b)
		}
	default:
		return errors.New("bench: the report has no rows to draw")
	}
	c.Log = spansDecades(c.Bars)
	return c.WriteFile(path)
}

// spansDecades reports whether bars differ by more than 20 times, which a
// linear axis would flatten.
func spansDecades(bars []chart.Bar) bool {
	lo, hi := 0.0, 0.0
	for _, b := range bars {
		if b.Value > 0 && (lo == 0 || b.Value < lo) {
			lo = b.Value
		}
		hi = max(hi, b.Value, b.Hi)
	}
	if lo == 0 {
		return false
	}
	for _, b := range bars {
		if b.Value <= 0 {
			return false // a log axis cannot draw it
		}
	}
	return hi/lo > 20
}

// WriteSVG draws bench faults' restart times as grouped bars: a group per
// server killed, a bar per backend; a restart not seen within the window
// is drawn as 0.
func (r *FaultReport) WriteSVG(path string) error {
	c := chart.Chart{Title: "bench faults: from kill -9 to the server running and registered again",
		Unit: "ms", Caption: Caption(r.Machine, r.Command)}
	var servers []string
	idx := map[string]int{}
	for _, row := range r.Rows {
		if _, ok := idx[row.Backend]; !ok {
			idx[row.Backend] = len(c.Series)
			c.Series = append(c.Series, row.Backend)
		}
		if !slices.Contains(servers, row.Server) {
			servers = append(servers, row.Server)
		}
	}
	for _, s := range servers {
		g := chart.Group{Label: s, Values: make([]float64, len(c.Series))}
		for _, row := range r.Rows {
			if row.Server == s && row.RestartMS != nil {
				g.Values[idx[row.Backend]] = *row.RestartMS
			}
		}
		c.Groups = append(c.Groups, g)
	}
	if len(c.Groups) == 0 {
		return errors.New("bench faults: no rows to draw")
	}
	return c.WriteFile(path)
}

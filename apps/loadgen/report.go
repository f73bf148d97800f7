package loadgen

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is the result of a run. Durations are in nanoseconds in JSON.
type Report struct {
	// Requests is how many responses were read in full, whatever their
	// status.
	Requests int64 `json:"requests"`
	// Duration is how long the run took, by Config.Clock.
	Duration time.Duration `json:"duration_ns"`
	// RequestsPerSec is Requests over Duration.
	RequestsPerSec float64 `json:"requests_per_sec"`
	// BytesRead is every byte received: heads, bodies and anything else.
	BytesRead int64 `json:"bytes_read"`
	// BytesPerSec is the transfer rate, BytesRead over Duration.
	BytesPerSec float64 `json:"bytes_per_sec"`
	// Connections is how many connections were opened (connected).
	Connections int64 `json:"connections"`
	// Latency summarizes the latencies of the completed requests: from
	// the first byte of a request written to the last of its response read.
	Latency Latency `json:"latency"`
	// Errors counts the failed requests by the kind of failure, and the
	// responses with a status other than 2xx or 3xx.
	Errors Errors `json:"errors"`
	// StatusCodes counts the completed responses by status code.
	StatusCodes map[int]int64 `json:"status_codes"`
	// Histogram holds every latency recorded, for other quantiles or to
	// merge runs.
	Histogram *Histogram `json:"-"`
}

// Latency summarizes a latency histogram.
type Latency struct {
	Mean  time.Duration `json:"mean_ns"`
	Stdev time.Duration `json:"stdev_ns"`
	// WithinStdev is the fraction of latencies within one Stdev of Mean.
	WithinStdev float64       `json:"within_stdev"`
	P50         time.Duration `json:"p50_ns"`
	P75         time.Duration `json:"p75_ns"`
	P90         time.Duration `json:"p90_ns"`
	P99         time.Duration `json:"p99_ns"`
	Max         time.Duration `json:"max_ns"`
}

// summarize returns h's summary.
func summarize(h *Histogram) Latency {
	return Latency{
		Mean:        h.Mean(),
		Stdev:       h.Stdev(),
		WithinStdev: h.withinStdev(),
		P50:         h.Quantile(0.50),
		P75:         h.Quantile(0.75),
		P90:         h.Quantile(0.90),
		P99:         h.Quantile(0.99),
		Max:         h.Max(),
	}
}

// Errors counts errors by kind. Each failed request counts once, under the
// kind of the failure that lost it, so a connection that fails with several
// requests in flight counts each of them. Status counts responses instead:
// those requests completed.
type Errors struct {
	// Connect counts connects that failed other than by refusal.
	Connect int64 `json:"connect"`
	// Refused counts connects the server refused.
	Refused int64 `json:"refused"`
	// Reset counts requests lost to a reset or broken connection.
	Reset int64 `json:"reset"`
	// Timeout counts requests (and connects) not done within
	// Config.Timeout.
	Timeout int64 `json:"timeout"`
	// Status counts responses whose status was not 2xx or 3xx.
	Status int64 `json:"status"`
	// Protocol counts requests lost to a response that was not valid
	// HTTP/1.1, or whose length could not be known.
	Protocol int64 `json:"protocol"`
	// EOF counts requests lost to the server closing the connection before
	// their response ended.
	EOF int64 `json:"eof"`
}

// Failed returns how many requests failed: the errors of every kind but
// Status.
func (e Errors) Failed() int64 {
	return e.Connect + e.Refused + e.Reset + e.Timeout + e.Protocol + e.EOF
}

// String formats the report as wrk does.
func (r Report) String() string {
	var b strings.Builder
	l := r.Latency
	fmt.Fprintf(&b, "  Thread Stats%6s%11s%8s%12s\n", "Avg", "Stdev", "Max", "+/- Stdev")
	fmt.Fprintf(&b, "    %-10s%8s%10s%9s%8.2f%%\n", "Latency",
		formatDuration(l.Mean), formatDuration(l.Stdev), formatDuration(l.Max), 100*l.WithinStdev)
	b.WriteString("  Latency Distribution\n")
	for _, p := range []struct {
		pct float64
		d   time.Duration
	}{{50, l.P50}, {75, l.P75}, {90, l.P90}, {99, l.P99}} {
		fmt.Fprintf(&b, "  %7.0f%%%10s\n", p.pct, formatDuration(p.d))
	}
	fmt.Fprintf(&b, "  %d requests in %s, %s read, %d connections opened\n",
		r.Requests, formatDuration(r.Duration), formatBytes(float64(r.BytesRead)), r.Connections)
	if e := r.Errors; e.Failed() > 0 {
		fmt.Fprintf(&b, "  Socket errors: connect %d, refused %d, reset %d, timeout %d, protocol %d, eof %d\n",
			e.Connect, e.Refused, e.Reset, e.Timeout, e.Protocol, e.EOF)
	}
	if r.Errors.Status > 0 {
		fmt.Fprintf(&b, "  Non-2xx or 3xx responses: %d\n", r.Errors.Status)
	}
	if len(r.StatusCodes) > 0 {
		b.WriteString("  Status codes:")
		for i, code := range slices.Sorted(maps.Keys(r.StatusCodes)) {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " %d %d", code, r.StatusCodes[code])
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "Requests/sec: %10.2f\n", r.RequestsPerSec)
	fmt.Fprintf(&b, "Transfer/sec: %10s\n", formatBytes(r.BytesPerSec))
	return b.String()
}

// formatDuration formats d with two decimals in the largest unit, as wrk
// does: 635.91us, 12.92ms, 1.01s.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fus", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return fmt.Sprintf("%.2fm", d.Minutes())
	}
}

// formatBytes formats n bytes with two decimals in binary units, as wrk
// does: 27.56MB.
func formatBytes(n float64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%.2f%s", n, units[i])
}

// This file reads metrics the way Prometheus does: one scrape of a
// process's /metrics, parsed by the Prometheus text parser, and the value
// of a series looked up by name and labels. Every test and benchmark that
// reads a process's metrics uses it.

package prom

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// LocalURL returns the URL of the metrics a process serves on port of the
// loopback address, as Serve serves them.
func LocalURL(port int) string {
	return "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
}

// Scrape gets the metrics at url, in the Prometheus text format, and
// returns them by metric family name. It fails when the request fails or
// ends with a status other than 200, or when the answer does not parse;
// the request ends when ctx does.
func Scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("prom: scrape %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version="+expfmt.TextVersion)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("prom: scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("prom: scrape %s: HTTP %s", url, resp.Status)
	}
	fams, err := Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("prom: scrape %s: %w", url, err)
	}
	return fams, nil
}

// Parse reads metrics in the Prometheus text format (version 0.0.4) and
// returns them by metric family name.
func Parse(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("prom: parse metrics: %w", err)
	}
	return fams, nil
}

// Value returns the value of the metric called name: the sum of its series
// whose labels include every pair in labels (all its series when labels is
// empty), and true. It reads counters, gauges and untyped metrics.
//
// A missing metric is (0, false): no family called name, no series with
// those labels, or a histogram or summary, which has no single value. A
// caller that wants another answer for a missing metric (a series not yet
// exported counting as zero, say) says so where it calls Value.
func Value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	mf, ok := fams[name]
	if !ok {
		return 0, false
	}
	sum, found := 0.0, false
	for _, m := range mf.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			sum += m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			sum += m.GetGauge().GetValue()
		case dto.MetricType_UNTYPED:
			sum += m.GetUntyped().GetValue()
		default:
			return 0, false
		}
		found = true
	}
	if !found {
		return 0, false
	}
	return sum, true
}

// hasLabels says whether m carries every label pair in want.
func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// WriteText writes the families whose names start with one of prefixes
// (every family when none is given) to w in the Prometheus text format,
// sorted by name: for a person reading a process's metrics in a log.
func WriteText(w io.Writer, fams map[string]*dto.MetricFamily, prefixes ...string) error {
	names := make([]string, 0, len(fams))
	for name := range fams {
		if len(prefixes) == 0 || slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if _, err := expfmt.MetricFamilyToText(w, fams[name]); err != nil {
			return fmt.Errorf("prom: write %s: %w", name, err)
		}
	}
	return nil
}

// This file reads docs/METRICS.md, the list of every metric, for the tests
// that check it against what the processes register and export.

package promtest

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
)

// MetricsDoc is the list of every metric, in the module.
const MetricsDoc = "docs/METRICS.md"

// DocMetric is one row of MetricsDoc's tables.
type DocMetric struct {
	// Name is the metric's name; one ending in "*" stands for every name
	// it is a prefix of (go_*: the Go collector's).
	Name string
	// Type is counter, gauge, histogram or various.
	Type string
	// Labels are the metric's own label names, sorted.
	Labels []string
	// By says which processes export it: "every process", "kernel", a role.
	By string
}

// ReadMetricsDoc reads the rows of every table of the file at path whose
// header is | metric | type | labels | exported by | meaning |, each with
// a backquoted metric name first.
func ReadMetricsDoc(path string) ([]DocMetric, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("promtest: metrics doc: %w", err)
	}
	defer f.Close()
	const header = "| metric | type | labels | exported by | meaning |"
	var ms []DocMetric
	inTable := false
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		switch {
		case text == header:
			inTable = true
			continue
		case !strings.HasPrefix(text, "|"):
			inTable = false
		}
		if !inTable || strings.HasPrefix(text, "|---") {
			continue
		}
		cells := strings.Split(text, "|")
		name := strings.TrimSpace(cells[1])
		if len(cells) != 7 || len(name) < 3 || name[0] != '`' || name[len(name)-1] != '`' {
			return nil, fmt.Errorf("promtest: %s:%d: want | `metric` | type | labels | exported by | meaning |", path, line)
		}
		m := DocMetric{Name: strings.Trim(name, "`"), Type: strings.TrimSpace(cells[2]), By: strings.TrimSpace(cells[4])}
		for _, l := range strings.Split(cells[3], ",") {
			if l = strings.TrimSpace(l); l != "" {
				m.Labels = append(m.Labels, l)
			}
		}
		slices.Sort(m.Labels)
		ms = append(ms, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("promtest: metrics doc: %w", err)
	}
	return ms, nil
}

// Find returns the row of ms that documents the metric name: its own row,
// or a prefix row (go_*) it falls under.
func Find(ms []DocMetric, name string) (DocMetric, bool) {
	for _, m := range ms {
		if m.Name == name || strings.HasSuffix(m.Name, "*") && strings.HasPrefix(name, strings.TrimSuffix(m.Name, "*")) {
			return m, true
		}
	}
	return DocMetric{}, false
}

// Package compare reads two result files of the same benchmark (the JSON
// every `newtsim bench` command writes) and says, row by row, how the
// second differs from the first and whether the difference stands out of
// the noise, as benchstat does for Go benchmarks.
//
// The noise is what the files record of it. Where both rows carry their
// samples (a `NAME_samples` list for the figure NAME, or tcp's per-batch
// rates), the Mann-Whitney U test decides, at p < 0.05; where both carry
// only their extremes (`min_NAME`, `max_NAME`), two ranges that do not
// overlap differ and two that do are within the noise; a row with a single
// figure on either side cannot be judged, and says so.
package compare

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/newtsim/newtsim/internal/stats"
)

// Alpha is the p-value under which the U test calls a difference real.
const Alpha = 0.05

// Direction says which way a figure improves.
type Direction int

// The directions.
const (
	Lower  Direction = -1 // a time: less is better
	Higher Direction = 1  // a rate: more is better
)

// table describes one list of rows in a result file.
type table struct {
	field   string   // the JSON field that holds the rows (a list, or one object)
	key     []string // the fields that name a row
	metrics []metric
}

// metric is one figure of a row.
type metric struct {
	name    string
	better  Direction
	samples string // the field of its samples, where not NAME_samples
}

// kinds are the result files compare reads, by their `bench` field.
var kinds = map[string][]table{
	"ipc": {{field: "rows", key: []string{"name"}, metrics: []metric{{name: "ns", better: Lower}}}},
	"eagain": {
		{field: "rows", key: []string{"name"}, metrics: []metric{{name: "ns", better: Lower}}},
		{field: "reference", key: []string{"name"}, metrics: []metric{{name: "ns", better: Lower}}},
	},
	"udp": {
		{field: "rows", key: []string{"name"}, metrics: []metric{{name: "ns", better: Lower}}},
		{field: "streams", key: []string{"name"}, metrics: []metric{{name: "datagrams_per_s", better: Higher}}},
	},
	"tcp": {
		{field: "bulk", key: []string{"name"}, metrics: []metric{{name: "mbit_per_s", better: Higher}}},
		{field: "conns", key: []string{"name"}, metrics: []metric{{name: "conns_per_s", better: Higher, samples: "batch_rates"}}},
	},
	"http": {{field: "rows", key: []string{"workload", "server"}, metrics: []metric{
		{name: "req_per_s", better: Higher}, {name: "mean_us", better: Lower}, {name: "p50_us", better: Lower},
		{name: "p99_us", better: Lower}}}},
	"faults": {{field: "rows", key: []string{"backend", "server"}, metrics: []metric{
		{name: "restart_ms", better: Lower}, {name: "recovered_ms", better: Lower}, {name: "failed_requests", better: Lower}}}},
}

func init() { kinds["paper"] = kinds["http"] } // `bench paper` writes http's rows

// Kinds lists the benchmarks compare reads.
func Kinds() []string {
	var s []string
	for k := range kinds {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Measure is one figure of one row, with what the file records of its
// spread.
type Measure struct {
	Table, Row, Metric string
	Better             Direction
	Value              float64
	Samples            []float64 // empty where the file has none
	Min, Max           float64
	HasRange           bool
}

// File is a result file as compare reads it.
type File struct {
	Path     string
	Bench    string
	Command  string
	Time     string
	Machine  string // the CPU model, CPU count and host name
	Measures []Measure
}

// Read reads the result file at path.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("compare: %s: %w", path, err)
	}
	f.Path = path
	return f, nil
}

// Parse reads a result file's JSON.
func Parse(b []byte) (*File, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	f := &File{Bench: str(m["bench"]), Command: str(m["command"]), Time: str(m["time"])}
	if mc, ok := m["machine"].(map[string]any); ok {
		f.Machine = fmt.Sprintf("%s, %v CPUs, host %s", str(mc["cpu_model"]), mc["cpus"], str(mc["hostname"]))
	}
	tables, ok := kinds[f.Bench]
	if !ok {
		return nil, fmt.Errorf("bench %q: compare reads %s", f.Bench, strings.Join(Kinds(), ", "))
	}
	for _, t := range tables {
		var rows []any
		switch v := m[t.field].(type) {
		case []any:
			rows = v
		case map[string]any:
			rows = []any{v}
		}
		for _, r := range rows {
			row, ok := r.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: a row is not an object", t.field)
			}
			if str(row["not_installed"]) != "" {
				continue // not measured: the server's program is missing
			}
			var key []string
			for _, k := range t.key {
				key = append(key, str(row[k]))
			}
			for _, mt := range t.metrics {
				v, ok := row[mt.name].(float64)
				if !ok {
					continue // not measured (a row marked not installed, say)
				}
				ms := Measure{Table: t.field, Row: strings.Join(key, " / "), Metric: mt.name, Better: mt.better, Value: v}
				sf := mt.samples
				if sf == "" {
					sf = mt.name + "_samples"
				}
				if xs, ok := row[sf].([]any); ok {
					for _, x := range xs {
						if x, ok := x.(float64); ok {
							ms.Samples = append(ms.Samples, x)
						}
					}
				}
				lo, okLo := row["min_"+mt.name].(float64)
				hi, okHi := row["max_"+mt.name].(float64)
				if okLo && okHi {
					ms.Min, ms.Max, ms.HasRange = lo, hi, true
				} else if len(ms.Samples) > 0 {
					s := stats.Summarize(ms.Samples, 0.95)
					ms.Min, ms.Max, ms.HasRange = s.Min, s.Max, true
				}
				f.Measures = append(f.Measures, ms)
			}
		}
	}
	return f, nil
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// Verdict is whether a difference stands out of the noise.
type Verdict int

// The verdicts.
const (
	Unknown Verdict = iota // a single figure on a side: no noise to judge by
	Same                   // within the noise
	Differs                // out of the noise
)

// Row is one figure compared.
type Row struct {
	Table, Row, Metric string
	Old, New           *Measure // nil where the row is in one file only
	Ratio              float64  // new / old
	Verdict            Verdict
	Method             string // how the verdict was reached
	P                  float64
}

// Better reports whether a difference that stands out is an improvement.
func (r Row) Better() bool {
	return r.Verdict == Differs && (r.Ratio > 1) == (r.Old.Better == Higher)
}

// Compare compares the figures of two files of the same benchmark, in the
// old file's order, then the rows only the new one has.
func Compare(old, new *File) ([]Row, error) {
	if kinds[old.Bench] == nil || !slices.Equal(tableFields(old.Bench), tableFields(new.Bench)) {
		return nil, fmt.Errorf("compare: %s is bench %s, %s is bench %s", old.Path, old.Bench, new.Path, new.Bench)
	}
	id := func(m *Measure) string { return m.Table + "\x00" + m.Row + "\x00" + m.Metric }
	byID := map[string]*Measure{}
	for i := range new.Measures {
		byID[id(&new.Measures[i])] = &new.Measures[i]
	}
	var rows []Row
	seen := map[string]bool{}
	for i := range old.Measures {
		o := &old.Measures[i]
		r := Row{Table: o.Table, Row: o.Row, Metric: o.Metric, Old: o, New: byID[id(o)]}
		seen[id(o)] = true
		if r.New != nil {
			judge(&r)
		}
		rows = append(rows, r)
	}
	for i := range new.Measures {
		if n := &new.Measures[i]; !seen[id(n)] {
			rows = append(rows, Row{Table: n.Table, Row: n.Row, Metric: n.Metric, New: n})
		}
	}
	return rows, nil
}

func tableFields(bench string) []string {
	var s []string
	for _, t := range kinds[bench] {
		s = append(s, t.field)
	}
	return s
}

// judge sets a row's ratio and verdict.
func judge(r *Row) {
	o, n := r.Old, r.New
	switch {
	case o.Value != 0:
		r.Ratio = n.Value / o.Value
	case n.Value == 0:
		r.Ratio = 1 // none before, none after (failed requests, say)
	default:
		r.Ratio = math.Inf(1)
	}
	switch {
	case len(o.Samples) >= 2 && len(n.Samples) >= 2:
		r.P = stats.MannWhitney(o.Samples, n.Samples)
		r.Method = fmt.Sprintf("U test, p=%.3f n=%d+%d", r.P, len(o.Samples), len(n.Samples))
		r.Verdict = Same
		if r.P < Alpha {
			r.Verdict = Differs
		}
	case o.HasRange && n.HasRange:
		r.Verdict = Same
		r.Method = "min-max overlap"
		if o.Max < n.Min || n.Max < o.Min {
			r.Verdict, r.Method = Differs, "min-max apart"
		}
	default:
		r.Method = "one sample: no spread"
	}
}

// Write prints the comparison as a table: each figure old and new, the
// ratio and change, and whether it stands out ("~" where it does not, as
// benchstat writes it).
func Write(w io.Writer, old, new *File, rows []Row) {
	fmt.Fprintf(w, "bench %s\n", old.Bench)
	for _, f := range []struct {
		label string
		f     *File
	}{{"old", old}, {"new", new}} {
		fmt.Fprintf(w, "  %s: %s (%s; %s)\n", f.label, f.f.Path, f.f.Time, f.f.Machine)
	}
	if old.Machine != new.Machine {
		fmt.Fprintln(w, "  the machines differ: a ratio compares them, not the code alone")
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r.Table+": "+r.Row))
	}
	fmt.Fprintf(w, "\n%-*s  %-15s %13s %13s %8s %8s  %s\n", width, "row", "figure", "old", "new", "new/old", "change", "noise")
	for _, r := range rows {
		name := r.Table + ": " + r.Row
		switch {
		case r.New == nil:
			fmt.Fprintf(w, "%-*s  %-15s %13s %13s  only in old\n", width, name, r.Metric, num(r.Old.Value), "-")
			continue
		case r.Old == nil:
			fmt.Fprintf(w, "%-*s  %-15s %13s %13s  only in new\n", width, name, r.Metric, "-", num(r.New.Value))
			continue
		}
		change, verdict := "", ""
		switch r.Verdict {
		case Differs:
			change = fmt.Sprintf("%+.1f%%", (r.Ratio-1)*100)
			verdict = "worse"
			if r.Better() {
				verdict = "better"
			}
		case Same:
			change, verdict = "~", "within the noise"
		default:
			change, verdict = fmt.Sprintf("%+.1f%%?", (r.Ratio-1)*100), "cannot tell"
		}
		fmt.Fprintf(w, "%-*s  %-15s %13s %13s %7.2fx %8s  %s (%s)\n", width, name, r.Metric,
			num(r.Old.Value), num(r.New.Value), r.Ratio, change, verdict, r.Method)
	}
}

// num prints a figure with three significant digits or more.
func num(x float64) string {
	switch {
	case math.Abs(x) >= 1000:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}

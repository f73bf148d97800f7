package compare

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// want is what one compared figure should come to.
type want struct {
	table, row, metric string
	verdict            Verdict
	method             string  // a prefix of Row.Method; "old" or "new" for a row in one file only
	ratio              float64 // 0: not checked
	better             bool
}

func TestCompare(t *testing.T) {
	tests := []struct {
		kind string
		want []want
	}{
		{"ipc", []want{
			{"rows", "shm-spin-2core", "ns", Differs, "min-max apart", 500.0 / 640, true},
			{"rows", "kernel-2core", "ns", Same, "min-max overlap", 9500.0 / 9000, false},
			{"rows", "pipe-2core", "ns", Unknown, "old", 0, false},
			{"rows", "ref-cacheline-2core", "ns", Unknown, "new", 0, false},
		}},
		{"tcp", []want{
			{"bulk", "message-shm", "mbit_per_s", Differs, "min-max apart", 150.0 / 216, false},
			// Six batches each, every new one below every old one: p =
			// 2/924.
			{"conns", "message-shm", "conns_per_s", Differs, "U test, p=0.002 n=6+6", 3000.0 / 4400, false},
			{"conns", "exposed-shm", "conns_per_s", Same, "U test, p=0.", 5050.0 / 5000, false},
		}},
		{"http", []want{
			// Three and three apart is p = 0.1: the U test cannot tell
			// with so few.
			{"rows", "20B-1rpc / httpd-linux", "req_per_s", Same, "U test, p=0.100 n=3+3", 21000.0 / 19000, false},
			{"rows", "20B-1rpc / httpd-linux", "p50_us", Unknown, "one sample", 240.0 / 250, false},
			{"rows", "20B-1rpc / httpd-linux", "p99_us", Unknown, "one sample", 0, false},
			{"rows", "20B-1rpc / httpd-exposed", "req_per_s", Unknown, "one sample", 0, false},
			{"rows", "20B-1rpc / httpd-exposed", "p50_us", Unknown, "one sample", 0, false},
			{"rows", "20B-1rpc / httpd-exposed", "p99_us", Unknown, "one sample", 0, false},
			// Measured before, not installed now: nothing to compare.
			{"rows", "20B-1rpc / lighttpd", "req_per_s", Unknown, "old", 0, false},
			{"rows", "20B-1rpc / lighttpd", "p50_us", Unknown, "old", 0, false},
			{"rows", "20B-1rpc / lighttpd", "p99_us", Unknown, "old", 0, false},
		}},
		{"eagain", []want{
			{"rows", "exposed", "ns", Differs, "min-max apart", 2, false},
			{"reference", "ref-cacheline-2core", "ns", Same, "min-max overlap", 0, false},
		}},
		{"udp", []want{
			{"rows", "message-shm", "ns", Same, "min-max overlap", 0, false},
			{"streams", "message-shm", "datagrams_per_s", Unknown, "one sample", 12000.0 / 9000, false},
		}},
		{"faults", []want{
			{"rows", "message / nic", "restart_ms", Unknown, "one sample", 80.0 / 265, false},
			{"rows", "message / nic", "recovered_ms", Unknown, "one sample", 0, false},
			{"rows", "message / nic", "failed_requests", Unknown, "one sample", 1, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			old, err := Read(filepath.Join("testdata", tt.kind+"-old.json"))
			if err != nil {
				t.Fatal(err)
			}
			new, err := Read(filepath.Join("testdata", tt.kind+"-new.json"))
			if err != nil {
				t.Fatal(err)
			}
			rows, err := Compare(old, new)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(tt.want) {
				t.Fatalf("%d rows, want %d: %+v", len(rows), len(tt.want), rows)
			}
			for i, w := range tt.want {
				r := rows[i]
				if r.Table != w.table || r.Row != w.row || r.Metric != w.metric {
					t.Errorf("row %d is %s %s %s, want %s %s %s", i, r.Table, r.Row, r.Metric, w.table, w.row, w.metric)
					continue
				}
				switch w.method {
				case "old":
					if r.New != nil || r.Old == nil {
						t.Errorf("%s: want a row of the old file only", r.Row)
					}
					continue
				case "new":
					if r.Old != nil || r.New == nil {
						t.Errorf("%s: want a row of the new file only", r.Row)
					}
					continue
				}
				if r.Verdict != w.verdict || !strings.HasPrefix(r.Method, w.method) {
					t.Errorf("%s %s: verdict %d (%s), want %d (%s...)", r.Row, r.Metric, r.Verdict, r.Method, w.verdict, w.method)
				}
				if w.ratio != 0 && math.Abs(r.Ratio-w.ratio) > 1e-9 {
					t.Errorf("%s %s: ratio %v, want %v", r.Row, r.Metric, r.Ratio, w.ratio)
				}
				if r.Better() != w.better {
					t.Errorf("%s %s: better %v, want %v", r.Row, r.Metric, r.Better(), w.better)
				}
			}
			var out bytes.Buffer
			Write(&out, old, new, rows)
			if n := strings.Count(out.String(), "\n"); n < len(rows)+4 {
				t.Errorf("Write printed %d lines for %d rows:\n%s", n, len(rows), out.String())
			}
			if machines := strings.Contains(out.String(), "the machines differ"); machines != (old.Machine != new.Machine) {
				t.Errorf("Write: machines-differ note %v, machines %q and %q:\n%s", machines, old.Machine, new.Machine, out.String())
			}
		})
	}
}

func TestCompareRefuses(t *testing.T) {
	ipc, err := Read(filepath.Join("testdata", "ipc-old.json"))
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := Read(filepath.Join("testdata", "tcp-old.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compare(ipc, tcp); err == nil || !strings.Contains(err.Error(), "bench tcp") {
		t.Errorf("Compare(ipc, tcp): %v, want an error naming both benchmarks", err)
	}
	for _, bad := range []string{`{"bench":"nosuch"}`, `{"bench":"ipc","rows":[1]}`, `not json`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%s): no error", bad)
		}
	}
}

// TestResults reads every result file in results/ and compares it with
// itself: every figure is found, none differs from itself.
func TestResults(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "results", "*.json"))
	if len(files) == 0 {
		t.Fatal("no results/*.json")
	}
	for _, path := range files {
		f, err := Read(path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if len(f.Measures) == 0 {
			t.Errorf("%s: no figure read", path)
		}
		rows, err := Compare(f, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Verdict == Differs || r.Ratio != 1 {
				t.Errorf("%s: %s %s differs from itself: %+v", path, r.Row, r.Metric, r)
			}
		}
	}
}

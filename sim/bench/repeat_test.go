package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/sim/machine"
)

// repeated returns n reports of one matrix: httpd-exposed's req/s are
// base, base+10, ..., with one error each; lighttpd is not installed.
func repeated(n int, base float64) []*HTTPReport {
	var reps []*HTTPReport
	two := int64(2)
	for i := range n {
		reps = append(reps, &HTTPReport{Bench: "paper", Command: "newtsim bench paper --repeat", Workloads: HTTPWorkloads[:1],
			Servers: []HTTPServer{HTTPServers[3], HTTPServers[len(HTTPServers)-1]},
			Rows: []HTTPRow{
				{Workload: HTTPWorkloads[0].Name, Server: HTTPServers[3].Name, ReqPerS: base + 10*float64(n-1-i),
					MeanUS: 200, P50US: 100 + float64(i), P99US: 900, Errors: 1, Retransmits: &two, LinuxSyscallsPerRequest: 0.01, CorePlan: "p"},
				{Workload: HTTPWorkloads[0].Name, Server: HTTPServers[len(HTTPServers)-1].Name, NotInstalled: "lighttpd"},
			},
			Notes: []string{"a note"}})
	}
	return reps
}

func TestMergeHTTP(t *testing.T) {
	m, err := MergeHTTP(repeated(3, 1000))
	if err != nil {
		t.Fatal(err)
	}
	r := m.Rows[0]
	if r.ReqPerS != 1010 || r.MinReqPerS != 1000 || r.MaxReqPerS != 1020 || r.MeanUS != 200 || r.P50US != 101 || r.Errors != 3 {
		t.Errorf("merged row %+v: want median 1010 (1000-1020), mean 200, p50 101, 3 errors", r)
	}
	if r.Retransmits == nil || *r.Retransmits != 6 {
		t.Errorf("merged retransmits %v, want 6 (2 a repetition)", r.Retransmits)
	}
	if !slices.Equal(r.ReqPerSSamples, []float64{1020, 1010, 1000}) || len(r.P50USSamples) != 3 || len(r.P99USSamples) != 3 {
		t.Errorf("samples %v %v %v: want every repetition's, in order", r.ReqPerSSamples, r.P50USSamples, r.P99USSamples)
	}
	if r.ReqPerSCI95 != nil {
		t.Errorf("3 repetitions have no 95%% interval, got %v", r.ReqPerSCI95)
	}
	if m.Rows[1].NotInstalled != "lighttpd" {
		t.Errorf("the lighttpd row: %+v, want it marked not installed", m.Rows[1])
	}
	if len(m.Notes) != 4 || !strings.Contains(m.Notes[0], "3 times") || m.Notes[3] != "repetition 3 of 3: a note" {
		t.Errorf("notes %q", m.Notes)
	}
	if c := m.Checks[len(m.Checks)-1]; c.Name != "errors, all cells" || c.Value != 3 || c.Met {
		t.Errorf("checks not judged on the merged rows: %+v", m.Checks)
	}
	if tab := m.Table(); !strings.Contains(tab, "| 1010 (1000-1020, n=3) |") {
		t.Errorf("the table does not show the spread:\n%s", tab)
	}

	six, err := MergeHTTP(repeated(6, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if ci := six.Rows[0].ReqPerSCI95; !slices.Equal(ci, []float64{1000, 1050}) {
		t.Errorf("6 repetitions: interval %v, want [1000 1050] (the whole range, 97%%)", ci)
	}
	if tab := six.Table(); !strings.Contains(tab, "95% 1000-1050, n=6") {
		t.Errorf("the table does not show the interval:\n%s", tab)
	}

	one := repeated(1, 5)
	if m, err := MergeHTTP(one); err != nil || m != one[0] {
		t.Errorf("one repetition: %v, %v; want it unchanged", m, err)
	}
	short := repeated(2, 5)
	short[1].Rows = short[1].Rows[1:]
	if _, err := MergeHTTP(short); err == nil {
		t.Error("a repetition missing a row: no error")
	}
}

// TestHTTPChartSpread: the chart of a merged report draws each measured
// cell's spread as an error bar, and names the machine and commit.
func TestHTTPChartSpread(t *testing.T) {
	m, err := MergeHTTP(repeated(3, 1000))
	if err != nil {
		t.Fatal(err)
	}
	m.Machine = machine.Info{CPUModel: "CPU Z", CPUs: 2, Hostname: "h", Commit: "0123456789abcdef-dirty"}
	path := filepath.Join(t.TempDir(), "http.svg")
	if err := m.WriteSVG(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), `class="spread"`); n != 1 {
		t.Errorf("%d error bars, want 1 (lighttpd has none)", n)
	}
	if !strings.Contains(string(b), "CPU Z, 2 CPUs, host h, newtsim 0123456789ab-dirty") {
		t.Errorf("no caption naming the machine and commit:\n%s", b)
	}
}

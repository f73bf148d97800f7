package bench

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/newtsim/newtsim/internal/procstat"
)

// TestHTTPPick: cells come in the matrix's order, a short matrix has its
// workloads, and unknown names are refused.
func TestHTTPPick(t *testing.T) {
	o := HTTPOptions{Workloads: []string{"512kB-1rpc", "20B-1rpc"}, Servers: []string{"lighttpd", "httpd-exposed"}}
	ws, ss, err := o.pick()
	if err != nil {
		t.Fatal(err)
	}
	if ws[0].Name != "20B-1rpc" || ws[1].Name != "512kB-1rpc" || ss[0].Name != "httpd-exposed" || ss[1].Name != "lighttpd" {
		t.Errorf("picked %v %v, want the matrix's order", ws, ss)
	}
	short := HTTPOptions{Short: true}
	if err := short.defaults(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(short.Workloads, ShortHTTPWorkloads) || short.Duration != ShortHTTPDuration || short.Connections != DefaultHTTPConnections {
		t.Errorf("short matrix: %+v", short)
	}
	o = HTTPOptions{Servers: []string{"httpd-exposed", "httpd-monolith", "httpd-linux"}}
	if _, ss, err = o.pick(); err != nil || len(ss) != 3 || ss[0].Name != "httpd-linux" || ss[2].Name != "httpd-monolith" ||
		ss[2].Kind != sideMonolith {
		t.Errorf("picked %+v, %v; want httpd-linux, httpd-exposed, httpd-monolith", ss, err)
	}
	for _, bad := range []HTTPOptions{{Workloads: []string{"1GB"}}, {Servers: []string{"nginx"}}} {
		if _, _, err := bad.pick(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// A cell that served nothing fails a check of its own, errors or none; a
// server that is not installed is not such a cell.
func TestEmptyCellCheck(t *testing.T) {
	r := &HTTPReport{Rows: []HTTPRow{
		{Workload: "20B-10rpc", Server: "httpd-monolith", ReqPerS: 0},
		{Workload: "20B-10rpc", Server: "lighttpd", NotInstalled: "lighttpd"},
		{Workload: "20B-1rpc", Server: "httpd-monolith", ReqPerS: 900},
	}}
	r.judge()
	i := slices.IndexFunc(r.Checks, func(c Check) bool { return c.Name == "cells that served no request" })
	if i < 0 || r.Checks[i].Value != 1 || r.Checks[i].Met {
		t.Fatalf("checks %+v: want one cell that served nothing, not met", r.Checks)
	}
	if e := slices.IndexFunc(r.Checks, func(c Check) bool { return c.Name == "errors, all cells" }); e < 0 || !r.Checks[e].Met {
		t.Errorf("errors check %+v: no errors counted, met", r.Checks)
	}
}

// TestHTTPReport: the checks judge the two targets and the errors, the
// JSON rows have exactly the matrix's keys, and the table and chart are
// written.
func TestHTTPReport(t *testing.T) {
	zero, three := int64(0), int64(3)
	r := &HTTPReport{Bench: "paper", Workloads: HTTPWorkloads[:2], Servers: HTTPServers,
		Rows: []HTTPRow{
			{Workload: "20B-10rpc", Server: "httpd-linux", ReqPerS: 4000, MeanUS: 200, P50US: 150, P99US: 700, CorePlan: "p"},
			{Workload: "20B-10rpc", Server: "httpd-message-shm", ReqPerS: 1000, P50US: 900, P99US: 2000, Retransmits: &zero,
				LinuxSyscallsPerRequest: 12, CorePlan: "p"},
			{Workload: "20B-10rpc", Server: "httpd-exposed", ReqPerS: 2500, P50US: 300, P99US: 900, Retransmits: &zero,
				LinuxSyscallsPerRequest: 0.01, CorePlan: "p"},
			{Workload: "20B-10rpc", Server: "httpd-monolith", ReqPerS: 1000, MeanUS: 1000, P50US: 800, P99US: 3000,
				Retransmits: &three, CorePlan: "p"},
			{Workload: "20B-1rpc", Server: "httpd-exposed", ReqPerS: 30, Errors: 2, Retransmits: &zero, CorePlan: "p"},
		}}
	r.judge()
	want := []struct {
		name  string
		value float64
		met   bool
	}{
		{"20B-10rpc: httpd-exposed req/s / httpd-message-shm req/s", 2.5, true},
		{"20B-10rpc: httpd-exposed Linux system calls per request", 0.01, true},
		{"20B-10rpc: httpd-monolith req/s / httpd-linux req/s", 0.25, false},
		{"retransmitted segments, the server sides newtsim counts, all cells", 3, false},
		{"cells that served no request", 0, true},
		{"errors, all cells", 2, false},
	}
	if len(r.Checks) != len(want) {
		t.Fatalf("checks: %+v", r.Checks)
	}
	for i, w := range want {
		if c := r.Checks[i]; c.Name != w.name || c.Value != w.value || c.Met != w.met {
			t.Errorf("check %d: %+v, want %+v", i, c, w)
		}
	}
	dir := t.TempDir()
	js := filepath.Join(dir, "http.json")
	if err := r.WriteJSON(js); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(js)
	var raw struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for i, row := range raw.Rows {
		var keys []string
		for k := range row {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := []string{"context_switches_per_request", "core_plan", "errors", "linux_syscalls_per_request", "mean_us",
			"p50_us", "p99_us", "req_per_s", "retransmits", "server", "server_cpu_us_per_request", "workload"}
		if !slices.Equal(keys, want) {
			t.Errorf("row %d keys %v, want %v", i, keys, want)
		}
	}
	// Linux's stack is not counted: null, not 0; the simulated host's
	// and the monolith's are numbers.
	if v, ok := raw.Rows[0]["retransmits"]; !ok || v != nil {
		t.Errorf("httpd-linux retransmits = %v, want null", v)
	}
	if v := raw.Rows[3]["retransmits"]; v != 3.0 || raw.Rows[3]["mean_us"] != 1000.0 {
		t.Errorf("httpd-monolith retransmits %v, mean_us %v; want 3 and 1000", v, raw.Rows[3]["mean_us"])
	}
	tab := r.Table()
	for _, s := range []string{"| 20B-10rpc | httpd-exposed | 2500 | 0 | 300 | 900 | 0 | 0 |",
		"| 20B-10rpc | httpd-linux | 4000 | 200 | 150 | 700 | 0 | - |", "| httpd-monolith |", "NOT met", "1 request per connection",
		"- httpd-monolith: httpd on a monolithic host"} {
		if !strings.Contains(tab, s) {
			t.Errorf("table lacks %q:\n%s", s, tab)
		}
	}
	svg := filepath.Join(dir, "http.svg")
	if err := r.WriteSVG(svg); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(svg); !strings.Contains(string(b), "log scale") {
		t.Errorf("a spread of 2500/30 wants a log scale")
	}
}

// TestWriteHTTPFiles: the files have the workloads' sizes.
func TestWriteHTTPFiles(t *testing.T) {
	dir := t.TempDir()
	if err := writeHTTPFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, w := range HTTPWorkloads {
		st, err := os.Stat(filepath.Join(dir, w.File))
		if err != nil || st.Size() != int64(w.Size) {
			t.Errorf("%s: %v, size %v, want %d", w.File, err, st, w.Size)
		}
	}
}

// TestCounterDelta: a row's retransmits is the counter's move over the
// cell, and null where either read failed (-1) or is missing.
func TestCounterDelta(t *testing.T) {
	m := retransmitsMetric
	for _, c := range []struct {
		before, after map[string]float64
		want          *int64
	}{
		{map[string]float64{m: 10}, map[string]float64{m: 17}, ptr(int64(7))},
		{map[string]float64{m: 5}, map[string]float64{m: 5}, ptr(int64(0))},
		{map[string]float64{m: -1}, map[string]float64{m: 5}, nil},
		{map[string]float64{m: 5}, map[string]float64{m: -1}, nil},
		{map[string]float64{}, map[string]float64{m: 5}, nil},
	} {
		got := counterDelta(c.before, c.after, m)
		if (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
			t.Errorf("counterDelta(%v, %v) = %v, want %v", c.before, c.after, got, c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestSetCosts: two readings of the server side make its CPU time and
// context switches per request, per process; a process that restarted
// between them (another pid) or could not be read is left out.
func TestSetCosts(t *testing.T) {
	read := func(name string, pid int, cpu time.Duration, sw uint64, ok bool) procUsage {
		return procUsage{namedPID: namedPID{name, pid}, u: procstat.Usage{CPU: cpu, Switches: sw, Threads: 1}, ok: ok}
	}
	before := []procUsage{read("kernel", 10, time.Second, 100, true), read("tcp", 11, 2*time.Second, 1000, true),
		read("ip", 12, time.Second, 50, true), read("web", 13, 0, 0, false)}
	after := []procUsage{read("kernel", 10, time.Second+10*time.Millisecond, 110, true),
		read("tcp", 11, 2*time.Second+90*time.Millisecond, 1900, true),
		read("ip", 99, 5*time.Second, 5000, true), // restarted: another process
		read("web", 13, time.Second, 10, true)}    // not read before
	var row HTTPRow
	row.setCosts(usageDeltas(before, after), 1000)
	if row.ServerCPUUSPerRequest != 100 || row.SwitchesPerRequest != 0.91 {
		t.Errorf("per request: %v us, %v switches; want 100 and 0.91", row.ServerCPUUSPerRequest, row.SwitchesPerRequest)
	}
	want := []ProcessCost{{"kernel", 10, 0.01}, {"tcp", 90, 0.9}}
	if !slices.Equal(row.Processes, want) {
		t.Errorf("processes %+v, want %+v", row.Processes, want)
	}
	row.Workload, row.Server = "20B-10rpc", "httpd-exposed"
	tab := (&HTTPReport{Rows: []HTTPRow{row, {Workload: "20B-10rpc", Server: "lighttpd"}}}).costTable()
	if !strings.Contains(tab, "| workload | server | kernel | tcp |") || !strings.Contains(tab, "| 20B-10rpc | httpd-exposed | 10.0 (0.01) | 90.0 (0.90) |") ||
		strings.Contains(tab, "lighttpd") {
		t.Errorf("cost table:\n%s", tab)
	}
	var one HTTPRow
	one.setCosts(usageDeltas(before[:1], after[:1]), 1000)
	if one.Processes != nil || one.ServerCPUUSPerRequest != 10 {
		t.Errorf("one process: %+v", one)
	}
	var none HTTPRow
	none.setCosts(usageDeltas(before, after), 0)
	if none.ServerCPUUSPerRequest != 0 || none.Processes != nil {
		t.Errorf("no requests: %+v", none)
	}
}

// TestAwaitLineLeavesExit: a client that ends before its line fails the
// wait with its exit status and leaves the status for the next wait on it
// (the cell's clean-up, which waited for ever when the status was taken).
func TestAwaitLineLeavesExit(t *testing.T) {
	lines := make(chan string, 2)
	lines <- "probing"
	close(lines)
	exited := make(chan error, 1)
	exited <- errors.New("exit status 1")
	var log strings.Builder
	err := awaitLine(context.Background(), lines, exited, "measure", time.Minute, &log)
	if err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("awaitLine = %v, want the client's exit status", err)
	}
	if !strings.Contains(log.String(), "client: probing") {
		t.Errorf("log %q lacks the client's line", log.String())
	}
	select {
	case e := <-exited:
		if e == nil || e.Error() != "exit status 1" {
			t.Errorf("exited holds %v", e)
		}
	default:
		t.Fatal("awaitLine took the client's exit status: the cell's clean-up would wait for ever")
	}
}

// TestAwaitLine: the line wanted ends the wait; lines before it are
// logged; none within the time-out fails it.
func TestAwaitLine(t *testing.T) {
	lines := make(chan string, 2)
	lines <- "hello"
	lines <- "measure"
	var log strings.Builder
	if err := awaitLine(context.Background(), lines, make(chan error, 1), "measure", time.Minute, &log); err != nil {
		t.Fatal(err)
	}
	if log.String() != "client: hello\n" {
		t.Errorf("log %q", log.String())
	}
	if err := awaitLine(context.Background(), make(chan string), make(chan error, 1), "done", time.Millisecond, &log); err == nil {
		t.Error("no line within the time-out: no error")
	}
}

// TestIdleNote: a cell that served no request says what its server side
// ran and waited for a CPU over the run, summed over the processes read
// before and after (one restarted between is left out).
func TestIdleNote(t *testing.T) {
	read := func(name string, pid int, cpu, wait time.Duration) procUsage {
		return procUsage{namedPID: namedPID{name, pid}, u: procstat.Usage{CPU: cpu, Wait: wait, Threads: 3}, ok: true}
	}
	before := []procUsage{read("tcp", 11, time.Second, time.Second), read("ip", 12, time.Second, 0)}
	after := []procUsage{read("tcp", 11, time.Second+12*time.Millisecond, 3900*time.Millisecond),
		read("ip", 99, 5*time.Second, 5*time.Second)} // restarted
	u := sumUsage(usageDeltas(before, after))
	if u.CPU != 12*time.Millisecond || u.Wait != 2900*time.Millisecond || u.Threads != 3 {
		t.Fatalf("sumUsage = %+v", u)
	}
	note := idleNote(HTTPWorkload{Name: "20B-1rpc"}, HTTPServer{Name: "httpd-monolith"}, u, 3*time.Second)
	for _, want := range []string{"20B-1rpc on httpd-monolith served no request", "measured 3s", "ran 12ms on a CPU",
		"waited 2.9s for one", "in 3 threads"} {
		if !strings.Contains(note, want) {
			t.Errorf("note %q lacks %q", note, want)
		}
	}
}

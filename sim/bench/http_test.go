package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
	for _, bad := range []HTTPOptions{{Workloads: []string{"1GB"}}, {Servers: []string{"nginx"}}} {
		if _, _, err := bad.pick(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestHTTPReport: the checks judge the two targets and the errors, the
// JSON rows have exactly the matrix's keys, and the table and chart are
// written.
func TestHTTPReport(t *testing.T) {
	r := &HTTPReport{Bench: "paper", Workloads: HTTPWorkloads[:2], Servers: HTTPServers[1:4],
		Rows: []HTTPRow{
			{Workload: "20B-10rpc", Server: "httpd-message-shm", ReqPerS: 1000, P50US: 900, P99US: 2000, LinuxSyscallsPerRequest: 12, CorePlan: "p"},
			{Workload: "20B-10rpc", Server: "httpd-exposed", ReqPerS: 2500, P50US: 300, P99US: 900, LinuxSyscallsPerRequest: 0.01, CorePlan: "p"},
			{Workload: "20B-1rpc", Server: "httpd-exposed", ReqPerS: 30, Errors: 2, CorePlan: "p"},
		}}
	r.judge()
	if len(r.Checks) != 3 || !r.Checks[0].Met || r.Checks[0].Value != 2.5 || !r.Checks[1].Met || r.Checks[2].Met {
		t.Errorf("checks: %+v", r.Checks)
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
	var keys []string
	for k := range raw.Rows[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"core_plan", "errors", "linux_syscalls_per_request", "p50_us", "p99_us", "req_per_s", "server", "workload"}
	if !slices.Equal(keys, want) {
		t.Errorf("row keys %v, want %v", keys, want)
	}
	tab := r.Table()
	for _, s := range []string{"| 20B-10rpc | httpd-exposed | 2500 |", "NOT met", "1 request per connection"} {
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

package launch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchHTTPMonolith: `newtsim bench http --servers httpd-monolith`
// starts httpd on a monolithic host behind a TAP device, and the same
// client as every row's is answered: a second of load with every response
// whole and 200, no error, and the row's retransmits read from the
// monolith's own metrics (a number, not null).
func TestBenchHTTPMonolith(t *testing.T) {
	js := filepath.Join(t.TempDir(), "http.json")
	out, err := runBin(t, 2*time.Minute, "bench", "http", "--servers", "httpd-monolith", "--workloads", "20B-10rpc",
		"--duration", "1s", "--json", js)
	if err != nil {
		t.Fatalf("newtsim bench http: %v\n%s", err, out)
	}
	t.Logf("newtsim bench http said:\n%s", out)
	if !strings.Contains(out, "Status codes: 200 ") {
		t.Errorf("no 200 responses counted:\n%s", out)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Rows []struct {
			Server      string  `json:"server"`
			ReqPerS     float64 `json:"req_per_s"`
			MeanUS      float64 `json:"mean_us"`
			Errors      int64   `json:"errors"`
			Retransmits *int64  `json:"retransmits"`
			CorePlan    string  `json:"core_plan"`
		} `json:"rows"`
		Notes []string `json:"notes"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Server != "httpd-monolith" {
		t.Fatalf("rows: %+v, want one of httpd-monolith", rep.Rows)
	}
	r := rep.Rows[0]
	if r.ReqPerS <= 0 || r.MeanUS <= 0 || r.Errors != 0 || r.Retransmits == nil || !strings.Contains(r.CorePlan, "httpd-monolith") {
		t.Errorf("row %+v: want requests answered, no error, retransmits counted, the core plan", r)
	}
	for _, n := range rep.Notes {
		if strings.Contains(n, "less than the file's") {
			t.Errorf("short responses: %s", n)
		}
	}
}

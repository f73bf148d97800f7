package launch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestBenchFaultsQuick: `newtsim bench faults --quick` on the message
// backend kills each of its servers under load and writes a row for each,
// with the fields the checks read, and every run left no process and no
// /dev/shm file behind. The restart and recovery targets are not asserted
// here: they are the benchmark's to judge (results/faults.md).
func TestBenchFaultsQuick(t *testing.T) {
	js := filepath.Join(t.TempDir(), "faults.json")
	out, err := runBin(t, 2*time.Minute, "bench", "faults", "--quick", "--backends", "message", "--json", js)
	if err != nil {
		t.Fatalf("newtsim bench faults: %v\n%s", err, out)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Bench    string `json:"bench"`
		CorePlan string `json:"core_plan"`
		Machine  any    `json:"machine"`
		Rows     []map[string]any
		Checks   []struct {
			Name string `json:"name"`
			Met  bool   `json:"met"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Bench != "faults" || rep.CorePlan == "" || rep.Machine == nil || len(rep.Checks) == 0 {
		t.Errorf("report: bench %q, core plan %q, machine %v, %d checks", rep.Bench, rep.CorePlan, rep.Machine, len(rep.Checks))
	}
	var servers []string
	for _, row := range rep.Rows {
		for _, k := range []string{"backend", "server", "restart_ms", "recovered_ms", "failed_requests",
			"connections_reset", "leaked_processes", "leaked_shm_files"} {
			if _, ok := row[k]; !ok {
				t.Errorf("row %v lacks %q", row, k)
			}
		}
		if row["backend"] != "message" {
			t.Errorf("row %v: want the message backend", row)
		}
		for _, k := range []string{"restart_ms", "recovered_ms"} {
			if v, ok := row[k].(float64); row[k] != nil && (!ok || v < 0) {
				t.Errorf("row %v: %s is neither null nor a time", row, k)
			}
		}
		if row["leaked_processes"] != 0.0 || row["leaked_shm_files"] != 0.0 {
			t.Errorf("%v/%v left %v processes and %v /dev/shm files behind", row["backend"], row["server"],
				row["leaked_processes"], row["leaked_shm_files"])
		}
		if s, ok := row["server"].(string); ok {
			servers = append(servers, s)
		}
	}
	if want := []string{"ip", "tcp", "httpd"}; !slices.Equal(servers, want) {
		t.Errorf("rows for %v, want %v\n%s", servers, want, out)
	}
}

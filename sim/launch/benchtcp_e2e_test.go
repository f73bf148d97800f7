package launch_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBenchTCP runs `newtsim bench tcp` with small sizes and checks every
// row was measured and recorded with the machine, and that issue 11's bulk
// check is there; it judges no figure.
func TestBenchTCP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tcp.json")
	out, err := exec.Command(bin, "bench", "tcp", "--json", path, "--reps", "2",
		"--bytes", "1000000", "--linux-bytes", "4000000", "--conns", "100", "--linux-conns", "500").CombinedOutput()
	if err != nil {
		t.Fatalf("bench tcp: %v\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Bulk []struct {
			Name  string   `json:"name"`
			Mbits float64  `json:"mbit_per_s"`
			Bytes int64    `json:"bytes"`
			Reps  int      `json:"reps"`
			CPU   float64  `json:"stack_cpu_us_per_mib"`
			Sw    float64  `json:"context_switches_per_mib"`
			Floor *float64 `json:"switch_floor_us_per_mib"`
		} `json:"bulk"`
		SwitchHop *struct {
			CPU float64 `json:"process_cpu_ns"`
		} `json:"switch_hop"`
		Conns []struct {
			Name   string  `json:"name"`
			PerSec float64 `json:"conns_per_s"`
			Conns  int     `json:"conns"`
		} `json:"conns"`
		Checks []struct {
			Name  string  `json:"name"`
			Value float64 `json:"value"`
		} `json:"checks"`
		CorePlan string `json:"core_plan"`
		Machine  struct {
			CPUModel string `json:"cpu_model"`
		} `json:"machine"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	bulk, conns := map[string]bool{}, map[string]bool{}
	for _, r := range rep.Bulk {
		if r.Mbits <= 0 || r.Bytes <= 0 || r.Reps != 2 {
			t.Errorf("bulk %s: %v Mbit/s, %d bytes, %d repetitions", r.Name, r.Mbits, r.Bytes, r.Reps)
		}
		bulk[r.Name] = true
		// The simulated host's rows say what their stack's core spent.
		host := r.Name == "message-shm" || r.Name == "exposed"
		if host && (r.CPU <= 0 || r.Sw <= 0 || r.Floor == nil || *r.Floor <= 0) {
			t.Errorf("bulk %s: %v us of CPU, %v switches a MiB, floor %v", r.Name, r.CPU, r.Sw, r.Floor)
		}
		if !host && (r.CPU != 0 || r.Floor != nil) {
			t.Errorf("bulk %s has a cost of the simulated host's: %v us, floor %v", r.Name, r.CPU, r.Floor)
		}
	}
	if rep.SwitchHop == nil || rep.SwitchHop.CPU <= 0 {
		t.Errorf("no switch hop measured in:\n%s", b)
	}
	for _, r := range rep.Conns {
		if r.PerSec <= 0 || r.Conns <= 0 {
			t.Errorf("connections %s: %v per second over %d", r.Name, r.PerSec, r.Conns)
		}
		conns[r.Name] = true
	}
	for _, name := range []string{"message-shm", "exposed", "monolith", "linux"} {
		if !bulk[name] {
			t.Errorf("no bulk row %s in:\n%s", name, b)
		}
	}
	for _, name := range []string{"message-shm", "linux"} {
		if !conns[name] {
			t.Errorf("no connection row %s in:\n%s", name, b)
		}
	}
	checked := false
	for _, c := range rep.Checks {
		checked = checked || c.Name == "bulk: message-shm Mbit/s / linux Mbit/s" && c.Value > 0
	}
	if !checked {
		t.Errorf("no bulk check of message-shm against linux in:\n%s", b)
	}
	if rep.Machine.CPUModel == "" {
		t.Error("machine not recorded")
	}
	if rep.CorePlan == "" {
		t.Error("core plan not recorded")
	}
}

package launch_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/timeline"
)

// TestTraceTimeline: a run started with --trace records its messages, and
// `newtsim trace --out` writes them as a Chrome trace with the handlings of
// nic, ip and tcp: Linux pings the host (nic, driver, pf, ip and back) and
// connects to a port nobody listens on (ip, tcp, and a RST back).
func TestTraceTimeline(t *testing.T) {
	needTools(t, "ip", "bash")
	u := startUp(t, "--trace", "--nic", "tap")
	u.logOnFailure()
	ns := launch.NSName(u.status.Run)
	if out, err := inNS(ns, "ping", "-c", "3", "-i", "0.05", "-W", "2", "198.18.0.2").CombinedOutput(); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	out, _ := inNS(ns, "bash", "-c", "timeout 2 bash -c 'echo > /dev/tcp/198.18.0.2/81'").CombinedOutput()
	if !strings.Contains(string(out), "refused") {
		t.Fatalf("connect to a closed port: want connection refused, got %s", out)
	}
	file := filepath.Join(t.TempDir(), "trace.json")
	if out, err := exec.Command(bin, "--state-dir", u.dir, "trace", "--out", file).CombinedOutput(); err != nil {
		t.Fatalf("newtsim trace: %v\n%s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var tr timeline.Chrome
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("the trace does not parse: %v", err)
	}
	names := map[int]string{}
	handled := map[string]int{}
	for _, e := range tr.TraceEvents {
		if e.Ph == "M" && e.Name == "process_name" {
			name, _, _ := strings.Cut(e.Args["name"].(string), " ")
			names[e.PID] = name
		}
	}
	for _, e := range tr.TraceEvents {
		if e.Ph == "X" && e.Cat == "handle" {
			handled[names[e.PID]]++
		}
	}
	for _, p := range []string{"nic", "driver", "pf", "ip", "tcp"} {
		if handled[p] == 0 {
			t.Errorf("no handling by %s in the trace (handlings by process: %v)", p, handled)
		}
	}
}

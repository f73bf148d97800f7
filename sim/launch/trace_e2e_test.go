package launch_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/timeline"
)

// TestTraceTimeline: a run started with --trace records its messages, and
// `newtsim trace --out` writes them as a Chrome trace with the handlings of
// nic, ip and tcp: Linux pings the host (nic, driver, pf, ip and back) and
// connects to a port nobody listens on (ip, tcp, and a RST back), from Go.
func TestTraceTimeline(t *testing.T) {
	u := startUp(t, "--trace", "--nic", "tap")
	u.logOnFailure()
	if got := u.ping(t, 3, 2*time.Second); got != 3 {
		t.Fatalf("ping: %d of 3 replies", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c, err := u.linux().Dial(ctx, "tcp", "198.18.0.2:81"); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("connect to a closed port: %v, want connection refused", err)
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

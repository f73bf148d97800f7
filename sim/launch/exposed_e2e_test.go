package launch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	xapp "github.com/newtsim/newtsim/apps/conformance"
	"github.com/newtsim/newtsim/sim/topology"
)

// TestExposedHostileMemory: an application scribbles on the shared memory
// of some of its exposed sockets (counters past the ring, a descriptor
// outside the data area, an unknown descriptor, a tail ahead of the head).
// The tcp server ends exactly those sockets, counts why, and goes on
// serving the application's other socket; it does not restart.
func TestExposedHostileMemory(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "hostile.json")
	top := topology.Default()
	top.Processes = append(top.Processes, topology.Process{Name: "evil", Role: "xhostile", Args: []string{"--out", out}})
	top.Links = append(top.Links, topology.Link{A: "evil", B: "syscall"}, topology.Link{A: "evil", B: "tcp"})
	topoPath := filepath.Join(dir, "evil.topo")
	if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUp(t, "--topology", topoPath)
	var res xapp.HostileResult
	waitFor(t, "the hostile application's result", 30*time.Second, func() bool {
		b, err := os.ReadFile(out)
		return err == nil && json.Unmarshal(b, &res) == nil
	})
	if len(res.Victims) != 4 {
		t.Fatalf("%d scribbled sockets, want 4: %+v", len(res.Victims), res)
	}
	for name, how := range res.Victims {
		if how == "" {
			t.Errorf("%s: the socket was not ended", name)
		}
	}
	if !res.GoodWorks || !res.ServerAlive {
		t.Fatalf("the application's good socket or the server stopped working: %+v", res)
	}
	tcp := u.proc("tcp")
	if tcp.Restarts != 0 {
		t.Fatalf("tcp restarted %d times", tcp.Restarts)
	}
	for _, reason := range []string{"tx-ring", "tx-descriptor", "tx-kind", "rx-tail"} {
		if v := scrape(t, tcp.MetricsPort, "newtsim_tcp_exposed_refused_total", `reason="`+reason+`"`); v != 1 {
			t.Errorf("exposed_refused_total{reason=%q} = %v, want 1", reason, v)
		}
	}
	u.down()
}

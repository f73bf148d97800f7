package launch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/host"
	"github.com/newtsim/newtsim/sim/topology"
)

// TestRemoteClientHost: a remote client machine, as in the NewtOS
// evaluation: a monolithic host in one process on the far end of a wire
// from the multiserver host, running the load generator against httpd
// there. Every request gets its 200, byte counts add up, nothing errs.
func TestRemoteClientHost(t *testing.T) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	os.MkdirAll(www, 0o755)
	if err := os.WriteFile(filepath.Join(www, "20b.txt"), []byte("twenty bytes here!!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, ready := filepath.Join(dir, "client.json"), filepath.Join(dir, "httpd.port")
	const addr = "198.18.1.2"
	top := &topology.Topology{Name: "remote-client", Transport: topology.Shm}
	top.Processes = []topology.Process{
		{Name: "syscall", Role: "syscall"},
		{Name: "tcp", Role: "tcp", Args: []string{"--addr", addr}},
		{Name: "udp", Role: "udp", Args: []string{"--addr", addr}},
		{Name: "ip", Role: "ip", Args: []string{"--addr", addr + "/24", "--mac", "02:00:00:00:01:02"}},
		{Name: "pf", Role: "pf"},
		{Name: "driver", Role: "driver"},
		{Name: "nic", Role: "nic", Args: []string{"--backend", "wire", "--wire-peer", "client", "--link", "bw=1Gbit,delay=50us"}},
		{Name: "httpd", Role: "httpd", Args: []string{"--addr", "0.0.0.0:80", "--dir", www, "--ready", ready}},
		{Name: "client", Role: "clienthost", Args: []string{"--addr", "198.18.1.1/24", "--wire-peer", "nic",
			"--target", addr + ":80", "--ready", ready, "--path", "/20b.txt", "--requests", "300", "--connections", "4",
			"--requests-per-conn", "10", "--out", out}},
	}
	for _, l := range [][2]string{{"syscall", "tcp"}, {"syscall", "udp"}, {"tcp", "ip"}, {"udp", "ip"}, {"ip", "pf"},
		{"pf", "driver"}, {"driver", "nic"}, {"nic", "client"}, {"httpd", "syscall"}} {
		top.Links = append(top.Links, topology.Link{A: l[0], B: l[1]})
	}
	topoPath := filepath.Join(dir, "remote.topo")
	if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUp(t, "--topology", topoPath)
	var res host.ClientResult
	waitFor(t, "the client host's report", 60*time.Second, func() bool {
		b, err := os.ReadFile(out)
		return err == nil && json.Unmarshal(b, &res) == nil
	})
	r := res.Report
	t.Logf("remote client host: %d requests, %.0f req/s, p50 %v, p99 %v, %d connections",
		r.Requests, r.RequestsPerSec, r.Latency.P50, r.Latency.P99, r.Connections)
	if res.Error != "" || r.Requests != 300 || r.StatusCodes[200] != 300 || r.Errors.Failed() != 0 || r.Connections != 30 {
		t.Fatalf("report %+v, error %q; want 300 requests, all 200, on 30 connections\n%s", r, res.Error, u.out)
	}
	u.down()
}

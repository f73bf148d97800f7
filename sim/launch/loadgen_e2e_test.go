package launch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/newtsim/newtsim/apps/loadgen"
	"github.com/newtsim/newtsim/sim/topology"
)

// TestExposedConnectionChurn: many connections opened and closed at once
// on exposed sockets, so that both applications drop their idle regions
// all together again and again while the server hands regions to new
// connections: no connection may find its region gone.
func TestExposedConnectionChurn(t *testing.T) {
	topoPath, out := exposedHTTPTopology(t, "1500", "100", "1")
	u := startUp(t, "--topology", topoPath)
	var res loadgen.RoleResult
	waitFor(t, "the load generator's report", 90*time.Second, func() bool {
		b, err := os.ReadFile(out)
		return err == nil && json.Unmarshal(b, &res) == nil
	})
	r := res.Report
	t.Logf("%d requests on %d connections, %.0f req/s; errors %+v", r.Requests, r.Connections, r.RequestsPerSec, r.Errors)
	if res.Error != "" || r.Requests != 1500 || r.Errors.Failed() != 0 || r.StatusCodes[200] != 1500 {
		t.Fatalf("report %+v, error %q; want 1500 requests, all 200, none failed", r, res.Error)
	}
	u.down()
}

// TestLoadgenOnTheSimulatedHost: the load generator as an application of
// the simulated host loads httpd on the same host over its loopback, both
// on the message backend and both on the exposed one; every request gets
// its 200 and the connection counts are exact.
func TestLoadgenOnTheSimulatedHost(t *testing.T) {
	for _, backend := range []string{"message", "exposed"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			www := filepath.Join(dir, "www")
			os.MkdirAll(www, 0o755)
			if err := os.WriteFile(filepath.Join(www, "11k.bin"), make([]byte, 11<<10), 0o644); err != nil {
				t.Fatal(err)
			}
			out, ready := filepath.Join(dir, "loadgen.json"), filepath.Join(dir, "httpd.port")
			top := topology.Default()
			top.Processes = append(top.Processes,
				topology.Process{Name: "httpd", Role: "httpd", Args: []string{"--backend", backend, "--addr", "0.0.0.0:80", "--dir", www, "--ready", ready}},
				topology.Process{Name: "lg", Role: "loadgen", Args: []string{"--backend", backend, "--target", "127.0.0.1:80", "--ready", ready,
					"--path", "/11k.bin", "--requests", "200", "--connections", "4", "--requests-per-conn", "10", "--out", out}})
			for _, app := range []string{"httpd", "lg"} {
				top.Links = append(top.Links, topology.Link{A: app, B: "syscall"}, topology.Link{A: app, B: "tcp"})
			}
			topoPath := filepath.Join(dir, "lg.topo")
			if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
				t.Fatal(err)
			}
			u := startUp(t, "--topology", topoPath)
			var res loadgen.RoleResult
			waitFor(t, "the load generator's report", 60*time.Second, func() bool {
				b, err := os.ReadFile(out)
				return err == nil && json.Unmarshal(b, &res) == nil
			})
			r := res.Report
			t.Logf("%s: %d requests, %.0f req/s, p50 %v, p99 %v", backend, r.Requests, r.RequestsPerSec, r.Latency.P50, r.Latency.P99)
			if res.Error != "" || r.Requests != 200 || r.StatusCodes[200] != 200 || r.Errors.Failed() != 0 ||
				r.Connections != 20 || r.BytesRead < 200*11<<10 {
				t.Fatalf("report %+v, error %q; want 200 requests of 11 kB, all 200, on 20 connections\n%s", r, res.Error, u.out)
			}
			if backend == "exposed" {
				// 40 sockets (20 each side) and the listener came and went:
				// closed sockets' regions must have served new ones.
				port := u.proc("tcp").MetricsPort
				made := scrape(t, port, "newtsim_tcp_exposed_regions_created_total")
				again := scrape(t, port, "newtsim_tcp_exposed_regions_reused_total")
				t.Logf("regions: %v made, %v reused", made, again)
				if again == 0 || made+again < 41 || made >= 41 {
					t.Fatalf("regions made %v, reused %v: want reuse of closed sockets' regions", made, again)
				}
			}
			u.down()
		})
	}
}

// exposedHTTPTopology writes a topology of the default stack with an httpd
// and a load generator on exposed sockets over the host's loopback, both
// linked to syscall and tcp, the load generator making requests of a
// 20-byte file on conns connections, perConn each; it returns the
// topology's file and where the load generator writes its report.
func exposedHTTPTopology(t *testing.T, requests, conns, perConn string) (topoPath, out string) {
	t.Helper()
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	os.MkdirAll(www, 0o755)
	if err := os.WriteFile(filepath.Join(www, "20b.txt"), []byte("twenty bytes here!!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, ready := filepath.Join(dir, "loadgen.json"), filepath.Join(dir, "httpd.port")
	top := topology.Default()
	top.Processes = append(top.Processes,
		topology.Process{Name: "httpd", Role: "httpd", Args: []string{"--backend", "exposed", "--addr", "0.0.0.0:80", "--dir", www, "--ready", ready}},
		topology.Process{Name: "lg", Role: "loadgen", Args: []string{"--backend", "exposed", "--target", "127.0.0.1:80", "--ready", ready,
			"--path", "/20b.txt", "--requests", requests, "--connections", conns, "--requests-per-conn", perConn, "--out", out}})
	for _, app := range []string{"httpd", "lg"} {
		top.Links = append(top.Links, topology.Link{A: app, B: "syscall"}, topology.Link{A: app, B: "tcp"})
	}
	topoPath = filepath.Join(dir, "exposed-http.topo")
	if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	return topoPath, out
}

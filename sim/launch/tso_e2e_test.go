package launch_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/launch"
)

// TestTSOThroughStack: curl, in a tap run's namespace, fetches 512 kB from
// httpd on the simulated host (the exposed backend). With TSO, the
// default, tcp hands ip segments of up to 64 KiB, which pass ip, pf and
// the driver whole and which Linux cuts behind the TAP: the nic writes far
// fewer frames than the 363 segments of 1448 bytes the response is, and
// the file arrives intact. With --no-tso, the path as before, it writes
// one frame a segment. Neither drops a frame on the way down.
func TestTSOThroughStack(t *testing.T) {
	needTools(t, "curl")
	const size = 512 << 10
	tests := []struct {
		name   string
		args   []string
		tso    bool
		tx     func(float64) bool
		txWant string
	}{
		{"tso", nil, true, func(tx float64) bool { return tx < 120 }, "under 120"},
		{"no-tso", []string{"--no-tso"}, false, func(tx float64) bool { return tx >= size/1448 }, "at least 362"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			www := filepath.Join(dir, "www")
			if err := os.Mkdir(www, 0o755); err != nil {
				t.Fatal(err)
			}
			body := make([]byte, size)
			r := rand.New(rand.NewPCG(5, 11))
			for i := range body {
				body[i] = byte(r.Uint32())
			}
			if err := os.WriteFile(filepath.Join(www, "512kB.bin"), body, 0o644); err != nil {
				t.Fatal(err)
			}
			u := startUp(t, append([]string{"--topology", httpdTopology(t, dir, "exposed", www), "--nic", "tap"}, tt.args...)...)
			u.logOnFailure()
			ns := launch.NSName(u.status.Run)
			waitFor(t, "httpd listening", 10*time.Second, func() bool { return u.tcpState("LISTEN") >= 1 })
			nic, tcp, ip := u.proc("nic").MetricsPort, u.proc("tcp").MetricsPort, u.proc("ip").MetricsPort
			before := scrape(t, nic, "newtsim_nic_frames_total", `direction="tx"`)
			got := filepath.Join(dir, "got.bin")
			if out, err := inNS(ns, "curl", "-sS", "--max-time", "20", "-o", got, "http://198.18.0.2:80/512kB.bin").CombinedOutput(); err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			b, err := os.ReadFile(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, body) {
				t.Fatalf("curl got %d bytes, not the %d-byte file", len(b), len(body))
			}
			tx := scrape(t, nic, "newtsim_nic_frames_total", `direction="tx"`) - before
			t.Logf("%s: the nic wrote %v frames for the 512 kB response; tcp retransmitted %v segments", tt.name, tx,
				scrape(t, tcp, "newtsim_tcp_retransmitted_segments_total"))
			if !tt.tx(tx) {
				t.Errorf("the nic wrote %v frames, want %s", tx, tt.txWant)
			}
			for _, reason := range []string{"device", "no-tso", "vnet-header"} {
				if v := scrape(t, nic, "newtsim_nic_dropped_frames_total", `reason="`+reason+`"`); v != 0 {
					t.Errorf("the nic dropped %v frames (%s)", v, reason)
				}
			}
			if v := scrape(t, ip, "newtsim_ip_dropped_total", `reason="bad-seg-size"`); v != 0 {
				t.Errorf("ip refused %v segments to cut", v)
			}
			u.down()
		})
	}
}

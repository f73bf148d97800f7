package launch_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/sim/topology"
)

// TestTCPOverALossyWire: two multiserver hosts on a wire that loses 5% of
// frames, duplicates 1% and reorders some; host a's application sends
// 10 MB to host b's over TCP. Every byte arrives once and in order, and
// after the close and TIME-WAIT both tcp servers hold no connection.
func TestTCPOverALossyWire(t *testing.T) {
	dir := t.TempDir()
	out, ready := filepath.Join(dir, "tcpstream.json"), filepath.Join(dir, "tcpstream.port")
	const size = 10 << 20
	top := twoHosts("bw=1Gbit,delay=100us,loss=0.05,dup=0.01,reorder=0.05",
		topology.Process{Role: "tcpsource", Args: []string{"--target", "198.18.1.2:0", "--ready", ready, "--bytes", "10485760"}},
		topology.Process{Role: "tcpsink", Args: []string{"--target", "0.0.0.0:0", "--ready", ready, "--out", out}})
	topoPath := filepath.Join(dir, "two.topo")
	if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUp(t, "--topology", topoPath)
	var res struct {
		Bytes, Mismatches, FirstBad int64
		Seconds                     float64
		Mbits                       float64 `json:"mbit_per_s"`
		EOF                         bool
		Error                       string
	}
	waitFor(t, "the stream's result", 5*time.Minute, func() bool {
		b, err := os.ReadFile(out)
		return err == nil && json.Unmarshal(b, &res) == nil
	})
	ta, tb := u.proc("tcp-a").MetricsPort, u.proc("tcp-b").MetricsPort
	t.Logf("%d bytes in %.1f s (%.1f Mbit/s); sender: %v retransmitted segments, %v RTO expiries, %v fast retransmits",
		res.Bytes, res.Seconds, res.Mbits, scrape(t, ta, "newtsim_tcp_retransmitted_segments_total"),
		scrape(t, ta, "newtsim_tcp_rto_expiries_total"), scrape(t, ta, "newtsim_tcp_fast_retransmits_total"))
	if res.Error != "" || !res.EOF || res.Bytes != size || res.Mismatches != 0 {
		for _, p := range []string{"tcp-a", "tcp-b"} {
			syscall.Kill(u.proc(p).Pid, syscall.SIGUSR1)
		}
		time.Sleep(500 * time.Millisecond)
		if os.Getenv("NEWTSIM_DEBUG_STACKS") != "" {
			syscall.Kill(u.proc("tcp-a").Pid, syscall.SIGQUIT)
			time.Sleep(500 * time.Millisecond)
		}
		for _, p := range []string{"tcp-a", "tcp-b", "ip-a", "ip-b"} {
			t.Logf("%s:\n%s", p, metricLines(u.proc(p).MetricsPort, "newtsim_tcp", "newtsim_ip_dropped", "newtsim_pool"))
		}
		t.Fatalf("stream: %+v; want %d bytes, intact, then end of file\n%s", res, size, u.out)
	}
	if scrape(t, ta, "newtsim_tcp_retransmitted_segments_total") == 0 {
		t.Fatal("nothing was retransmitted: the wire lost nothing, and the test proves nothing")
	}
	for _, port := range []int{ta, tb} {
		waitFor(t, "empty connection tables after TIME-WAIT", 30*time.Second, func() bool {
			sum := 0.0
			for _, st := range []string{"LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
				"FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"} {
				sum += scrape(t, port, "newtsim_tcp_connections", `state="`+st+`"`)
			}
			return sum == 0
		})
	}
	u.down()
}

// metricLines returns a process's metrics whose names start with a prefix,
// as text.
func metricLines(port int, prefixes ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fams, err := prom.Scrape(ctx, prom.LocalURL(port))
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	if err := prom.WriteText(&b, fams, prefixes...); err != nil {
		return err.Error()
	}
	return b.String()
}

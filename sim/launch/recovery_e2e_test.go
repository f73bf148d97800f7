package launch_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/topology"
)

// TestRecovery (docs/RECOVERY.md): httpd serves the namespace's request
// loop (Linux's TCP, from Go, a connection per request as curl makes) while syscall, tcp and ip are killed in turn. Each comes back; no
// other process exits (httpd opens its listening socket again when the
// stack resets it); requests succeed again within a few seconds of each
// kill; and after tcp's, httpd's sockets are reset (it says so) and new
// connections are served.
func TestRecovery(t *testing.T) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	const body = "still here\n"
	if err := os.WriteFile(filepath.Join(www, "small.txt"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := withApp(t, dir, topology.Process{Name: "web", Role: "httpd", Args: []string{"--addr", "0.0.0.0:80", "--dir", www}})
	u := startUp(t, "--topology", topo, "--nic", "tap")
	u.logOnFailure()
	client := u.linuxHTTP(time.Second)
	waitFor(t, "httpd listening", 10*time.Second, func() bool { return u.tcpState("LISTEN") >= 1 })

	// The request loop: one request at a time, each given a second.
	// lastOK is when the last request that succeeded was sent: a request
	// sent before a kill and answered just after it (once, 1 ms after
	// syscall's) says nothing of the restarted stack, and the next kill
	// then came while httpd was still opening its listening socket again.
	var mu sync.Mutex
	var lastOK time.Time
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			sent := time.Now()
			resp, out, err := get(client, "http://198.18.0.2/small.txt")
			if err == nil && resp.StatusCode == 200 && string(out) == body {
				mu.Lock()
				lastOK = sent
				mu.Unlock()
			} else {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	servedSince := func(at time.Time) bool {
		mu.Lock()
		defer mu.Unlock()
		return lastOK.After(at)
	}
	waitFor(t, "the request loop served", 10*time.Second, func() bool { return servedSince(time.Time{}) })

	names := []string{"nic", "driver", "pf", "ip", "udp", "tcp", "syscall", "web"}
	want := map[string]int{}
	for _, victim := range []string{"syscall", "tcp", "ip"} {
		old := u.proc(victim)
		killed := time.Now()
		if err := syscall.Kill(old.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		want[victim]++
		waitFor(t, victim+" restarted", 10*time.Second, func() bool {
			p := u.proc(victim)
			return p.Restarts == want[victim] && p.Ready && p.Pid != old.Pid
		})
		waitFor(t, "a request served after "+victim+"'s kill", 5*time.Second, func() bool { return servedSince(killed) })
		t.Logf("%s killed: a request sent %v after it was served", victim, func() time.Duration {
			mu.Lock()
			defer mu.Unlock()
			return lastOK.Sub(killed).Round(time.Millisecond)
		}())
		for _, n := range names {
			if p := u.proc(n); p.Restarts != want[n] {
				t.Errorf("after %s's kill: %s restarted %d times, want %d", victim, n, p.Restarts, want[n])
			}
		}
		if victim == "tcp" && !strings.Contains(u.out.String(), "listening socket: connection reset by peer") {
			t.Errorf("httpd did not see its listening socket reset after tcp's kill")
		}
	}
	for _, l := range strings.Split(u.out.String(), "\n") {
		if strings.Contains(l, "exits:") || strings.Contains(l, "quarantine over") || strings.Contains(l, "listening socket:") {
			t.Log(l)
		}
	}
	// What the restarts cost, as the servers counted it.
	for _, n := range []string{"driver", "pf", "ip", "tcp", "syscall", "web"} {
		if v := scrape(t, u.proc(n).MetricsPort, "newtsim_server_send_failures_total"); v > 0 {
			t.Logf("%s dropped %v sends", n, v)
		}
	}
}

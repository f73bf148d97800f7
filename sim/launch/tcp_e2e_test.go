package launch_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/netns"
	"github.com/newtsim/newtsim/sim/topology"
)

// TCP with Linux as the peer: Linux's TCP in a tap run's namespace, driven
// from Go (an HTTP client and server, a connect; package netns), talks to
// applications of the simulated host (httpd, fetch) through syscall, tcp,
// ip, pf, driver and nic, each a process. Everything stays inside the
// run's namespace, on 198.18.0.0/24.

// bigSize is the size of the file each way: 1 MB of random bytes.
const bigSize = 1 << 20

// needTools fails the test, loudly, when a program it runs is not
// installed: a test that calls it exists to show that real Linux programs
// work with the simulated host, and is listed, with its programs, in
// docs/TESTING.md and in the Makefile's REAL_TOOL_TESTS (which `make
// test-bare` leaves out); TestRealToolTestsListed keeps the three agreeing.
// Every other test plays Linux's side from Go and needs no program.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: this test needs it (docs/TESTING.md says which package; `make test` installs them)", tool)
		}
	}
}

// writeRandom writes n random bytes to path and returns their SHA-256.
func writeRandom(t *testing.T, path string, n int, seed byte) string {
	t.Helper()
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed, 'n', 'e', 'w', 't'}).Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha256Hex(b)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fileSHA256 returns a file's SHA-256 and size.
func fileSHA256(t *testing.T, path string) (string, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256Hex(b), len(b)
}

// inNS returns a command running a program in the namespace, through
// `newtsim exec` (no iproute2 needed).
func inNS(ns string, args ...string) *exec.Cmd {
	return exec.Command(bin, inNSArgs(ns, args...)...)
}

// inNSArgs are newtsim's arguments that run a program in the namespace.
func inNSArgs(ns string, args ...string) []string {
	return append([]string{"exec", "--netns", ns, "--"}, args...)
}

// linux is the run's namespace, where Linux is 198.18.0.1 on the TAP.
func (u *up) linux() *netns.NS { return &netns.NS{Name: launch.NSName(u.status.Run)} }

// linuxHTTP is an HTTP client in the run's namespace, each request a
// connection of its own (as each run of curl), timeout bounding each.
func (u *up) linuxHTTP(timeout time.Duration) *http.Client { return u.linux().HTTPClient("", timeout) }

// get fetches url with c and returns the response, its body read whole.
func get(c *http.Client, url string) (*http.Response, []byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// withApp writes the default stack plus an application process linked to
// syscall as a topology file, and returns its path.
func withApp(t *testing.T, dir string, app topology.Process) string {
	t.Helper()
	top := topology.Default()
	top.Processes = append(top.Processes, app)
	top.Links = append(top.Links, topology.Link{A: app.Name, B: "syscall"})
	path := filepath.Join(dir, app.Name+".topo")
	if err := os.WriteFile(path, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tcpState reads the tcp server's count of connections in a state.
func (u *up) tcpState(state string) float64 {
	return scrape(u.t, u.proc("tcp").MetricsPort, "newtsim_tcp_connections", `state="`+state+`"`)
}

// logOnFailure prints up's output (every process's log) if the test fails.
func (u *up) logOnFailure() {
	u.t.Cleanup(func() {
		if u.t.Failed() {
			u.t.Logf("newtsim up said:\n%s", u.out)
		}
	})
}

// assertConnectionsClosed waits until the tcp server holds no connection in
// ESTABLISHED, nor Linux in the namespace (the connections closed cleanly,
// both ways), and no process restarted.
func assertConnectionsClosed(t *testing.T, u *up, ns string) {
	t.Helper()
	waitFor(t, "the tcp server's ESTABLISHED connections back to 0", 10*time.Second, func() bool {
		return u.tcpState("ESTABLISHED") == 0
	})
	waitFor(t, "Linux's connections out of ESTABLISHED", 10*time.Second, func() bool {
		socks, err := (&netns.NS{Name: ns}).TCPSockets()
		return err == nil && !slices.ContainsFunc(socks, func(s netns.TCPSocket) bool { return s.State == "ESTABLISHED" })
	})
	var held []string
	for _, state := range []string{"LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
		"CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"} {
		v := u.tcpState(state)
		if v != 0 {
			held = append(held, fmt.Sprintf("%s %v", state, v))
		}
		if v != 0 && (state == "SYN-SENT" || state == "SYN-RECEIVED" || state == "CLOSE-WAIT") {
			t.Errorf("the tcp server holds %v connections in %s", v, state)
		}
	}
	t.Logf("the tcp server's sockets once the connections closed: %s", strings.Join(held, ", "))
	for _, p := range u.status.Processes {
		if q := u.proc(p.Name); q.Restarts != 0 {
			t.Errorf("%s restarted %d times", p.Name, q.Restarts)
		}
	}
}

// TestLinuxDownloadsFromSimulatedHost: Linux downloads a 1 MB file from
// the httpd application of the simulated host, byte-exact, and reads a
// small file's status and header; every connection then closes. Linux's
// TCP is driven from Go, a connection per request as curl makes
// (TestUpApp and TestLoadGeneratorsAgainstSimulatedHost run curl itself).
func TestLinuxDownloadsFromSimulatedHost(t *testing.T) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	want := writeRandom(t, filepath.Join(www, "big.bin"), bigSize, 1)
	small := "hello from the simulated host\n"
	if err := os.WriteFile(filepath.Join(www, "small.txt"), []byte(small), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := withApp(t, dir, topology.Process{Name: "web", Role: "httpd", Args: []string{"--addr", "0.0.0.0:80", "--dir", www}})
	u := startUp(t, "--topology", topo, "--nic", "tap")
	u.logOnFailure()
	ns := launch.NSName(u.status.Run)
	waitFor(t, "httpd listening", 10*time.Second, func() bool { return u.tcpState("LISTEN") >= 1 })

	start := time.Now()
	resp, body, err := get(u.linuxHTTP(60*time.Second), "http://198.18.0.2:80/big.bin")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("GET big.bin: %v after %v", err, took)
	}
	if resp.StatusCode != 200 || len(body) != bigSize {
		t.Fatalf("GET big.bin: status %d and %d bytes, want status 200 and %d bytes", resp.StatusCode, len(body), bigSize)
	}
	if sum := sha256Hex(body); sum != want {
		t.Fatalf("downloaded %d bytes with sha256 %s, want %d bytes with %s", len(body), sum, bigSize, want)
	}
	t.Logf("Linux downloaded %d bytes from the simulated host in %v: %.1f Mbit/s",
		bigSize, took.Round(time.Millisecond), float64(bigSize)*8/took.Seconds()/1e6)

	resp, body, err = get(u.linuxHTTP(10*time.Second), "http://198.18.0.2:80/small.txt")
	if err != nil {
		t.Fatalf("GET small.txt: %v", err)
	}
	if resp.Proto != "HTTP/1.1" || resp.StatusCode != 200 {
		t.Errorf("status %s %s, want HTTP/1.1 200", resp.Proto, resp.Status)
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(small)) {
		t.Errorf("Content-Length %q, want %d:\n%v", cl, len(small), resp.Header)
	}
	if string(body) != small {
		t.Errorf("body %q, want %q", body, small)
	}
	if v := scrape(t, u.proc("web").MetricsPort, "newtsim_httpd_responses_total", `code="200"`); v != 2 {
		t.Errorf("httpd counted %v responses 200, want 2", v)
	}

	// The servers export their counters at most every 100 ms: wait for
	// the second connection to be counted, then check it was the last.
	passive := func() float64 { return scrape(t, u.proc("tcp").MetricsPort, "newtsim_tcp_passive_opens_total") }
	waitFor(t, "tcp's count of passive opens to reach Linux's 2 connections", 5*time.Second, func() bool { return passive() >= 2 })
	if v := passive(); v != 2 {
		t.Errorf("tcp counted %v passive opens, want Linux's 2 connections", v)
	}
	assertConnectionsClosed(t, u, ns)
	u.down()
}

// fetchResult is what the fetch role writes.
type fetchResult struct {
	URL       string `json:"url"`
	Status    int    `json:"status"`
	Bytes     int64  `json:"bytes"`
	SHA256    string `json:"sha256"`
	ElapsedNS int64  `json:"elapsed_ns"`
	Error     string `json:"error"`
}

// TestSimulatedHostDownloadsFromLinux: the fetch application of the
// simulated host downloads a 1 MB file from an HTTP server on Linux (Go's,
// listening in the run's namespace), byte-exact; every connection then
// closes.
func TestSimulatedHostDownloadsFromLinux(t *testing.T) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	want := writeRandom(t, filepath.Join(www, "big.bin"), bigSize, 2)
	got, result := filepath.Join(dir, "big.bin"), filepath.Join(dir, "fetch.json")
	// The fetch starts with the run, before Python listens (the namespace
	// comes with the run): it tries again while the connection is refused.
	topo := withApp(t, dir, topology.Process{Name: "get", Role: "fetch", Args: []string{
		"--url", "http://198.18.0.1:8000/big.bin", "--out", got, "--result", result,
		"--timeout", "60s", "--retry-refused", "30s"}})
	u := startUp(t, "--topology", topo, "--nic", "tap")
	u.logOnFailure()
	ns := launch.NSName(u.status.Run)

	requests := serveLinux(t, u.linux(), "198.18.0.1:8000", www)
	var res fetchResult
	waitFor(t, "the fetch's result", 90*time.Second, func() bool {
		b, err := os.ReadFile(result)
		return err == nil && json.Unmarshal(b, &res) == nil
	})
	if res.Error != "" {
		t.Fatalf("fetch failed: %s (status %d, %d bytes in %v)", res.Error, res.Status, res.Bytes, time.Duration(res.ElapsedNS))
	}
	if res.Status != 200 || res.Bytes != bigSize || res.SHA256 != want {
		t.Fatalf("fetch: status %d, %d bytes with sha256 %s; want 200, %d bytes with %s", res.Status, res.Bytes, res.SHA256, bigSize, want)
	}
	if sum, n := fileSHA256(t, got); sum != want || n != bigSize {
		t.Fatalf("the file written holds %d bytes with sha256 %s, want %d bytes with %s", n, sum, bigSize, want)
	}
	if _, err := os.Stat(got + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is left: %v", err)
	}
	secs := time.Duration(res.ElapsedNS).Seconds()
	t.Logf("the simulated host downloaded %d bytes from Linux in %.3fs: %.1f Mbit/s", res.Bytes, secs, float64(res.Bytes)*8/secs/1e6)
	if got := requests(); !slices.Equal(got, []string{"GET /big.bin HTTP/1.1 from 198.18.0.2"}) {
		t.Errorf("Linux's server was asked %q, want the one GET from the host", got)
	}

	if v := scrape(t, u.proc("tcp").MetricsPort, "newtsim_tcp_active_opens_total"); v < 1 {
		t.Errorf("tcp counted %v active opens, want the fetch's connection", v)
	}
	assertConnectionsClosed(t, u, ns)
	u.down()
}

// serveLinux serves the files of dir over HTTP on addr in the namespace,
// from Linux's TCP, until the test ends, and returns a function that lists
// the requests served so far, each "METHOD PATH PROTO from CLIENT".
func serveLinux(t *testing.T, ns *netns.NS, addr, dir string) func() []string {
	t.Helper()
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s %s from %s", r.Method, r.URL.Path, r.Proto, host))
		mu.Unlock()
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// writerFunc adapts a string sink to io.Writer.
type writerFunc func(string)

func (w writerFunc) Write(b []byte) (int, error) { w(string(b)); return len(b), nil }

// TestLinuxGetsRSTForClosedPort: a SYN from Linux to a port of the
// simulated host where nothing listens is answered with a RST at once, so
// Linux's connect fails with ECONNREFUSED well before its timeout (as nc
// -z says "Connection refused"), and tcp counts the segment it had no
// socket for.
func TestLinuxGetsRSTForClosedPort(t *testing.T) {
	u := startUp(t, "--nic", "tap")
	u.logOnFailure()
	tcpPort := u.proc("tcp").MetricsPort
	noSocket := func() float64 {
		return scrape(t, tcpPort, "newtsim_tcp_dropped_total", `reason="no-socket"`)
	}
	before, resetsBefore := noSocket(), scrape(t, tcpPort, "newtsim_tcp_resets_sent_total")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	c, err := u.linux().Dial(ctx, "tcp", "198.18.0.2:81")
	took := time.Since(start)
	t.Logf("connect took %v: %v", took.Round(time.Microsecond), err)
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect to a closed port: %v, want connection refused", err)
	}
	if took > time.Second {
		t.Fatalf("the connect took %v: a refusal comes at once, the timeout is 3s", took)
	}
	waitFor(t, "tcp's no-socket drops to go up", 5*time.Second, func() bool { return noSocket() > before })
	if v := scrape(t, tcpPort, "newtsim_tcp_resets_sent_total"); v <= resetsBefore {
		t.Errorf("tcp counted %v resets sent, %v before", v, resetsBefore)
	}
	u.down()
}

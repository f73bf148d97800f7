package launch_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/topology"
)

// TCP with real Linux peers: Linux's curl, Python's http.server and nc in
// a tap run's namespace talk to applications of the simulated host (httpd,
// fetch) through syscall, tcp, ip, pf, driver and nic, each a process.
// Everything stays inside the run's namespace, on 198.18.0.0/24.

// bigSize is the size of the file each way: 1 MB of random bytes.
const bigSize = 1 << 20

// needTools fails the test, loudly, when a tool it runs is not installed.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: this test needs it (Debian packages curl, netcat-openbsd, python3, iproute2; `make test` installs them)", tool)
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

// inNS returns a command running in the namespace.
func inNS(ns string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
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
		out, err := inNS(ns, "ss", "-Htn", "state", "established").Output()
		return err == nil && strings.TrimSpace(string(out)) == ""
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

// TestCurlDownloadsFromSimulatedHost: Linux's curl downloads a 1 MB file
// from the httpd application of the simulated host, byte-exact, and reads
// a small file's status and header; every connection then closes.
func TestCurlDownloadsFromSimulatedHost(t *testing.T) {
	needTools(t, "ip", "curl", "ss")
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

	got := filepath.Join(dir, "big.bin")
	start := time.Now()
	out, err := inNS(ns, "curl", "-sS", "--max-time", "60", "-o", got,
		"-w", "%{http_code} %{size_download} %{time_total}", "http://198.18.0.2:80/big.bin").CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("curl big.bin: %v after %v\n%s", err, took, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 || f[0] != "200" || f[1] != strconv.Itoa(bigSize) {
		t.Fatalf("curl big.bin says %q, want status 200 and %d bytes", out, bigSize)
	}
	if sum, n := fileSHA256(t, got); sum != want || n != bigSize {
		t.Fatalf("downloaded %d bytes with sha256 %s, want %d bytes with %s", n, sum, bigSize, want)
	}
	secs, _ := strconv.ParseFloat(f[2], 64)
	t.Logf("curl downloaded %d bytes from the simulated host in %.3fs (curl's time_total; %v with the exec): %.1f Mbit/s",
		bigSize, secs, took.Round(time.Millisecond), float64(bigSize)*8/secs/1e6)

	out, err = inNS(ns, "curl", "-sS", "--max-time", "10", "-D", "-", "http://198.18.0.2:80/small.txt").CombinedOutput()
	if err != nil {
		t.Fatalf("curl small.txt: %v\n%s", err, out)
	}
	head, body, ok := strings.Cut(string(out), "\r\n\r\n")
	if !ok {
		t.Fatalf("curl -D - printed no header:\n%s", out)
	}
	lines := strings.Split(head, "\r\n")
	if !strings.HasPrefix(lines[0], "HTTP/1.1 200") {
		t.Errorf("status line %q, want HTTP/1.1 200", lines[0])
	}
	cl := fmt.Sprintf("content-length: %d", len(small))
	found := false
	for _, l := range lines[1:] {
		found = found || strings.ToLower(l) == cl
	}
	if !found {
		t.Errorf("header lacks %q:\n%s", cl, head)
	}
	if body != small {
		t.Errorf("body %q, want %q", body, small)
	}
	if v := scrape(t, u.proc("web").MetricsPort, "newtsim_httpd_responses_total", `code="200"`); v != 2 {
		t.Errorf("httpd counted %v responses 200, want 2", v)
	}

	if v := scrape(t, u.proc("tcp").MetricsPort, "newtsim_tcp_passive_opens_total"); v != 2 {
		t.Errorf("tcp counted %v passive opens, want curl's 2 connections", v)
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
// simulated host downloads a 1 MB file from Python's http.server on Linux,
// byte-exact; every connection then closes.
func TestSimulatedHostDownloadsFromLinux(t *testing.T) {
	needTools(t, "ip", "python3", "ss")
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

	var pyOut syncBuilder
	py := inNS(ns, "python3", "-m", "http.server", "8000", "--bind", "198.18.0.1", "--directory", www)
	py.Stdout, py.Stderr = writerFunc(pyOut.WriteString), writerFunc(pyOut.WriteString)
	if err := py.Start(); err != nil {
		t.Fatalf("python3 -m http.server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- py.Wait() }()
	t.Cleanup(func() {
		py.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("python3 -m http.server said:\n%s", pyOut.String())
		}
	})
	waitFor(t, "Python listening on 198.18.0.1:8000", 10*time.Second, func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("python3 -m http.server exited: %v\n%s", err, pyOut.String())
		default:
		}
		out, err := inNS(ns, "ss", "-Hltn", "sport = :8000").Output()
		return err == nil && strings.Contains(string(out), "198.18.0.1:8000")
	})

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
	if !strings.Contains(pyOut.String(), `"GET /big.bin HTTP/1.1" 200`) {
		t.Errorf("Python did not log the GET:\n%s", pyOut.String())
	}

	if v := scrape(t, u.proc("tcp").MetricsPort, "newtsim_tcp_active_opens_total"); v < 1 {
		t.Errorf("tcp counted %v active opens, want the fetch's connection", v)
	}
	assertConnectionsClosed(t, u, ns)
	u.down()
}

// writerFunc adapts a string sink to io.Writer.
type writerFunc func(string)

func (w writerFunc) Write(b []byte) (int, error) { w(string(b)); return len(b), nil }

// TestLinuxGetsRSTForClosedPort: a SYN from Linux to a port of the
// simulated host where nothing listens is answered with a RST at once, so
// nc fails with "Connection refused" well before its timeout, and tcp
// counts the segment it had no socket for.
func TestLinuxGetsRSTForClosedPort(t *testing.T) {
	needTools(t, "ip", "nc")
	u := startUp(t, "--nic", "tap")
	u.logOnFailure()
	ns := launch.NSName(u.status.Run)
	tcpPort := u.proc("tcp").MetricsPort
	noSocket := func() float64 {
		return scrape(t, tcpPort, "newtsim_tcp_dropped_total", `reason="no-socket"`)
	}
	before, resetsBefore := noSocket(), scrape(t, tcpPort, "newtsim_tcp_resets_sent_total")

	var out bytes.Buffer
	nc := inNS(ns, "nc", "-v", "-z", "-w", "3", "198.18.0.2", "81")
	nc.Stdout, nc.Stderr = &out, &out
	start := time.Now()
	err := nc.Run()
	took := time.Since(start)
	t.Logf("nc took %v: %s", took.Round(time.Microsecond), strings.TrimSpace(out.String()))
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("nc to a closed port: %v, want exit status 1\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Connection refused") {
		t.Fatalf("nc says %q, want Connection refused", out.String())
	}
	if took > time.Second {
		t.Fatalf("nc took %v: a refusal comes at once, the timeout is 3s", took)
	}
	waitFor(t, "tcp's no-socket drops to go up", 5*time.Second, func() bool { return noSocket() > before })
	if v := scrape(t, tcpPort, "newtsim_tcp_resets_sent_total"); v <= resetsBefore {
		t.Errorf("tcp counted %v resets sent, %v before", v, resetsBefore)
	}
	u.down()
}

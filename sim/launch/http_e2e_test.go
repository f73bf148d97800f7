package launch_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/topology"
)

// Real HTTP load generators against the httpd application of the simulated
// host: wrk and h2load (HTTP/1.1) in a tap run's namespace load it for
// about two seconds each, on the message and the exposed backend, and must
// see no error; curl checks a response's content and header fields. Then
// a short `newtsim bench http` run writes its row. Everything stays in the
// run's namespace, on 198.18.0.0/24, or in the benchmark's own namespaces.

// httpBody is the small file served.
const httpBody = "twenty bytes, exact\n"

// httpdTopology writes the default stack plus httpd on backend, linked to
// syscall and, for exposed, to tcp, and returns the topology file.
func httpdTopology(t *testing.T, dir, backend, www string) string {
	t.Helper()
	top := topology.Default()
	top.Processes = append(top.Processes, topology.Process{Name: "web", Role: "httpd",
		Args: []string{"--backend", backend, "--addr", "0.0.0.0:80", "--dir", www}})
	top.Links = append(top.Links, topology.Link{A: "web", B: "syscall"})
	if backend == "exposed" {
		top.Links = append(top.Links, topology.Link{A: "web", B: "tcp"})
	}
	path := filepath.Join(dir, "web-"+backend+".topo")
	if err := os.WriteFile(path, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// firstFloat returns the first submatch of re in s as a number.
func firstFloat(t *testing.T, re, s, what string) float64 {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%s: no match for %q in:\n%s", what, re, s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %q: %v", what, m[1], err)
	}
	return v
}

// TestLoadGeneratorsAgainstSimulatedHost: wrk and h2load --h1 load httpd
// on the simulated host, message and exposed backends, with no error and
// a positive rate; curl -D - reads a response whose body and header are
// right; httpd counted every response; no process restarted.
func TestLoadGeneratorsAgainstSimulatedHost(t *testing.T) {
	needTools(t, "curl", "wrk", "h2load")
	for _, backend := range []string{"message", "exposed"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			www := filepath.Join(dir, "www")
			if err := os.Mkdir(www, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(www, "20B.txt"), []byte(httpBody), 0o644); err != nil {
				t.Fatal(err)
			}
			u := startUp(t, "--topology", httpdTopology(t, dir, backend, www), "--nic", "tap")
			u.logOnFailure()
			ns := launch.NSName(u.status.Run)
			waitFor(t, "httpd listening", 10*time.Second, func() bool { return u.tcpState("LISTEN") >= 1 })
			url := "http://198.18.0.2:80/20B.txt"

			// curl: the status line, the header fields and the body.
			out, err := inNS(ns, "curl", "-sS", "--max-time", "10", "-D", "-", url).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			head, body, ok := strings.Cut(string(out), "\r\n\r\n")
			if !ok {
				t.Fatalf("curl -D - printed no header:\n%s", out)
			}
			lines := strings.Split(head, "\r\n")
			if lines[0] != "HTTP/1.1 200 OK" {
				t.Errorf("status line %q, want HTTP/1.1 200 OK", lines[0])
			}
			fields := map[string]string{}
			for _, l := range lines[1:] {
				k, v, _ := strings.Cut(l, ":")
				fields[strings.ToLower(k)] = strings.TrimSpace(v)
			}
			for k, want := range map[string]string{"content-length": strconv.Itoa(len(httpBody)),
				"content-type": "text/plain; charset=utf-8", "server": "newtsim-httpd"} {
				if fields[k] != want {
					t.Errorf("%s: %q, want %q\n%s", k, fields[k], want, head)
				}
			}
			for _, k := range []string{"date", "last-modified"} {
				if _, err := time.Parse(time.RFC1123, fields[k]); err != nil {
					t.Errorf("%s: %q is not an HTTP date: %v", k, fields[k], err)
				}
			}
			if body != httpBody {
				t.Errorf("body %q, want %q", body, httpBody)
			}
			responses := 1.0

			// wrk, one thread, 10 connections kept alive.
			out, err = inNS(ns, "wrk", "-t1", "-c10", "-d2s", "--latency", url).CombinedOutput()
			if err != nil {
				t.Fatalf("wrk: %v\n%s", err, out)
			}
			t.Logf("wrk on %s:\n%s", backend, out)
			for _, bad := range []string{"Socket errors", "Non-2xx"} {
				if strings.Contains(string(out), bad) {
					t.Errorf("wrk reports %s:\n%s", bad, out)
				}
			}
			if rate := firstFloat(t, `Requests/sec:\s+([0-9.]+)`, string(out), "wrk"); rate <= 0 {
				t.Errorf("wrk: %v requests per second", rate)
			}
			responses += firstFloat(t, `([0-9]+) requests in`, string(out), "wrk")

			// h2load over HTTP/1.1, 10 clients for 2 s.
			out, err = inNS(ns, "h2load", "--h1", "-c10", "-D", "2", url).CombinedOutput()
			if err != nil {
				t.Fatalf("h2load: %v\n%s", err, out)
			}
			t.Logf("h2load on %s:\n%s", backend, out)
			m := regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`).
				FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("h2load printed no requests line:\n%s", out)
			}
			if m[5] != "0" || m[6] != "0" || m[7] != "0" || m[4] == "0" {
				t.Errorf("h2load: %s succeeded, %s failed, %s errored, %s timeout", m[4], m[5], m[6], m[7])
			}
			if !strings.Contains(string(out), "status codes: "+m[4]+" 2xx, 0 3xx, 0 4xx, 0 5xx") {
				t.Errorf("h2load: not every response was 2xx:\n%s", out)
			}
			if rate := firstFloat(t, `finished in [^,]+, ([0-9.]+) req/s`, string(out), "h2load"); rate <= 0 {
				t.Errorf("h2load: %v requests per second", rate)
			}
			done, _ := strconv.ParseFloat(m[3], 64)
			responses += done

			// httpd answered at least every request the tools completed (a
			// tool may drop responses in flight when its time is up), and
			// nothing restarted.
			if v := scrape(t, u.proc("web").MetricsPort, "newtsim_httpd_responses_total", `code="200"`); v < responses {
				t.Errorf("httpd counted %v responses 200, the tools %v", v, responses)
			}
			for _, p := range u.status.Processes {
				if q := u.proc(p.Name); q.Restarts != 0 {
					t.Errorf("%s restarted %d times", p.Name, q.Restarts)
				}
			}
			u.down()
		})
	}
}

// TestBenchHTTPWritesRow: a one-second `newtsim bench http` writes its
// row with exactly the keys of the matrix, the figures positive; it
// judges no figure.
func TestBenchHTTPWritesRow(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, "http.json")
	out, err := runBin(t, 2*time.Minute, "bench", "http", "--workload", "20B-10rpc", "--server", "httpd-exposed",
		"--duration", "1s", "--json", js, "--md", filepath.Join(dir, "http.md"), "--svg", filepath.Join(dir, "http.svg"))
	if err != nil {
		t.Fatalf("newtsim bench http: %v\n%s", err, out)
	}
	t.Logf("newtsim bench http said:\n%s", out)
	for _, want := range []string{"Requests/sec:", "Transfer/sec:", "Latency Distribution", "99%", "core plan"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Machine   map[string]any     `json:"machine"`
		Rows      []map[string]any   `json:"rows"`
		SwitchHop map[string]float64 `json:"switch_hop"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Machine) == 0 {
		t.Errorf("no machine recorded")
	}
	if len(rep.Rows) != 1 {
		t.Fatalf("%d rows, want 1:\n%s", len(rep.Rows), b)
	}
	row := rep.Rows[0]
	var keys []string
	for k := range row {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"context_switches_per_request", "core_plan", "errors", "linux_syscalls_per_request", "mean_us",
		"p50_us", "p99_us", "processes", "req_per_s", "retransmits", "server", "server_cpu_us_per_request",
		"switch_floor_us", "workload"}
	if !slices.Equal(keys, want) {
		t.Errorf("row keys %v, want %v", keys, want)
	}
	// The ring on the server side's core was measured before the cell.
	for _, k := range []string{"process_ns", "process_cpu_ns", "thread_ns", "thread_cpu_ns", "process_switches_per_hop"} {
		if rep.SwitchHop[k] <= 0 {
			t.Errorf("switch_hop %s = %v, want a positive figure", k, rep.SwitchHop[k])
		}
	}
	// The simulated host's processes each ran and switched.
	for _, k := range []string{"server_cpu_us_per_request", "context_switches_per_request", "switch_floor_us"} {
		if v, ok := row[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, row[k])
		}
	}
	procs, _ := row["processes"].([]any)
	var names []string
	for _, p := range procs {
		if m, ok := p.(map[string]any); ok {
			names = append(names, fmt.Sprint(m["name"]))
		}
	}
	for _, n := range []string{"kernel", "tcp", "ip", "nic", "web"} {
		if !slices.Contains(names, n) {
			t.Errorf("processes %v: no %s", names, n)
		}
	}
	if v, ok := row["retransmits"].(float64); !ok || v < 0 {
		t.Errorf("retransmits = %v, want a count read from the tcp server", row["retransmits"])
	}
	if row["workload"] != "20B-10rpc" || row["server"] != "httpd-exposed" {
		t.Errorf("row %v: not the cell asked for", row)
	}
	for _, k := range []string{"req_per_s", "mean_us", "p50_us", "p99_us"} {
		if v, ok := row[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, row[k])
		}
	}
	if v, ok := row["linux_syscalls_per_request"].(float64); !ok || v < 0 {
		t.Errorf("linux_syscalls_per_request = %v, want a number, not negative", row["linux_syscalls_per_request"])
	}
	if v, ok := row["errors"].(float64); !ok || v < 0 {
		t.Errorf("errors = %v, want a count", row["errors"])
	}
	if s, _ := row["core_plan"].(string); s == "" {
		t.Errorf("no core plan in the row")
	}
	for _, f := range []string{"http.md", "http.svg"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}

// runBin runs the newtsim binary with a state directory of its own and
// returns its combined output.
func runBin(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	var out syncBuilder
	cmd := exec.Command(bin, append([]string{"--state-dir", t.TempDir()}, args...)...)
	cmd.Stdout, cmd.Stderr = writerFunc(out.WriteString), writerFunc(out.WriteString)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("still running after %v", timeout)
	}
}

// TestBenchHTTPFromARemoteHost: bench http with the client on a second
// simulated host (the monolithic stack) across a wire, as the talk's
// client machines: the cell completes with requests and no errors, and
// the report says where the client was.
func TestBenchHTTPFromARemoteHost(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, "http.json")
	out, err := runBin(t, 2*time.Minute, "bench", "http", "--workload", "20B-10rpc", "--server", "httpd-message-shm",
		"--client", "remote-host", "--duration", "1s", "--json", js)
	if err != nil {
		t.Fatalf("newtsim bench http: %v\n%s", err, out)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Client string `json:"client"`
		Rows   []struct {
			ReqPerS float64 `json:"req_per_s"`
			Errors  float64 `json:"errors"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].ReqPerS <= 0 || rep.Rows[0].Errors != 0 {
		t.Fatalf("rows %+v: want one with requests and no errors\n%s", rep.Rows, out)
	}
	if !strings.Contains(rep.Client, "clienthost") {
		t.Errorf("the report does not say the client was the remote host: %q", rep.Client)
	}
}

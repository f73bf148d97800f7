package launch_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
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

	"github.com/newtsim/newtsim/apps/socket/socktest"
	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/netns"
	"github.com/newtsim/newtsim/sim/promtest"
	"github.com/newtsim/newtsim/sim/topology"
)

// These tests run the real binary, as a person would, each run in a state
// directory of its own.

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "newtsim-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// NEWTSIM_BIN names a binary built beforehand, as `make test-bare`
	// does for a machine with no Go toolchain on its PATH.
	if bin = os.Getenv("NEWTSIM_BIN"); bin == "" {
		bin = filepath.Join(dir, "newtsim")
		build := exec.Command("go", "build", "-o", bin, "github.com/newtsim/newtsim/cmd/newtsim")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build newtsim:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// up is a running `newtsim up`.
type up struct {
	t      *testing.T
	dir    string
	cmd    *exec.Cmd
	status *kernel.Status
	out    *syncBuilder
}

// syncBuilder is a strings.Builder safe for one writer and many readers.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) WriteString(x string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(x)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startUp(t *testing.T, args ...string) *up {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{"--state-dir", dir, "up"}, args...)...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u := &up{t: t, dir: dir, cmd: cmd, out: &syncBuilder{}}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			u.out.WriteString(line + "\n")
			if strings.HasPrefix(line, "up: ") {
				ready <- true
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		exec.Command(bin, "--state-dir", dir, "down").Run()
		pw.Close()
	})
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("newtsim up did not come up:\n%s", u.out)
	}
	s, err := kernel.ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	u.status = s
	return u
}

func (u *up) proc(name string) kernel.ProcStatus {
	s, err := kernel.ReadStatus(u.dir)
	if err != nil {
		u.t.Fatal(err)
	}
	for _, p := range s.Processes {
		if p.Name == name {
			return p
		}
	}
	u.t.Fatalf("no process %s in status", name)
	return kernel.ProcStatus{}
}

// restart kills the named process and waits until the kernel has
// restarted it (its restarts count reaching restarts, ready, another pid).
// It returns the process as it was before the kill.
func (u *up) restart(t *testing.T, name string, restarts int) kernel.ProcStatus {
	t.Helper()
	old := u.proc(name)
	if err := syscall.Kill(old.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, name+" restarted", 10*time.Second, func() bool {
		p := u.proc(name)
		return p.Restarts == restarts && p.Ready && p.Alive && p.Pid != old.Pid
	})
	return old
}

func (u *up) down() {
	u.t.Helper()
	out, err := exec.Command(bin, "--state-dir", u.dir, "down").CombinedOutput()
	if err != nil {
		u.t.Fatalf("newtsim down: %v\n%s", err, out)
	}
	done := make(chan error, 1)
	go func() { done <- u.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		u.t.Fatalf("newtsim up did not exit after down")
	}
}

// assertGone checks no process of the run is alive and no /dev/shm file of
// it is left.
func assertGone(t *testing.T, run string, pids []int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var alive []string
		for _, pid := range pids {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(b), run) {
				alive = append(alive, strconv.Itoa(pid))
			}
		}
		files, _ := filepath.Glob("/dev/shm/newtsim-" + run + "-*")
		if len(alive) == 0 && len(files) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: processes %v, files %v", alive, files)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pids(s *kernel.Status) []int {
	var ps []int
	for _, p := range s.Processes {
		ps = append(ps, p.Pid)
	}
	return ps
}

func TestUpStatusDown(t *testing.T) {
	for _, tr := range []string{"shm", "kernel"} {
		t.Run(tr, func(t *testing.T) {
			u := startUp(t, "--transport", tr)
			if len(u.status.Processes) != 8 {
				t.Fatalf("want kernel and 7 servers, got %d:\n%s", len(u.status.Processes), u.out)
			}
			for _, want := range []string{"core plan:", "syscall", "driver", "targets"} {
				if !strings.Contains(u.out.String(), want) {
					t.Errorf("up's output lacks %q:\n%s", want, u.out)
				}
			}
			// Inboxes and pools are memfds the kernel holds, none in /dev/shm.
			held := heldRunFiles(t, u.proc("kernel").Pid, u.status.Run)
			if want := map[string]int{"shm": 7, "kernel": 0}[tr]; len(held[".inbox"]) != want {
				t.Errorf("want %d inboxes held by the kernel, got %v", want, held[".inbox"])
			}
			// A ring per (sender, receiver) pair: ring 0 into each inbox
			// and one per link in each direction.
			if rings := len(held[".ring"]); tr == "shm" && rings < 2*7 || tr == "kernel" && rings != 0 {
				t.Errorf("%s: the kernel holds %d rings: %v", tr, rings, held[".ring"])
			}
			if len(held[".pool"]) != 7 {
				t.Errorf("want a buffer pool per server held by the kernel, got %v", held[".pool"])
			}
			for _, k := range sealedKinds {
				if named, _ := filepath.Glob("/dev/shm/newtsim-" + u.status.Run + "-*" + k); len(named) != 0 {
					t.Errorf("run files in /dev/shm: %v", named)
				}
			}
			st, err := exec.Command(bin, "--state-dir", u.dir, "status").CombinedOutput()
			if err != nil || !strings.Contains(string(st), "tcp") || !strings.Contains(string(st), tr) {
				t.Errorf("status: %v\n%s", err, st)
			}
			u.down()
			assertGone(t, u.status.Run, pids(u.status))
			if st, _ := exec.Command(bin, "--state-dir", u.dir, "status").CombinedOutput(); !strings.Contains(string(st), "nothing is running") {
				t.Errorf("status after down:\n%s", st)
			}
		})
	}
}

// scrape returns the value of metric in a process's metrics: the sum of
// its series that carry every label given, each written name="value"
// (one series, in every use here). A metric the process does not export
// (yet) counts as 0, as a counter never incremented would; a process that
// does not answer gives -1.
func scrape(t *testing.T, port int, metric string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for _, l := range labels {
		name, quoted, _ := strings.Cut(l, "=")
		v, err := strconv.Unquote(quoted)
		if err != nil {
			t.Fatalf("scrape %s: label %s, want name=\"value\"", metric, l)
		}
		want[name] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fams, err := prom.Scrape(ctx, prom.LocalURL(port))
	if err != nil {
		return -1
	}
	v, ok := prom.Value(fams, metric, want)
	if !ok {
		return 0 // not exported: zero, where prom.Value says missing
	}
	return v
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRestartAndReach kills a server with SIGKILL; the kernel must restart
// it, and its peer must reach the new incarnation.
func TestRestartAndReach(t *testing.T) {
	for _, tr := range []string{"shm", "kernel"} {
		t.Run(tr, func(t *testing.T) {
			u := startUp(t, "--topology", "testdata/probe.topo", "--transport", tr)
			prober := u.proc("prober")
			pongs := func() float64 {
				return scrape(t, u.proc("prober").MetricsPort, "newtsim_prober_pongs_total", `peer="echo"`)
			}
			waitFor(t, "pongs from echo", 10*time.Second, func() bool { return pongs() > 3 })

			old := u.restart(t, "echo", 1)
			nu := u.proc("echo")
			if nu.Endpoint == old.Endpoint {
				t.Fatalf("restarted echo kept endpoint %s", old.Endpoint)
			}
			before := pongs()
			waitFor(t, "pongs from the new echo", 10*time.Second, func() bool { return pongs() > before+3 })
			if u.proc("prober").Pid != prober.Pid {
				t.Fatal("prober restarted too")
			}
			k := u.proc("kernel")
			if v := scrape(t, k.MetricsPort, "newtsim_kernel_restarts_total", `server="echo"`); v != 1 {
				t.Fatalf("kernel restarts metric for echo = %v, want 1", v)
			}
			u.down()
			assertGone(t, u.status.Run, append(pids(u.status), nu.Pid))
		})
	}
}

// TestHostileInput: bad datagrams on a kernel connection are refused and
// counted by reason while the kernel keeps serving the others.
func TestHostileInput(t *testing.T) {
	for _, tr := range []string{"shm", "kernel"} {
		t.Run(tr, func(t *testing.T) {
			u := startUp(t, "--topology", "testdata/probe.topo", "--transport", tr)
			k := u.proc("kernel")
			reasons := map[string]float64{"short": 1, "oversized": 1, "unknown-type": 1, "forged-source": 1, "forbidden": 1}
			waitFor(t, "refusals counted", 10*time.Second, func() bool {
				for r, want := range reasons {
					if scrape(t, k.MetricsPort, "newtsim_kernel_refused_messages_total", `reason="`+r+`"`) != want {
						return false
					}
				}
				return true
			})
			h := u.proc("hostile")
			if h.Restarts != 0 || !h.Alive {
				t.Fatalf("hostile process: %+v", h)
			}
			// The forbidden send came back to the hostile process as EPERM.
			waitFor(t, "EPERM back at the sender", 5*time.Second, func() bool {
				return scrape(t, h.MetricsPort, "newtsim_hostile_kernel_errors_total", `errno="`+ipc.EPERM.Error()+`"`) == 1
			})
			// The others are still served.
			p := func() float64 {
				return scrape(t, u.proc("prober").MetricsPort, "newtsim_prober_pongs_total", `peer="echo"`)
			}
			before := p()
			waitFor(t, "pongs after the hostile input", 10*time.Second, func() bool { return p() > before+3 })
			if v := scrape(t, u.proc("echo").MetricsPort, "newtsim_server_ignored_messages_total"); v != 0 {
				t.Fatalf("echo received %v messages it should not have", v)
			}
			u.down()
		})
	}
}

// TestLauncherKilled: after SIGKILL of `newtsim up`, the next `down` leaves
// nothing behind.
func TestLauncherKilled(t *testing.T) {
	u := startUp(t)
	if err := u.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	u.cmd.Wait()
	out, err := exec.Command(bin, "--state-dir", u.dir, "down").CombinedOutput()
	if err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	assertGone(t, u.status.Run, pids(u.status))
}

// TestKernelKilled: after SIGKILL of the kernel itself, its servers die with
// it, and the next `up` cleans up the files and starts.
func TestKernelKilled(t *testing.T) {
	u := startUp(t)
	if err := syscall.Kill(u.proc("kernel").Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- u.cmd.Wait() }()
	select {
	case <-done: // up notices the kernel died, cleans and exits
	case <-time.After(10 * time.Second):
		t.Fatal("up did not exit after its kernel was killed")
	}
	assertGone(t, u.status.Run, pids(u.status))
}

// TestUpRefusesSecondRun: a live run is never started over.
func TestUpRefusesSecondRun(t *testing.T) {
	u := startUp(t)
	out, err := exec.Command(bin, "--state-dir", u.dir, "up").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already up") {
		t.Fatalf("second up: %v\n%s", err, out)
	}
	u.down()
}

// TestPrometheusScrapesEveryServer: a real Prometheus reads the targets file
// and finds every process up; no series has a label Prometheus renamed to
// exported_NAME for clashing with a target label; and every series' name is
// in docs/METRICS.md, where every metric of the kernel's is scraped.
func TestPrometheusScrapesEveryServer(t *testing.T) {
	needTools(t, "prometheus")
	u := startUp(t, "--service-times")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := promtest.Start(ctx, filepath.Join(u.dir, kernel.TargetsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	samples, err := srv.WaitUp(ctx, len(u.status.Processes), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range samples {
		seen[s.Labels[kernel.LabelProcess]] = s.Value == 1
		if s.Labels[kernel.LabelRun] != u.status.Run {
			t.Errorf("target %s: run %q, want %q", s, s.Labels[kernel.LabelRun], u.status.Run)
		}
	}
	for _, p := range u.status.Processes {
		if !seen[p.Name] {
			t.Errorf("server %s not up in Prometheus", p.Name)
		}
	}
	series, err := srv.Query(ctx, `{job="newtsim"}`)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := promtest.ReadMetricsDoc(filepath.Join("..", "..", promtest.MetricsDoc))
	if err != nil {
		t.Fatal(err)
	}
	fromKernel, missing := map[string]bool{}, map[string]bool{}
	for _, s := range series {
		for l := range s.Labels {
			if strings.HasPrefix(l, "exported_") {
				t.Errorf("series %s has label %s: a metric label clashes with a target label", s, l)
			}
		}
		name := s.Labels["__name__"]
		if name == "up" || strings.HasPrefix(name, "scrape_") {
			continue // Prometheus' own, about the scrape
		}
		if s.Labels[kernel.LabelProcess] == "kernel" {
			fromKernel[name] = true
		}
		if _, ok := promtest.Find(doc, name); ok {
			continue
		}
		// A histogram's series: NAME_bucket, NAME_sum, NAME_count.
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if d, ok := promtest.Find(doc, base); !ok || d.Type != "histogram" {
			missing[name] = true
		}
	}
	for name := range missing {
		t.Errorf("Prometheus scraped %s, which %s does not list", name, promtest.MetricsDoc)
	}
	for _, d := range doc {
		if d.By == "kernel" && !fromKernel[d.Name] {
			t.Errorf("%s lists %s for the kernel, which Prometheus did not scrape from it", promtest.MetricsDoc, d.Name)
		}
	}
	u.down()
}

// TestPrometheusExample loads examples/prometheus, as its users run it but
// scraping every second, into a real Prometheus scraping a running
// topology, and reads back the series its rules record: message rates, the
// wake-up ratio, and the service-time quantiles of a run with
// --service-times.
func TestPrometheusExample(t *testing.T) {
	needTools(t, "prometheus")
	u := startUp(t, "--topology", "testdata/probe.topo", "--service-times")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, files, err := promtest.Example(filepath.Join("..", "..", promtest.ExampleDir), filepath.Join(u.dir, kernel.TargetsFile))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := promtest.StartConfig(ctx, cfg, files)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if _, err := srv.WaitUp(ctx, len(u.status.Processes), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The prober pings echo every 20ms, on the kernel's alarms.
	for _, q := range []string{
		`newtsim_process:newtsim_ipc_messages_received:rate1m{newtsim_process="echo"} > 0`,
		`newtsim_process:newtsim_ipc_sleeps_per_message_received:ratio_rate1m{newtsim_process="echo"}`,
		`newtsim_process_type:newtsim_server_service_seconds:quantile_rate1m{newtsim_process="prober",type="pong",quantile="0.99"} > 0`,
	} {
		got, err := srv.WaitSeries(ctx, q, 30*time.Second)
		if err != nil {
			t.Error(err)
			continue
		}
		t.Logf("%s: %v", q, got)
	}
	u.down()
}

// TestRunCommand runs the main job (`make run`'s `newtsim run`) and checks
// what it prints and records: the core plan, a line per process, every
// row of the IPC table with a measured figure, the eagain table and the
// short HTTP matrix. It judges no figure.
func TestRunCommand(t *testing.T) {
	dir, results := t.TempDir(), t.TempDir()
	before := shmRunFiles()
	out, err := exec.Command(bin, "--state-dir", dir, "run", "--results", results).CombinedOutput()
	if err != nil {
		t.Fatalf("newtsim run: %v\n%s", err, out)
	}
	for _, want := range []string{"core plan:", "syscall", "driver", "| shm-spin-2core |", "| kernel-msg |", "machine:",
		"| exposed |", "| user-msg-direct |", "httpd-exposed", "lighttpd"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(filepath.Join(results, "ipc.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Machine struct {
			CPUModel string  `json:"cpu_model"`
			TSCHz    float64 `json:"tsc_hz"`
		} `json:"machine"`
		Rows []struct {
			Name   string  `json:"name"`
			NS     float64 `json:"ns"`
			Cycles float64 `json:"cycles"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range rep.Rows {
		if r.NS <= 0 || r.Cycles <= 0 {
			t.Errorf("row %s: ns %v cycles %v", r.Name, r.NS, r.Cycles)
		}
		got[r.Name] = true
	}
	for _, name := range []string{"shm-spin-2core", "shm-futex-2core", "shm-futex-1core", "kernel-msg", "ref-cacheline-2core", "ref-pipe"} {
		if !got[name] {
			t.Errorf("ipc.json lacks row %s", name)
		}
	}
	if rep.Machine.CPUModel == "" || rep.Machine.TSCHz <= 0 {
		t.Errorf("machine not recorded: %+v", rep.Machine)
	}
	for _, f := range []string{"eagain.json", "eagain.md", "eagain.svg", "http-short.json", "http-short.svg"} {
		if _, err := os.Stat(filepath.Join(results, f)); err != nil {
			t.Errorf("run did not write %s: %v", f, err)
		}
	}
	// Another test's run, still up beside this one (go test runs packages
	// at once), may have files there: only a file that was not there
	// before, of a run with no process left, is one run left behind.
	for name, run := range shmRunFiles() {
		if _, had := before[name]; !had && len(launch.RunProcesses(run)) == 0 {
			t.Errorf("run left %s behind", name)
		}
	}
}

// shmRunFiles lists the files of every run in /dev/shm, with their runs.
func shmRunFiles() map[string]string {
	files := map[string]string{}
	ents, _ := os.ReadDir("/dev/shm")
	for _, e := range ents {
		if run, ok := shm.RunOf(e.Name()); ok {
			files[e.Name()] = run
		}
	}
	return files
}

// TestLinuxPingThroughStack: with the tap backend, Linux's ping program,
// run in the run's namespace as up says to, gets echo replies from the ip
// server, through nic, driver and pf as separate processes; down removes
// the namespace.
func TestLinuxPingThroughStack(t *testing.T) {
	needTools(t, "ip", "ping")
	for _, tr := range []string{"shm", "kernel"} {
		t.Run(tr, func(t *testing.T) {
			u := startUp(t, "--nic", "tap", "--transport", tr)
			ns := launch.NSName(u.status.Run)
			if !strings.Contains(u.out.String(), "ip netns exec "+ns+" ping 198.18.0.2") {
				t.Errorf("up does not say how to reach the host:\n%s", u.out)
			}
			out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "198.18.0.2").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "3 received") {
				t.Fatalf("ping through the stack: %v\n%s\n%s", err, out, u.out)
			}
			pf := u.proc("pf")
			if v := scrape(t, pf.MetricsPort, "newtsim_pf_frames_total", `direction="in"`, `verdict="allow"`); v < 3 {
				t.Errorf("pf allowed %v frames in, want the 3 echo requests at least", v)
			}
			u.down()
			if names, _ := netns.List(); slices.Contains(names, ns) {
				t.Fatalf("namespace %s left behind", ns)
			}
		})
	}
}

// TestNICRestartKeepsTheHostReachable: the nic attaches to a persistent TAP
// device in the run's namespace, so after it is killed and restarted Linux
// can still ping the host.
func TestNICRestartKeepsTheHostReachable(t *testing.T) {
	u := startUp(t, "--nic", "tap")
	u.logOnFailure()
	if got := u.ping(t, 2, 2*time.Second); got != 2 {
		t.Fatalf("ping before the restart: %d of 2 replies", got)
	}
	u.restart(t, "nic", 1)
	if got := u.ping(t, 2, 2*time.Second); got != 2 {
		t.Fatalf("ping after the nic's restart: %d of 2 replies", got)
	}
	u.down()
	if _, err := net.InterfaceByName(launch.TapName(u.status.Run)); err == nil {
		t.Fatalf("TAP device %s left behind", launch.TapName(u.status.Run))
	}
}

// ping pings the simulated host from Linux in the run's namespace, count
// echo requests 0.2 s apart, each waiting up to wait for its reply, and
// returns how many replies came (ping -c COUNT -i 0.2 -W WAIT).
func (u *up) ping(t *testing.T, count int, wait time.Duration) int {
	t.Helper()
	res, err := u.linux().Ping(netip.MustParseAddr(launch.HostAddr), count, 200*time.Millisecond, wait)
	if err != nil {
		t.Fatal(err)
	}
	return res.Received
}

// TestPFReload: pf in the path filters Linux's pings by the rules file,
// reloads it on SIGHUP without a restart, refuses a bad file while the rules
// in force stay, and counts each rule's hits.
func TestPFReload(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "pf.rules")
	write := func(text string) {
		if err := os.WriteFile(rules, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# no rules yet: the default allows\n")
	top := topology.Default()
	for i, p := range top.Processes {
		if p.Role == "pf" {
			top.Processes[i].Args = []string{"--rules", rules}
		}
	}
	topoPath := filepath.Join(dir, "pf.topo")
	if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUp(t, "--topology", topoPath, "--nic", "tap")
	// As ping's exit status says: a reply came.
	pings := func() bool { return u.ping(t, 2, time.Second) > 0 }
	pfp := u.proc("pf")
	reload := func(text, result string, want float64) {
		t.Helper()
		write(text)
		if err := syscall.Kill(pfp.Pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "reload "+result, 5*time.Second, func() bool {
			return scrape(t, pfp.MetricsPort, "newtsim_pf_reloads_total", `result="`+result+`"`) == want
		})
	}
	if !pings() {
		t.Fatal("no replies with no rules")
	}
	reload("drop in proto icmp from any to 198.18.0.2\n", "ok", 1)
	if pings() {
		t.Fatal("replies although a rule drops ICMP in")
	}
	if v := scrape(t, pfp.MetricsPort, "newtsim_pf_rule_hits_total", `rule="0"`, `action="drop"`); v < 2 {
		t.Fatalf("rule 0 hit %v times, want the 2 echo requests at least", v)
	}
	reload("drop sideways\n", "refused", 1)
	if pings() {
		t.Fatal("a refused rules file lifted the rules in force")
	}
	reload("allow in proto icmp\n", "ok", 2)
	if !pings() {
		t.Fatal("no replies after a rule allows ICMP again")
	}
	if u.proc("pf").Restarts != 0 {
		t.Fatal("pf was restarted")
	}
	u.down()
}

// icmpInDestUnreachs reads Linux's count of ICMP destination unreachables
// received, in the run's namespace.
func (u *up) icmpInDestUnreachs(t *testing.T) int64 {
	t.Helper()
	n, err := u.linux().SNMP("Icmp", "InDestUnreachs")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUDPPortUnreachableThroughStack: a datagram from Linux to a port with
// no socket goes up nic, driver, pf and ip to the udp server, which hands it
// back; ip's ICMP port unreachable reaches Linux, whose socket reads it as
// ECONNREFUSED (as nc -u sees it).
func TestUDPPortUnreachableThroughStack(t *testing.T) {
	u := startUp(t, "--nic", "tap")
	before := u.icmpInDestUnreachs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := u.linux().Dial(ctx, "udp", "198.18.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("anyone?\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 64)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("read after a datagram to a closed port: %v, want connection refused", err)
	}
	waitFor(t, "Linux's ICMP counter", 5*time.Second, func() bool { return u.icmpInDestUnreachs(t) > before })
	if v := scrape(t, u.proc("udp").MetricsPort, "newtsim_udp_dropped_total", `reason="no-socket"`); v != 1 {
		t.Fatalf("udp counted %v datagrams without a socket, want 1", v)
	}
	u.down()
}

// TestUDPEchoThroughStack: a UDP echo application on the simulated host,
// written against the socket library and using its message backend (every
// call a message to syscall, passed on to udp), answers Linux's datagrams
// (a UDP socket in the run's namespace, as socat's); every buffer the
// datagrams used goes back to its owner.
func TestUDPEchoThroughStack(t *testing.T) {
	for _, tr := range []string{"shm", "kernel"} {
		t.Run(tr, func(t *testing.T) {
			u := startUp(t, "--topology", "testdata/udpecho.topo", "--nic", "tap", "--transport", tr)
			// A datagram waits for its answer. A loaded machine (the
			// suite beside another CPU-heavy process) can take longer than
			// the first wait, so a datagram gets up to three tries, each
			// from a fresh socket and with a longer wait: a late answer to
			// an earlier try goes to a closed port, never to this one.
			echo := func(msg string) string {
				var got string
				for _, wait := range []time.Duration{300 * time.Millisecond, time.Second, 3 * time.Second} {
					got = udpExchange(t, u.linux(), "198.18.0.2:7", msg, wait)
					if got == msg {
						break
					}
				}
				return got
			}
			// The application binds its port once it runs, just after it
			// registers: wait for the first echo.
			waitFor(t, "the echo service", 10*time.Second, func() bool { return echo("first\n") == "first\n" })
			for i := 0; i < 20; i++ {
				msg := fmt.Sprintf("datagram %d through %s\n", i, tr)
				if got := echo(msg); got != msg {
					t.Fatalf("echo %d: got %q, want %q\n%s", i, got, msg, u.out)
				}
			}
			// Every buffer is back with its owner; the nic's receive side
			// always holds one, ready for the next frame.
			for name, want := range map[string]float64{"nic": 1, "ip": 0, "udp": 0, "echo": 0} {
				p := u.proc(name)
				waitFor(t, fmt.Sprintf("%s's buffers back (%v in use)", name, want), 5*time.Second, func() bool {
					return scrape(t, p.MetricsPort, "newtsim_pool_buffers_in_use") == want
				})
			}
			if e := u.proc("echo"); e.Restarts != 0 {
				t.Fatalf("the echo application restarted %d times", e.Restarts)
			}
			u.down()
		})
	}
}

// udpExchange sends msg in a datagram to addr from a fresh socket in the
// namespace, and returns the first datagram back within wait ("" if none).
func udpExchange(t *testing.T, ns *netns.NS, addr, msg string, wait time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// TestBenchUDP runs `newtsim bench udp` and checks every row was measured
// and recorded with the machine, and every stream's throughput search is
// there and consistent (the rate found is one a stream delivered enough
// at, no more than the unpaced stream offered), and issue 11's stream
// check is there; it judges no figure.
func TestBenchUDP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "udp.json")
	out, err := exec.Command(bin, "bench", "udp", "--json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("bench udp: %v\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Rows []struct {
			Name       string  `json:"name"`
			NS         float64 `json:"ns"`
			RoundTrips int     `json:"round_trips"`
		} `json:"rows"`
		Machine struct {
			CPUModel string `json:"cpu_model"`
		} `json:"machine"`
		Checks []struct {
			Name  string  `json:"name"`
			Value float64 `json:"value"`
		} `json:"checks"`
		Streams []struct {
			Name     string             `json:"name"`
			Sent     int                `json:"sent"`
			Received int                `json:"received"`
			PerSec   float64            `json:"datagrams_per_s"`
			Offered  float64            `json:"offered_per_s"`
			Drops    map[string]float64 `json:"drops"`
			Search   map[string]float64 `json:"search_drops"`
			// The throughput search; the fields are probe.Throughput's.
			Throughput *struct {
				Trial   int     `json:"trial"`
				Deliver float64 `json:"deliver"`
				Ceiling float64 `json:"ceiling_per_s"`
				Floor   float64 `json:"floor_per_s"`
				Rate    float64 `json:"rate_per_s"`
				Mbits   float64 `json:"payload_mbit_per_s"`
				Unpaced bool    `json:"unpaced"`
				At      struct {
					Sent     int     `json:"sent"`
					Received int     `json:"received"`
					Offered  float64 `json:"offered_per_s"`
				} `json:"at_rate"`
				Trials []struct {
					Target   float64 `json:"target_per_s"`
					Sent     int     `json:"sent"`
					Received int     `json:"received"`
					Offered  float64 `json:"offered_per_s"`
					Pass     bool    `json:"pass"`
				} `json:"trials"`
			} `json:"throughput"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Streams) != 4 {
		t.Errorf("want 4 streams (message-shm, message-kernel, monolith, linux), got %d", len(rep.Streams))
	}
	for _, s := range rep.Streams {
		if s.Received < 2 || s.PerSec <= 0 || s.Received > s.Sent || s.Offered <= 0 {
			t.Errorf("stream %s: %d of %d received at %v/s, offered at %v/s", s.Name, s.Received, s.Sent, s.PerSec, s.Offered)
		}
		lost := s.Sent - s.Received // over the unpaced stream, then over the trials
		searchLost := 0
		if th := s.Throughput; th == nil {
			t.Errorf("stream %s: no throughput search", s.Name)
		} else {
			if th.Trial <= 0 || th.Deliver != 0.99 || th.Ceiling != s.Offered || th.Floor <= 0 || th.Floor >= th.Ceiling {
				t.Errorf("stream %s: search %+v after an unpaced stream offered at %v/s", s.Name, th, s.Offered)
			}
			passed := false
			for _, tr := range th.Trials {
				if tr.Sent != th.Trial || tr.Received > tr.Sent || tr.Offered <= 0 || tr.Target < th.Floor || tr.Target >= th.Ceiling ||
					tr.Pass != (100*tr.Received >= 99*tr.Sent) {
					t.Errorf("stream %s: trial %+v", s.Name, tr)
				}
				if tr.Pass && tr.Offered == th.Rate && tr.Sent == th.At.Sent && tr.Received == th.At.Received {
					passed = true
				}
				searchLost += tr.Sent - tr.Received
			}
			switch {
			case th.Unpaced:
				passed = th.Rate == s.Offered && th.At.Received == s.Received && len(th.Trials) == 0 && 100*s.Received >= 99*s.Sent
			case th.Rate == 0:
				passed = th.At.Sent == 0 && len(th.Trials) > 0
			}
			if !passed || th.Rate > 1.5*th.Ceiling || th.At.Received > th.At.Sent || th.Mbits <= 0 && th.Rate > 0 {
				// The rate is what a passing trial offered (a whisker
				// above its target at most, never far above the ceiling).
				t.Errorf("stream %s: found %v/s, at %+v: not a stream that delivered 99%% (trials %+v)", s.Name, th.Rate, th.At, th.Trials)
			}
		}
		if !strings.HasPrefix(s.Name, "message-") {
			continue
		}
		// Through the stack nothing is lost unseen: every datagram the
		// sink did not get is a drop the simulated host counted.
		dropped := 0.0
		for _, n := range s.Drops {
			dropped += n
		}
		if float64(lost) > dropped {
			t.Errorf("stream %s: %d of %d received, and only %v counted dropped (%v)", s.Name, s.Received, s.Sent, dropped, s.Drops)
		}
		dropped = 0
		for _, n := range s.Search {
			dropped += n
		}
		if float64(searchLost) > dropped {
			t.Errorf("stream %s: the trials lost %d, and only %v counted dropped over them (%v)", s.Name, searchLost, dropped, s.Search)
		}
	}
	checked := false
	for _, c := range rep.Checks {
		checked = checked || c.Name == "stream, unpaced: message-shm delivered" && c.Value >= 0 && c.Value <= 1
	}
	if !checked {
		t.Errorf("no check of message-shm's unpaced delivery in:\n%s", b)
	}
	got := map[string]bool{}
	for _, r := range rep.Rows {
		if r.NS <= 0 || r.RoundTrips <= 0 {
			t.Errorf("row %s: %v ns over %d round trips", r.Name, r.NS, r.RoundTrips)
		}
		got[r.Name] = true
	}
	for _, name := range []string{"message-shm", "message-kernel", "monolith", "linux"} {
		if !got[name] {
			t.Errorf("no row %s in:\n%s", name, b)
		}
	}
	if rep.Machine.CPUModel == "" {
		t.Error("machine not recorded")
	}
}

// notBuiltOnMessage lists the conformance cases the message backend cannot
// pass yet, each with why. TestConformanceMessage fails if one of them
// starts passing, so the list cannot go stale.
var notBuiltOnMessage = map[string]string{}

// TestConformanceMessage runs the socket library's conformance suite in an
// application process of the simulated host, on the message backend: every
// case must give what Linux gives, but for the ones listed as not built.
func TestConformanceMessage(t *testing.T) { conformance(t, "message", notBuiltOnMessage) }

// notBuiltOnExposed lists the conformance cases the exposed backend cannot
// pass yet, each with why; like notBuiltOnMessage, it cannot go stale.
var notBuiltOnExposed = map[string]string{}

// TestConformanceExposed runs the same suite on the exposed backend.
func TestConformanceExposed(t *testing.T) { conformance(t, "exposed", notBuiltOnExposed) }

func conformance(t *testing.T, backend string, notBuilt map[string]string) {
	dir := t.TempDir()
	out := filepath.Join(dir, "conformance.json")
	top := topology.Default()
	top.Processes = append(top.Processes, topology.Process{Name: "conf", Role: "socktest", Args: []string{"--out", out, "--backend", backend}})
	top.Links = append(top.Links, topology.Link{A: "conf", B: "syscall"}, topology.Link{A: "conf", B: "tcp"})
	topoPath := filepath.Join(dir, "conf.topo")
	if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUp(t, "--topology", topoPath)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("newtsim up said:\n%s", u.out)
		}
	})
	var results map[string]string
	waitFor(t, "the conformance results", 60*time.Second, func() bool {
		b, err := os.ReadFile(out)
		return err == nil && json.Unmarshal(b, &results) == nil
	})
	if len(results) != len(socktest.AllCases()) {
		t.Fatalf("%d cases ran of %d: %v", len(results), len(socktest.AllCases()), results)
	}
	for name, failure := range results {
		why, known := notBuilt[name]
		switch {
		case failure != "" && !known:
			t.Errorf("%s: %s", name, failure)
		case failure == "" && known:
			t.Errorf("%s passes now (it was listed as not built: %s): take it off the list", name, why)
		case failure != "":
			t.Logf("not built yet: %s (%s): %s", name, why, failure)
		}
	}
	for _, p := range u.status.Processes {
		if q := u.proc(p.Name); q.Restarts != 0 {
			t.Errorf("%s restarted %d times during the suite", p.Name, q.Restarts)
		}
	}
	u.down()
}

// TestNICCapture: the nic writes every frame it moves to the pcap file
// named by --pcap, and tshark, the reader its users have, reads Linux's
// echo requests and the host's replies from it.
func TestNICCapture(t *testing.T) {
	needTools(t, "tshark")
	dir := t.TempDir()
	capture := filepath.Join(dir, "nic.pcap")
	top := topology.Default()
	for i, p := range top.Processes {
		if p.Role == "nic" {
			top.Processes[i].Args = []string{"--pcap", capture}
		}
	}
	topoPath := filepath.Join(dir, "pcap.topo")
	if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUp(t, "--topology", topoPath, "--nic", "tap")
	if got := u.ping(t, 2, 2*time.Second); got != 2 {
		t.Fatalf("ping: %d of 2 replies", got)
	}
	u.down()
	count := func(filter string) int {
		cmd := exec.Command("tshark", "-r", capture, "-Y", filter, "-T", "fields", "-e", "frame.number")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark: %v", err)
		}
		return len(strings.Fields(string(out)))
	}
	if req, rep := count("icmp.type == 8"), count("icmp.type == 0"); req != 2 || rep != 2 {
		t.Fatalf("capture holds %d echo requests and %d replies, want 2 and 2", req, rep)
	}
}

// twoHosts is a topology of two whole simulated hosts, a and b, each a
// multiserver stack with an application, their nics joined by a wire with
// the given link model.
func twoHosts(linkParams string, appA, appB topology.Process) *topology.Topology {
	t := &topology.Topology{Name: "two-hosts", Transport: topology.Shm}
	for i, h := range []string{"a", "b"} {
		n := func(s string) string { return s + "-" + h }
		addr := fmt.Sprintf("198.18.1.%d", i+1)
		t.Processes = append(t.Processes,
			topology.Process{Name: n("syscall"), Role: "syscall", Args: []string{"--udp", n("udp"), "--tcp", n("tcp")}},
			topology.Process{Name: n("udp"), Role: "udp", Args: []string{"--ip", n("ip"), "--addr", addr}},
			topology.Process{Name: n("tcp"), Role: "tcp", Args: []string{"--ip", n("ip"), "--addr", addr, "--time-wait", "1s"}},
			topology.Process{Name: n("ip"), Role: "ip", Args: []string{"--addr", addr + "/24",
				"--mac", fmt.Sprintf("02:00:00:00:01:%02x", i+1), "--udp", n("udp"), "--tcp", n("tcp"), "--down", n("pf")}},
			topology.Process{Name: n("pf"), Role: "pf", Args: []string{"--up", n("ip"), "--down", n("driver")}},
			topology.Process{Name: n("driver"), Role: "driver", Args: []string{"--up", n("pf"), "--down", n("nic")}},
			topology.Process{Name: n("nic"), Role: "nic", Args: []string{"--backend", "wire", "--up", n("driver"),
				"--wire-peer", "nic-" + map[string]string{"a": "b", "b": "a"}[h], "--link", linkParams + fmt.Sprintf(",seed=%d", i+1)}},
		)
		t.Links = append(t.Links, topology.Link{A: n("syscall"), B: n("udp")}, topology.Link{A: n("udp"), B: n("ip")},
			topology.Link{A: n("syscall"), B: n("tcp")}, topology.Link{A: n("tcp"), B: n("ip")},
			topology.Link{A: n("ip"), B: n("pf")}, topology.Link{A: n("pf"), B: n("driver")}, topology.Link{A: n("driver"), B: n("nic")})
	}
	appA.Name, appB.Name = "app-a", "app-b"
	t.Processes = append(t.Processes, appA, appB)
	t.Links = append(t.Links, topology.Link{A: "nic-a", B: "nic-b"},
		topology.Link{A: "app-a", B: "syscall-a"}, topology.Link{A: "app-b", B: "syscall-b"})
	return t
}

// TestTwoHostsOnALossyWire: two multiserver hosts on a wire with 10% loss,
// reordering, duplication and bit corruption exchange a stream of
// datagrams; every one that arrives is intact, and host b's engines count
// the corrupted frames they dropped.
func TestTwoHostsOnALossyWire(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "stream.json")
	top := twoHosts("bw=100Mbit,delay=200us,loss=0.1,reorder=0.1,dup=0.01,corrupt=0.02",
		topology.Process{Role: "udpblast", Args: []string{"--target", "198.18.1.2:9000", "--count", "2000", "--size", "200", "--out", out}},
		topology.Process{Role: "udpsink", Args: []string{"--target", "0.0.0.0:9000"}})
	topoPath := filepath.Join(dir, "two.topo")
	if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUp(t, "--topology", topoPath)
	var res struct {
		Sent, Received, Corrupt int
	}
	waitFor(t, "the stream's result", 60*time.Second, func() bool {
		b, err := os.ReadFile(out)
		return err == nil && json.Unmarshal(b, &res) == nil
	})
	t.Logf("%d of %d datagrams arrived over the lossy wire, %d corrupt", res.Received, res.Sent, res.Corrupt)
	if res.Corrupt != 0 {
		t.Fatalf("%d corrupt datagrams were delivered", res.Corrupt)
	}
	if res.Received < res.Sent/2 {
		t.Fatalf("only %d of %d arrived", res.Received, res.Sent)
	}
	caught := scrape(t, u.proc("ip-b").MetricsPort, "newtsim_ip_dropped_total", `reason="bad-checksum"`) +
		scrape(t, u.proc("udp-b").MetricsPort, "newtsim_udp_dropped_total", `reason="bad-checksum"`) +
		scrape(t, u.proc("ip-b").MetricsPort, "newtsim_ip_dropped_total", `reason="not-our-mac"`)
	if caught == 0 {
		t.Fatal("host b dropped no corrupted frame: the wire corrupted nothing, and the test proves nothing")
	}
	u.down()
}

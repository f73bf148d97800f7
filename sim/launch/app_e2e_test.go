package launch_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/netns"
	"github.com/newtsim/newtsim/sim/promtest"
)

// TestUpApp is the README's first command: `newtsim up --app httpd` (a TAP
// without asking) prints a curl command, which run as printed fetches
// httpd's page through the TAP, from the run's namespace, as `newtsim exec
// curl` does; httpd exports
// every metric docs/METRICS.md lists for it, with those labels (the test
// that builds every role cannot see them: httpd registers them once it
// listens); `newtsim top --once` shows every process, httpd at work under
// a curl loop; Ctrl-C stops the run and leaves no process, /dev/shm file,
// namespace or page behind.
func TestUpApp(t *testing.T) {
	needTools(t, "curl")
	u := startUp(t, "--app", "httpd")
	u.logOnFailure()

	// The command up printed, after "from Linux, as root:".
	_, after, ok := strings.Cut(u.out.String(), "from Linux, as root:\n")
	if !ok {
		t.Fatalf("up printed no command to reach httpd:\n%s", u.out)
	}
	line, _, _ := strings.Cut(after, "\n")
	args := strings.Fields(line)
	if !slices.Contains(args, "curl") || !strings.Contains(line, launch.NSName(u.status.Run)) {
		t.Fatalf("up printed %q, want curl in the run's namespace", line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], append(args[1:], "-sS", "--max-time", "10")...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	if string(out) != launch.IndexPage {
		t.Errorf("%s printed %q, want httpd's page %q", line, out, launch.IndexPage)
	}

	// newtsim exec, which needs no iproute2, finds the run's namespace.
	out, err = exec.CommandContext(ctx, bin, "--state-dir", u.dir, "exec", "curl", "-sS", "--max-time", "10",
		"http://"+launch.HostAddr+"/").CombinedOutput()
	if err != nil || string(out) != launch.IndexPage {
		t.Errorf("newtsim exec curl: %v: %q, want httpd's page", err, out)
	}

	// httpd's metrics against docs/METRICS.md.
	doc, err := promtest.ReadMetricsDoc(filepath.Join("..", "..", promtest.MetricsDoc))
	if err != nil {
		t.Fatal(err)
	}
	fams, err := prom.Scrape(ctx, prom.LocalURL(u.proc("httpd").MetricsPort))
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "newtsim_httpd_") {
			continue
		}
		d, ok := promtest.Find(doc, name)
		if !ok {
			t.Errorf("httpd exports %s, which %s does not list", name, promtest.MetricsDoc)
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
			slices.Sort(labels)
			if !slices.Equal(labels, d.Labels) {
				t.Errorf("httpd: %s has labels %v, %s says %v", name, labels, promtest.MetricsDoc, d.Labels)
			}
		}
	}
	for _, d := range doc {
		if d.By == "httpd" && fams[d.Name] == nil {
			t.Errorf("%s lists %s for httpd, which httpd does not export", promtest.MetricsDoc, d.Name)
		}
	}
	if v, _ := prom.Value(fams, "newtsim_httpd_responses_total", map[string]string{"code": "200"}); v != 2 {
		t.Errorf("httpd counted %v responses 200, want 2 (the curls)", v)
	}

	// newtsim top --once, over a second of curls: a row with figures for
	// every process, httpd receiving and sending messages, the listening
	// socket. On a loaded machine a server sharing its core may answer a
	// scrape late (top then shows the error in its row): up to three views
	// are taken, and the test fails when none shows everything.
	topCtx, topCancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer topCancel()
	var problems []string
	var top []byte
	for try := 0; try < 3; try++ {
		stopLoop := make(chan struct{})
		loopDone := make(chan struct{})
		go func() {
			defer close(loopDone)
			for {
				select {
				case <-stopLoop:
					return
				default:
				}
				exec.CommandContext(topCtx, args[0], append(args[1:], "-sS", "--max-time", "2", "-o", "/dev/null")...).Run()
			}
		}()
		top, err = exec.CommandContext(topCtx, bin, "--state-dir", u.dir, "top", "--once").CombinedOutput()
		close(stopLoop)
		<-loopDone
		if err != nil {
			t.Fatalf("newtsim top --once: %v\n%s", err, top)
		}
		problems = topProblems(string(top), u.status.Processes)
		if len(problems) == 0 {
			break
		}
	}
	for _, p := range problems {
		t.Errorf("newtsim top --once, the third view: %s", p)
	}
	if len(problems) > 0 {
		t.Logf("the third view:\n%s", top)
	}

	// Ctrl-C.
	if err := u.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- u.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("newtsim up after Ctrl-C: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("newtsim up did not exit after Ctrl-C")
	}
	assertGone(t, u.status.Run, pids(u.status))
	if names, err := netns.List(); err != nil || slices.Contains(names, launch.NSName(u.status.Run)) {
		t.Errorf("namespace %s left behind (%v)", launch.NSName(u.status.Run), err)
	}
	if ents, _ := os.ReadDir(u.dir); len(ents) > 0 {
		var left []string
		for _, e := range ents {
			left = append(left, e.Name())
		}
		t.Errorf("state directory keeps %v", left)
	}
}

// topProblems lists what a view of `newtsim top` lacks: a row with figures
// for every process, httpd at work, the listening socket.
func topProblems(top string, procs []kernel.ProcStatus) []string {
	rows := map[string][]string{}
	for _, l := range strings.Split(top, "\n") {
		if f := strings.Fields(l); len(f) == 11 {
			rows[f[0]] = f
		}
	}
	var problems []string
	for _, p := range procs {
		if rows[p.Name] == nil {
			problems = append(problems, "no figures for "+p.Name)
		}
	}
	if r := rows["httpd"]; r != nil && (r[3] == "0" || r[4] == "0") {
		problems = append(problems, fmt.Sprintf("httpd receiving %s and sending %s messages a second under a curl loop", r[3], r[4]))
	}
	if !strings.Contains(top, "tcp connections: ") || !strings.Contains(top, "LISTEN 1") {
		problems = append(problems, "no listening socket")
	}
	return problems
}

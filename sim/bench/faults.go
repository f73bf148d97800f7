package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/newtsim/newtsim/apps/ready"
	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/machine"
	"github.com/newtsim/newtsim/sim/topology"
)

// Crash under load (issue 13): while a client drives httpd on the
// simulated host, one of its processes is killed with SIGKILL, and the
// benchmark records how long the kernel takes to have it running and
// registered again, how long until a new request succeeds, what the
// client lost meanwhile, and, once the run is stopped, what the run left
// behind. Each killed process gets a run of its own, so that one crash's
// aftermath does not blur the next row.

// FaultServers are the processes bench faults kills, in order: the stack
// from the wire up, then httpd itself.
var FaultServers = []string{"nic", "driver", "pf", "ip", "udp", "tcp", "syscall", "httpd"}

// QuickFaultServers are the processes --quick kills.
var QuickFaultServers = []string{"ip", "tcp", "httpd"}

// FaultBackends are the socket library's backends httpd runs on.
var FaultBackends = []string{"message", "exposed"}

// belowTCP are the servers under tcp on the packet path: their restart
// must cost no request and no connection.
var belowTCP = []string{"nic", "driver", "pf", "ip"}

// Targets of bench faults.
const (
	TargetRestart   = 100 * time.Millisecond // kill to running and registered again
	TargetRecovered = time.Second            // kill to a new request's success
)

// FaultRow is what one kill did.
type FaultRow struct {
	Backend string `json:"backend"`
	Server  string `json:"server"`
	// RestartMS is the time from the kill to the kernel saying the
	// process is running again and registered (its metrics: a restart
	// counted and newtsim_kernel_server_up 1); null when that did not
	// happen within the window.
	RestartMS *float64 `json:"restart_ms"`
	// RecoveredMS is the time from the kill to the end of the first
	// request that succeeded among those started after the killed process
	// was seen gone; null when none succeeded within the window.
	RecoveredMS *float64 `json:"recovered_ms"`
	// StatusMS is the time from the kill to the kernel's status file
	// showing the process under a new pid, registered; null when it did
	// not within the window. The kernel rewrites the file after the
	// registration.
	StatusMS *float64 `json:"status_ms"`
	// DeadMS is the time from the kill to the process seen gone (a zombie
	// or reaped).
	DeadMS float64 `json:"dead_ms"`
	// FailedRequests counts the requests that failed in the window (from
	// the kill to its end): any outcome but a whole 200 response.
	FailedRequests int64 `json:"failed_requests"`
	// ConnectionsReset counts the established connections that died in
	// the window: reset, ended in the middle of a response, or silent past
	// the request timeout.
	ConnectionsReset int64 `json:"connections_reset"`
	// LeakedProcesses and LeakedShmFiles are what the run left once its
	// kernel had stopped (SIGTERM, as `newtsim down` sends) and a grace
	// second had passed, before any clean-up by the launcher: processes
	// whose command line names the run, and /dev/shm files of the run.
	LeakedProcesses int `json:"leaked_processes"`
	LeakedShmFiles  int `json:"leaked_shm_files"`

	// Requests and OK count the requests of the window, and Failures the
	// failed ones by what failed.
	Requests int64            `json:"requests"`
	OK       int64            `json:"ok"`
	Failures map[string]int64 `json:"failures,omitempty"`
	// BaselineOK and BaselineFailed count the requests of the warm-up,
	// before the kill.
	BaselineOK     int64 `json:"baseline_ok"`
	BaselineFailed int64 `json:"baseline_failed"`
	// WindowMS is how long after the kill the load ran.
	WindowMS float64 `json:"window_ms"`
	// Restarts is how often the kernel restarted the killed process in
	// the window (1 when it came back at once); OtherRestarts names the
	// other processes that died in the window, with their restarts.
	Restarts      int      `json:"restarts"`
	OtherRestarts []string `json:"other_restarts,omitempty"`
	// ShmFilesBefore and ShmFilesAfter count the run's /dev/shm files
	// just before the kill and at the end of the window.
	ShmFilesBefore int `json:"shm_files_before"`
	ShmFilesAfter  int `json:"shm_files_after"`
}

// FaultReport is what `newtsim bench faults` writes.
type FaultReport struct {
	Bench    string       `json:"bench"`
	Command  string       `json:"command"`
	Time     time.Time    `json:"time"`
	Machine  machine.Info `json:"machine"`
	CorePlan string       `json:"core_plan"`
	Client   string       `json:"client"`
	Backends []string     `json:"backends"`
	Servers  []string     `json:"servers"`
	// The load and the windows.
	Keepalive        int     `json:"keepalive_connections"`
	Fresh            int     `json:"fresh_connection_workers"`
	RequestTimeoutMS float64 `json:"request_timeout_ms"`
	WarmupMS         float64 `json:"warmup_ms"`
	TimeoutMS        float64 `json:"timeout_ms"` // the longest wait for restart and recovery
	SettleMS         float64 `json:"settle_ms"`  // load kept on after recovery, in the window
	// LoadAverage is the machine's /proc/loadavg at the start and the end
	// of the benchmark: on a shared machine, other work slows restarts.
	LoadAverage string     `json:"load_average"`
	Rows        []FaultRow `json:"rows"`
	Checks      []Check    `json:"checks"`
	Notes       []string   `json:"notes,omitempty"`
}

// FaultOptions configure bench faults. Zero fields take defaults.
type FaultOptions struct {
	CPUs     []int    // nil: every online CPU; the first is the client's
	Backends []string // nil: FaultBackends
	Servers  []string // nil: FaultServers (QuickFaultServers with Quick)
	// Quick shortens every window and kills QuickFaultServers, for a test.
	Quick     bool
	Keepalive int // workers keeping a connection; 0: 4
	Fresh     int // workers opening a connection per request; 0: 4
	// RequestTimeout fails a request not answered within it; 0: 2 s.
	RequestTimeout time.Duration
	// Warmup is the load before the kill; 0: 1 s (300 ms with Quick).
	Warmup time.Duration
	// Timeout bounds the wait for restart and recovery after the kill;
	// 0: 10 s (4 s with Quick).
	Timeout time.Duration
	// Settle is the load kept on after recovery; 0: 1 s (300 ms with
	// Quick).
	Settle   time.Duration
	Progress io.Writer // a line per row; nil for none
	// Log receives every process's log; nil: a temporary file, removed
	// when the benchmark succeeds and named in its error otherwise.
	Log     *os.File
	Command string
}

func (o *FaultOptions) defaults() error {
	if o.Backends == nil {
		o.Backends = FaultBackends
	}
	if o.Servers == nil {
		o.Servers = FaultServers
		if o.Quick {
			o.Servers = QuickFaultServers
		}
	}
	for _, b := range o.Backends {
		if !slices.Contains(FaultBackends, b) {
			return fmt.Errorf("bench faults: no backend %q (have %s)", b, strings.Join(FaultBackends, ", "))
		}
	}
	for _, s := range o.Servers {
		if !slices.Contains(FaultServers, s) {
			return fmt.Errorf("bench faults: no server %q (have %s)", s, strings.Join(FaultServers, ", "))
		}
	}
	def := func(d *time.Duration, full, quick time.Duration) {
		if *d == 0 {
			*d = full
			if o.Quick {
				*d = quick
			}
		}
	}
	def(&o.RequestTimeout, 2*time.Second, 2*time.Second)
	def(&o.Warmup, time.Second, 300*time.Millisecond)
	def(&o.Timeout, 10*time.Second, 4*time.Second)
	def(&o.Settle, time.Second, 300*time.Millisecond)
	if o.Keepalive == 0 {
		o.Keepalive = 4
	}
	if o.Fresh == 0 {
		o.Fresh = 4
	}
	if o.Keepalive < 0 || o.Fresh < 0 || o.Keepalive+o.Fresh == 0 || o.RequestTimeout < 0 || o.Warmup < 0 ||
		o.Timeout < 0 || o.Settle < 0 {
		return errors.New("bench faults: negative workers or durations")
	}
	return nil
}

// faultFile is the file the load requests.
var faultFile = HTTPWorkloads[0]

// Faults runs `newtsim bench faults`: for every backend and every server
// named, a run of the simulated host with httpd on the backend under load
// from the namespace, the server killed once.
func Faults(ctx context.Context, o FaultOptions) (rep *FaultReport, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		f, finish, lerr := keptLog("faults")
		if lerr != nil {
			return nil, lerr
		}
		o.Log = f
		defer finish(&err)
	}
	cpus, log, done, err := prepare("faults", o.CPUs, o.Log)
	if err != nil {
		return nil, err
	}
	defer done()
	dir, www, err := httpRoot("faults")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// The client is this process: pinned, for the run, to the CPU the
	// plan keeps for an application, as bench http's client.
	home, err := cpu.Current()
	if err != nil {
		return nil, err
	}
	if err := cpu.PinProcess(cpus[:1]); err != nil {
		return nil, err
	}
	defer cpu.PinProcess(home)

	rep = &FaultReport{Bench: "faults", Command: o.Command, Time: time.Now().UTC(), Machine: machine.Detect(),
		Backends: o.Backends, Servers: o.Servers, Keepalive: o.Keepalive, Fresh: o.Fresh,
		RequestTimeoutMS: ms(o.RequestTimeout), WarmupMS: ms(o.Warmup), TimeoutMS: ms(o.Timeout), SettleMS: ms(o.Settle),
		Client: fmt.Sprintf("the launcher process (pinned to CPU %d), on sockets made in the run's namespace, over the "+
			"run's TAP to httpd on the simulated host (%s:%d): %d workers each keeping a connection and %d opening a "+
			"connection per request, HTTP/1.1 GET %s (%d bytes) back to back; a failure closes the connection and the "+
			"worker waits %v before its next request; a request not answered within %v fails",
			cpus[0], hostIP, httpPort, o.Keepalive, o.Fresh, faultFile.Path(), faultFile.Size, faultRetryPause, o.RequestTimeout)}
	loadStart := loadAverage()
	r := &faultRun{o: o, dir: dir, www: www, log: log, cpus: cpus}
	for _, b := range o.Backends {
		for _, s := range o.Servers {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			row, plan, err := r.row(ctx, b, s)
			// A run that did not start or serve says nothing about the
			// crash: another try, noted (on a shared machine, another
			// launcher's clean-up can take a starting run's namespace).
			for try := 2; err != nil && try <= startTries && ctx.Err() == nil && errors.As(err, new(*beforeKill)); try++ {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s/%s: try %d, as the run before it failed before the kill: %v", b, s, try, err))
				fmt.Fprintf(log, "bench faults: %s/%s: %v; trying again\n", b, s, err)
				row, plan, err = r.row(ctx, b, s)
			}
			if err != nil {
				return nil, fmt.Errorf("bench faults: %s, %s: %w", b, s, err)
			}
			if rep.CorePlan == "" {
				rep.CorePlan = plan
			}
			rep.Rows = append(rep.Rows, row)
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "  %-8s %-8s restart %s  recovered %s  failed %d  connections lost %d  leaked %d processes, %d files\n",
					b, s, fmtMS(row.RestartMS), fmtMS(row.RecoveredMS), row.FailedRequests, row.ConnectionsReset,
					row.LeakedProcesses, row.LeakedShmFiles)
			}
		}
	}
	rep.LoadAverage = fmt.Sprintf("%s at the start, %s at the end", loadStart, loadAverage())
	rep.judge()
	return rep, nil
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// startTries is how often a row is tried when its run fails before the
// kill.
const startTries = 3

// beforeKill is an error of a row before its kill: the run did not start,
// or did not serve.
type beforeKill struct{ err error }

func (e *beforeKill) Error() string { return e.err.Error() }
func (e *beforeKill) Unwrap() error { return e.err }

// faultRun is the state of one bench faults.
type faultRun struct {
	o    FaultOptions
	dir  string
	www  string
	log  *os.File
	cpus []int
}

// row runs the simulated host with httpd on backend, loads it, kills
// server, and stops the run. It returns the row and the run's core plan.
func (r *faultRun) row(ctx context.Context, backend, server string) (FaultRow, string, error) {
	row := FaultRow{Backend: backend, Server: server}
	t := topology.Default()
	t.Name = "bench-faults"
	listening := filepath.Join(r.dir, "listening-"+backend+"-"+server)
	t.Processes = append(t.Processes, topology.Process{Name: "httpd", Role: "httpd", Args: []string{
		"--backend", backend, "--addr", fmt.Sprintf("0.0.0.0:%d", httpPort), "--dir", r.www, "--ready", listening}})
	t.Links = append(t.Links, topology.Link{A: "httpd", B: "syscall"})
	if backend != "message" {
		t.Links = append(t.Links, topology.Link{A: "httpd", B: "tcp"})
	}
	state := filepath.Join(r.dir, "state")
	fmt.Fprintf(r.log, "bench faults: %s backend, killing %s\n", backend, server)
	h, err := launch.Start(ctx, launch.Options{StateDir: state, Topology: t, CPUs: r.cpus, Log: r.log, NIC: "tap"})
	if err != nil {
		return row, "", &beforeKill{err}
	}
	defer h.Stop()
	plan := strings.Replace(h.Plan.Summary(), "=app[poll]", "=client", 1)
	run := h.State.Run
	if _, err := ready.Await(listening, probeTime); err != nil {
		return row, plan, &beforeKill{fmt.Errorf("httpd on the simulated host: %w", err)}
	}
	if err := tuneClientNS(h.NS); err != nil {
		return row, plan, &beforeKill{err}
	}
	load, err := startLoad(loadConfig{NS: "/var/run/netns/" + h.NS.Name,
		Target: netip.AddrPortFrom(netip.MustParseAddr(hostIP), httpPort).String(), Path: faultFile.Path(),
		Size: faultFile.Size, Keepalive: r.o.Keepalive, Fresh: r.o.Fresh, Timeout: r.o.RequestTimeout})
	if err != nil {
		return row, plan, &beforeKill{err}
	}
	stopped := false
	defer func() {
		if !stopped {
			load.stop()
		}
	}()
	if err := sleepCtx(ctx, r.o.Warmup); err != nil {
		return row, plan, &beforeKill{err}
	}
	if load.okCount.Load() == 0 {
		return row, plan, &beforeKill{fmt.Errorf("no request succeeded in the %v before the kill", r.o.Warmup)}
	}
	st, err := kernel.ReadStatus(state)
	if err != nil {
		return row, plan, &beforeKill{err}
	}
	victim, ok := procNamed(st, server)
	if !ok || victim.Pid <= 0 {
		return row, plan, &beforeKill{fmt.Errorf("no running %s in the run's status", server)}
	}
	kern, ok := procNamed(st, "kernel")
	if !ok || kern.MetricsPort == 0 {
		return row, plan, &beforeKill{errors.New("no kernel metrics port in the run's status")}
	}
	before, _, err := kernelSays(kern.MetricsPort, server)
	if err != nil {
		return row, plan, &beforeKill{err}
	}
	row.ShmFilesBefore = len(runShmFiles(run))

	// The kill, then the wait: for the process to be gone, for the kernel
	// to have it running and registered again (its metrics say so at
	// once; its status file, rewritten and synced to disk, a little
	// later), and for a new request to succeed.
	kill := load.now()
	if err := syscall.Kill(victim.Pid, syscall.SIGKILL); err != nil {
		return row, plan, fmt.Errorf("kill %s (pid %d): %w", server, victim.Pid, err)
	}
	var dead, restarted, listed, scraped time.Duration
	deadline := kill + r.o.Timeout
	for {
		now := load.now()
		if dead == 0 && gone(victim.Pid) {
			dead = max(now, kill+1)
			load.countFrom(dead)
		}
		// Scrape the kernel, which shares a CPU with the stack, every
		// scrapeEvery, and only until the restart.
		if dead != 0 && restarted == 0 && now-scraped >= scrapeEvery {
			scraped = now
			if n, up, err := kernelSays(kern.MetricsPort, server); err == nil && n > before && up {
				restarted = load.now()
			}
		}
		if dead != 0 && listed == 0 {
			if st, err := kernel.ReadStatus(state); err == nil {
				if p, ok := procNamed(st, server); ok && p.Pid > 0 && p.Pid != victim.Pid && p.Alive && p.Ready {
					listed = load.now()
				}
			}
		}
		_, recovered := load.firstSuccess()
		if restarted != 0 && listed != 0 && recovered || now >= deadline {
			break
		}
		if err := sleepCtx(ctx, time.Millisecond); err != nil {
			return row, plan, err
		}
	}
	if restarted != 0 {
		row.RestartMS = msPtr(restarted - kill)
	}
	if listed != 0 {
		row.StatusMS = msPtr(listed - kill)
	}
	if dead != 0 {
		row.DeadMS = ms(dead - kill)
	}
	// Keep the load on a while after recovery: a connection may die late.
	if _, ok := load.firstSuccess(); ok {
		if err := sleepCtx(ctx, r.o.Settle); err != nil {
			return row, plan, err
		}
	}
	end := load.now()
	recs := load.stop()
	stopped = true
	w := summarize(recs, kill, dead, end)
	row.Requests, row.OK, row.FailedRequests, row.ConnectionsReset = w.requests, w.ok, w.failed, w.lost
	row.BaselineOK, row.BaselineFailed = w.baselineOK, w.baselineFailed
	row.WindowMS = ms(end - kill)
	if w.recovered != 0 {
		row.RecoveredMS = msPtr(w.recovered - kill)
	}
	for k, n := range w.failures {
		if n > 0 {
			if row.Failures == nil {
				row.Failures = map[string]int64{}
			}
			row.Failures[outcome(k).String()] = n
		}
	}
	if st, err := kernel.ReadStatus(state); err == nil {
		for _, p := range st.Processes {
			switch {
			case p.Name == server:
				row.Restarts = p.Restarts
			case p.Restarts > 0 || !p.Alive:
				row.OtherRestarts = append(row.OtherRestarts, fmt.Sprintf("%s (restarts %d, alive %v)", p.Name, p.Restarts, p.Alive))
			}
		}
	}
	row.ShmFilesAfter = len(runShmFiles(run))

	// Stop the run as `newtsim down` does, and count what it left before
	// the launcher's clean-up (h.Stop, deferred) sweeps it away.
	syscall.Kill(h.State.KernelPid, syscall.SIGTERM)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	h.Wait(wctx)
	cancel()
	grace := time.Now().Add(time.Second)
	for len(launch.RunProcesses(run)) > 0 && time.Now().Before(grace) {
		time.Sleep(10 * time.Millisecond)
	}
	row.LeakedProcesses, row.LeakedShmFiles = len(launch.RunProcesses(run)), len(runShmFiles(run))
	return row, plan, nil
}

// window is what the load saw around a kill.
type window struct {
	requests, ok, failed       int64 // requests ending at or after the kill
	lost                       int64 // established connections that died in the window
	failures                   [numOutcomes]int64
	baselineOK, baselineFailed int64 // requests that ended before the kill
	// recovered is the end of the first success among the requests
	// started at or after dead; 0: none.
	recovered time.Duration
}

// summarize accounts for the requests of a row: kill is when the process
// was killed, dead when it was seen gone (0: never), end when the window
// closed. Offsets are from the load's start.
func summarize(recs []reqRecord, kill, dead, end time.Duration) window {
	var w window
	for _, r := range recs {
		if r.end > end {
			continue
		}
		if r.end < kill {
			if r.out == outOK {
				w.baselineOK++
			} else {
				w.baselineFailed++
			}
			continue
		}
		w.requests++
		w.failures[r.out]++
		if r.out != outOK {
			w.failed++
			if r.established && r.out.lost() {
				w.lost++
			}
			continue
		}
		w.ok++
		if dead != 0 && r.start >= dead && (w.recovered == 0 || r.end < w.recovered) {
			w.recovered = r.end
		}
	}
	w.failures[outOK] = 0
	return w
}

// judge records the targets for every row: restart under 100 ms, a new
// request served within 1 s, nothing left behind, and for a server below
// tcp no request failed and no connection lost.
func (r *FaultReport) judge() {
	for _, row := range r.Rows {
		name := row.Backend + "/" + row.Server + ": "
		r.Checks = append(r.Checks,
			Check{Name: name + "restart_ms", Value: orNever(row.RestartMS), Target: fmt.Sprintf("< %d", TargetRestart.Milliseconds()),
				Met: row.RestartMS != nil && *row.RestartMS < ms(TargetRestart)},
			Check{Name: name + "recovered_ms", Value: orNever(row.RecoveredMS), Target: fmt.Sprintf("< %d", TargetRecovered.Milliseconds()),
				Met: row.RecoveredMS != nil && *row.RecoveredMS < ms(TargetRecovered)})
		if slices.Contains(belowTCP, row.Server) {
			r.Checks = append(r.Checks,
				Check{Name: name + "failed_requests", Value: float64(row.FailedRequests), Target: "== 0", Met: row.FailedRequests == 0},
				Check{Name: name + "connections_reset", Value: float64(row.ConnectionsReset), Target: "== 0", Met: row.ConnectionsReset == 0})
		}
		r.Checks = append(r.Checks,
			Check{Name: name + "leaked_processes", Value: float64(row.LeakedProcesses), Target: "== 0", Met: row.LeakedProcesses == 0},
			Check{Name: name + "leaked_shm_files", Value: float64(row.LeakedShmFiles), Target: "== 0", Met: row.LeakedShmFiles == 0})
		if row.BaselineFailed > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s/%s: %d requests failed before the kill", row.Backend, row.Server, row.BaselineFailed))
		}
		if row.RestartMS == nil {
			r.Notes = append(r.Notes, fmt.Sprintf("%s/%s: not running and registered again within %.0f ms of the kill",
				row.Backend, row.Server, row.WindowMS))
		}
		if row.RecoveredMS == nil {
			r.Notes = append(r.Notes, fmt.Sprintf("%s/%s: no new request succeeded within %.0f ms of the kill",
				row.Backend, row.Server, row.WindowMS))
		}
		if len(row.OtherRestarts) > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s/%s: other processes died in the window: %s", row.Backend, row.Server,
				strings.Join(row.OtherRestarts, ", ")))
		}
		if row.ShmFilesAfter > row.ShmFilesBefore {
			r.Notes = append(r.Notes, fmt.Sprintf("%s/%s: the run's /dev/shm files grew from %d before the kill to %d at the end of the window",
				row.Backend, row.Server, row.ShmFilesBefore, row.ShmFilesAfter))
		}
		if row.Restarts > 1 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s/%s: restarted %d times in the window", row.Backend, row.Server, row.Restarts))
		}
	}
}

// Table prints the report as Markdown.
func (r *FaultReport) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# newtsim bench %s: crash under load\n\n", r.Bench)
	fmt.Fprintf(&b, "- command: `%s`\n- when: %s\n- %s\n- load average: %s\n- core plan: %s\n- client: %s\n",
		r.Command, r.Time.Format(time.RFC3339), r.Machine.String(), r.LoadAverage, r.CorePlan, r.Client)
	fmt.Fprintf(&b, "- each row: a run of its own; %.0f ms of load, SIGKILL to the server, up to %.0f ms for it to be "+
		"registered again and a new request to succeed, then %.0f ms more load; then the run is stopped (SIGTERM to "+
		"the kernel) and what it left is counted after a grace second\n\n", r.WarmupMS, r.TimeoutMS, r.SettleMS)
	b.WriteString("| backend | server | restart ms | status ms | recovered ms | failed requests | connections reset | leaked processes | leaked shm files | requests in window | failures |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, row := range r.Rows {
		var fs []string
		for _, k := range outcomeNames[1:] {
			if n := row.Failures[k]; n > 0 {
				fs = append(fs, fmt.Sprintf("%s %d", k, n))
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d | %d | %d | %d | %d | %s |\n", row.Backend, row.Server,
			fmtMS(row.RestartMS), fmtMS(row.StatusMS), fmtMS(row.RecoveredMS), row.FailedRequests, row.ConnectionsReset,
			row.LeakedProcesses, row.LeakedShmFiles, row.Requests, strings.Join(fs, ", "))
	}
	fmt.Fprintf(&b, "\n- restart ms: kill to the kernel's metrics showing the process restarted and up (registered); "+
		"status ms: kill to the kernel's status file showing it under a new pid, registered (the kernel rewrites "+
		"the file after the registration); recovered ms: kill to the end of the first successful request among those started after the process was "+
		"seen gone; never: not within the window\n- targets: restart < %d ms, recovered < %d ms, no request failed and "+
		"no connection lost when a server below tcp (%s) restarts, nothing left behind\n\n",
		TargetRestart.Milliseconds(), TargetRecovered.Milliseconds(), strings.Join(belowTCP, ", "))
	met := 0
	for _, c := range r.Checks {
		if c.Met {
			met++
		}
	}
	fmt.Fprintf(&b, "%d of %d checks met\n\n", met, len(r.Checks))
	writeChecks(&b, "check ", "note: ", r.Checks, r.Notes)
	return b.String()
}

// WriteJSON writes the report to path.
func (r *FaultReport) WriteJSON(path string) error { return atomicfile.WriteJSON(path, r) }

// scrapeEvery is how often the kernel's metrics are read while a restart
// is awaited.
const scrapeEvery = 2 * time.Millisecond

// kernelSays reads from the kernel's metrics how often it has restarted
// server and whether server is up (running and registered): one
// snapshot, taken under the kernel's lock.
func kernelSays(port int, server string) (restarts float64, up bool, err error) {
	fams, err := scrape(port)
	if err != nil {
		return 0, false, err
	}
	l := map[string]string{"server": server}
	n, ok1 := prom.Value(fams, "newtsim_kernel_restarts_total", l)
	u, ok2 := prom.Value(fams, "newtsim_kernel_server_up", l)
	if !ok1 || !ok2 {
		return 0, false, fmt.Errorf("the kernel's metrics say nothing of %s", server)
	}
	return n, u == 1, nil
}

// procNamed returns the process called name in a run's status.
func procNamed(st *kernel.Status, name string) (kernel.ProcStatus, bool) {
	for _, p := range st.Processes {
		if p.Name == name {
			return p, true
		}
	}
	return kernel.ProcStatus{}, false
}

// gone reports whether pid has ended: a zombie, or no process at all.
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command's closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// runShmFiles lists the /dev/shm files of run.
func runShmFiles(run string) []string {
	ents, _ := os.ReadDir(shm.Dir)
	var names []string
	for _, e := range ents {
		if r, ok := shm.RunOf(e.Name()); ok && r == run {
			names = append(names, e.Name())
		}
	}
	return names
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func msPtr(d time.Duration) *float64 {
	v := ms(d)
	return &v
}

// orNever is a check's value for a time that may never have come: -1
// for never (JSON has no infinity).
func orNever(v *float64) float64 {
	if v == nil {
		return -1
	}
	return *v
}

func fmtMS(v *float64) string {
	if v == nil {
		return "never"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}

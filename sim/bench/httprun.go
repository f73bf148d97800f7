package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/loadgen"
	"github.com/newtsim/newtsim/apps/ready"
	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/internal/procstat"
	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/internal/spawn"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/bench/probe"
	"github.com/newtsim/newtsim/sim/host"
	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/machine"
	"github.com/newtsim/newtsim/sim/netns"
	"github.com/newtsim/newtsim/sim/syscount"
	"github.com/newtsim/newtsim/sim/topology"
)

// Addresses of the veth pair between the client's namespace and the Linux
// servers' (198.18.0.0/15, the range set aside for benchmark networks).
// The remote client host's address and its wire to the simulated host.
const (
	remoteClientIP = "198.18.0.1"
	remoteWire     = "bw=10Gbit,delay=20us"
)

const (
	vethClientAddr = "198.18.1.1/24"
	vethServerAddr = "198.18.1.2/24"
	vethServerIP   = "198.18.1.2"
	// hostIP is the simulated host's address on the run's TAP.
	hostIP = "198.18.0.2"
	// httpPort is where every server listens.
	httpPort = 80
	// probeTime bounds how long the client waits for a server to listen.
	probeTime = 30 * time.Second
)

// HTTP runs `newtsim bench http`: every workload of o on every server of
// o, the client alone on the first CPU and the server side on the others.
// Each server is started once and measured under each workload in turn.
func HTTP(ctx context.Context, o HTTPOptions) (rep *HTTPReport, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	ws, ss, err := o.pick()
	if err != nil {
		return nil, err
	}
	if o.Log == nil {
		f, finish, lerr := keptLog("http")
		if lerr != nil {
			return nil, lerr
		}
		o.Log = f
		defer finish(&err)
	}
	cpus, log, done, err := prepare("http", o.CPUs, o.Log)
	if err != nil {
		return nil, err
	}
	defer done()
	dir, www, err := httpRoot("http")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	exe, err := spawn.Self()
	if err != nil {
		return nil, err
	}
	client, servers := cpus[0], cpus[1:]
	rep = &HTTPReport{Bench: "http", Command: o.Command, Time: time.Now().UTC(), Machine: machine.Detect(),
		Connections: o.Connections, DurationS: o.Duration.Seconds(), WarmupS: o.Warmup.Seconds(), TimeoutS: o.Timeout.Seconds(),
		Workloads: ws, Servers: ss,
		CorePlan: fmt.Sprintf("%d CPUs: the client alone on CPU %d (pinned; it blocks in poll(2)), the server side on CPU %s: "+
			"the simulated host's kernel, servers and httpd as the derived plan puts them (the plan's application core "+
			"is the client's), or httpd-linux, httpd-monolith or lighttpd pinned there. Linux's own network work (the client's TCP, "+
			"the veth and TAP softirqs, and for httpd-linux and lighttpd their TCP) runs on the CPU that raises it, so "+
			"client and server side share the machine through the kernel; the talk's client machines were other machines",
			len(cpus), client, cpu.FormatList(servers)),
		Client: fmt.Sprintf("the loadgen package on Linux's sockets (newtsim bench http-peer --mode loadgen), in a network "+
			"namespace: over a TAP to the simulated host and to httpd-monolith (%s), over a veth pair to httpd-linux and lighttpd (%s); "+
			"%d connections, each replaced after its workload's requests per connection, one request in flight on each",
			hostIP, vethServerIP, o.Connections)}
	if o.Client == ClientRemoteHost {
		rep.Client = fmt.Sprintf("for the simulated host's servers, a second simulated host (the monolithic stack in one "+
			"process, role clienthost, %s) running the loadgen package on the far end of a wire (%s) from the simulated "+
			"host's nic, as the talk's client machines; for httpd-linux, httpd-monolith and lighttpd, the loadgen package on Linux's sockets "+
			"in a network namespace over a veth pair (%s; httpd-monolith over its TAP); %d connections, each replaced after its workload's requests per "+
			"connection, one request in flight on each", remoteClientIP, remoteWire, vethServerIP, o.Connections)
	}
	if slices.ContainsFunc(ss, func(s HTTPServer) bool { return s.Kind == sideHost }) {
		// What a hop between the stack's processes costs on the server
		// side's core, before anything else runs there.
		if rep.SwitchHop, err = measureSwitchHop(servers[0], log); err != nil {
			return nil, fmt.Errorf("bench http: the switch rings: %w", err)
		}
	}
	pr := newCellProgress(o.Progress, len(ws)*len(ss))
	r := &httpRun{o: o, dir: dir, www: www, exe: exe, log: log, client: client, servers: servers, cpus: cpus}
	defer r.close()
	for _, s := range ss {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if prog := missingProgram(s); prog != "" {
			for _, w := range ws {
				rep.Rows = append(rep.Rows, HTTPRow{Workload: w.Name, Server: s.Name, NotInstalled: prog})
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: not measured, %s is not installed (Debian package %s)", s.Name, prog, prog))
			continue
		}
		side, err := r.start(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("bench http: %s: %w", s.Name, err)
		}
		for _, w := range ws {
			pr.begin(s.Name, w.Name)
			var before, dropsBefore map[string]float64
			if side.counters != nil {
				before = side.counters()
			}
			if side.state != "" {
				dropsBefore = stateDrops(side.state)
			}
			cell, err := r.cell(ctx, side, w)
			if err == nil {
				err = side.health()
			}
			if err != nil {
				side.evidence(log)
				side.stop()
				return nil, fmt.Errorf("bench http: %s, %s: %w", w.Name, s.Name, err)
			}
			if cell.Report.Requests == 0 {
				rep.Notes = append(rep.Notes, idleNote(w, s, cell.server, r.o.Duration))
				fmt.Fprintf(log, "bench http: %s on %s served no request\n", w.Name, s.Name)
				side.evidence(log)
			}
			if e := cell.Report.Errors; e.Failed()+e.Status > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s on %s: errors: connect %d, refused %d, reset %d, timeout %d, "+
					"protocol %d, eof %d, status %d", w.Name, s.Name, e.Connect, e.Refused, e.Reset, e.Timeout, e.Protocol, e.EOF, e.Status))
			}
			if side.counters != nil {
				after := side.counters()
				var moved []string
				for _, c := range hostCounters {
					if d := after[c[1]] - before[c[1]]; d != 0 {
						moved = append(moved, fmt.Sprintf("%s +%.0f", c[1], d))
					}
				}
				if len(moved) > 0 {
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s on %s, the server side's counters over the cell "+
						"(warm-up included): %s", w.Name, s.Name, strings.Join(moved, ", ")))
				}
				if len(cell.clientDrops) > 0 {
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s on %s: dropped by the client host's engines over the cell "+
						"(warm-up included): %s", w.Name, s.Name, formatDrops(cell.clientDrops)))
				}
				if side.state != "" {
					if d := dropsSince(dropsBefore, stateDrops(side.state)); len(d) > 0 {
						rep.Notes = append(rep.Notes, fmt.Sprintf("%s on %s: dropped on the simulated host over the cell "+
							"(warm-up included): %s", w.Name, s.Name, formatDrops(d)))
					}
				}
				cell.Row.Retransmits = counterDelta(before, after, retransmitsMetric)
				if cell.Row.Retransmits == nil {
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s on %s: %s could not be read; retransmits is null",
						w.Name, s.Name, retransmitsMetric))
				}
			}
			rep.Rows = append(rep.Rows, cell.Row)
			rep.Cells = append(rep.Cells, cell)
			pr.end(cell.Row)
			if o.Breakdown {
				if err := rep.httpBreakdown(ctx, side, w, cell, o.Progress); err != nil {
					side.stop()
					return nil, err
				}
			}
			if cell.Report.Requests > 0 {
				per := float64(cell.Report.BytesRead) / float64(cell.Report.Requests)
				if per < float64(w.Size) {
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s on %s: %.0f bytes read per response, less than the file's %d",
						w.Name, s.Name, per, w.Size))
				}
			}
		}
		side.stop()
	}
	pr.finish()
	rep.setSwitchFloors()
	rep.judge()
	return rep, nil
}

// missingProgram names the program a server runs that is not installed
// (lighttpd), or is "": its rows are marked not installed and the run goes
// on. Namespaces, veth pairs and their settings need no program (package
// netns).
func missingProgram(s HTTPServer) string {
	if s.Kind == sideLighttpd {
		if _, err := exec.LookPath("lighttpd"); err != nil {
			return "lighttpd"
		}
	}
	return ""
}

// httpRun is the state of one bench http: the files, the client's CPU,
// and the namespaces of the Linux servers, made when first needed.
type httpRun struct {
	o       HTTPOptions
	dir     string
	www     string
	exe     string
	log     *os.File
	client  int
	servers []int
	cpus    []int
	veth    *vethNet
}

func (r *httpRun) close() {
	if r.veth != nil {
		r.veth.close()
	}
}

// httpSide is a started server side.
type httpSide struct {
	server  HTTPServer
	ns      string // the client's namespace
	control string // the remote client host's directory of cells, when the client is one
	cells   int    // cells given to it so far
	// clientDrops are the remote client host's drop counters after its
	// last cell (they count from its start).
	clientDrops map[string]float64
	target      netip.AddrPort // the server's address, from there
	pid         int            // the server process whose system calls count
	plan        string
	stop        func()
	// health reports a server side that went wrong during a cell (a
	// server of the simulated host restarted, or the server exited).
	health func() error
	// evidence writes what may tell why a cell failed to the log.
	evidence func(w io.Writer)
	// counters reads the simulated host's counters of trouble on the
	// packet path (nil for Linux's servers), read before and after each
	// cell.
	counters func() map[string]float64
	state    string // the simulated host's state directory (its trace, for --breakdown); "" for Linux's servers
	// procs names the server side's processes, in order, for what they
	// cost (usage); nil: the one process pid, under the server's name.
	procs func() []namedPID
}

// namedPID is a server-side process.
type namedPID struct {
	name string
	pid  int
}

// procUsage is a server-side process's usage, read at one moment; ok is
// false where it could not be read (the process ended).
type procUsage struct {
	namedPID
	u  procstat.Usage
	ok bool
}

// usage reads what the server side's processes have been accounted.
func (side *httpSide) usage() []procUsage {
	procs := []namedPID{{side.server.Name, side.pid}}
	if side.procs != nil {
		procs = side.procs()
	}
	return readUsage(procs)
}

// readUsage reads what each of procs has been accounted.
func readUsage(procs []namedPID) []procUsage {
	var us []procUsage
	for _, p := range procs {
		u, err := procstat.Read(p.pid)
		us = append(us, procUsage{namedPID: p, u: u, ok: err == nil})
	}
	return us
}

// statusProcs names the processes of a run's status, but those in skip.
func statusProcs(st *kernel.Status, skip ...string) []namedPID {
	var ps []namedPID
	for _, p := range st.Processes {
		if !slices.Contains(skip, p.Name) {
			ps = append(ps, namedPID{p.Name, p.Pid})
		}
	}
	return ps
}

// usageDeltas returns what each process of after was accounted since
// before, matched by name and pid: one that restarted between the two
// readings, or could not be read, is left out.
func usageDeltas(before, after []procUsage) []procDelta {
	var ds []procDelta
	for _, a := range after {
		i := slices.IndexFunc(before, func(b procUsage) bool { return b.namedPID == a.namedPID })
		if !a.ok || i < 0 || !before[i].ok {
			continue
		}
		ds = append(ds, procDelta{a.name, a.u.Sub(before[i].u)})
	}
	return ds
}

// procDelta is what one process was accounted between two readings.
type procDelta struct {
	name string
	d    procstat.Usage
}

// setUsage fills the row's CPU time and context switches per request, and
// the cell's server usage, from two readings of the server side (a
// process that restarted between them is left out: the cell fails on its
// restart anyway).
func (c *HTTPCell) setUsage(before, after []procUsage, requests int64) {
	ds := usageDeltas(before, after)
	c.server = sumUsage(ds)
	c.Row.setCosts(ds, requests)
}

// setCosts fills the row's CPU time and context switches per request from
// the server side's processes' usage over the run, ds.
func (row *HTTPRow) setCosts(ds []procDelta, requests int64) {
	if requests <= 0 {
		return
	}
	sum := sumUsage(ds)
	var per []ProcessCost
	for _, p := range ds {
		per = append(per, ProcessCost{Name: p.name, CPUUSPerRequest: us(p.d.CPU) / float64(requests),
			SwitchesPerRequest: float64(p.d.Switches) / float64(requests)})
	}
	row.ServerCPUUSPerRequest = us(sum.CPU) / float64(requests)
	row.SwitchesPerRequest = float64(sum.Switches) / float64(requests)
	if len(per) > 1 {
		row.Processes = per
	}
}

// sumUsage is the processes' usage ds together.
func sumUsage(ds []procDelta) procstat.Usage {
	var sum procstat.Usage
	for _, p := range ds {
		sum = sum.Add(p.d)
	}
	return sum
}

// idleNote says why a cell that served no request may have: what its
// server side ran and waited for a CPU over the measured run. A side
// starved of its CPU (another load pinned there) waited about as long as
// the run; one stalled in itself (a lost wake-up, a wedged connection)
// neither ran nor waited.
func idleNote(w HTTPWorkload, s HTTPServer, used procstat.Usage, run time.Duration) string {
	return fmt.Sprintf("%s on %s served no request: over the measured %v its server side ran %v on a CPU and waited "+
		"%v for one, runnable, in %d threads (waiting about as long as the run: starved of its CPU; neither: stalled "+
		"in itself); its state is in the log", w.Name, s.Name, run, used.CPU.Round(time.Millisecond),
		used.Wait.Round(time.Millisecond), used.Threads)
}

// hostCounters are the counters of trouble on the simulated host's packet
// path that a cell reports when they move: server, metric, labels.
// httpd-monolith's host exports the tcp engine's under the same names.
var hostCounters = [][3]string{
	{"tcp", retransmitsMetric, ""},
	{"tcp", "newtsim_tcp_rto_expiries_total", ""},
	{"tcp", "newtsim_tcp_spurious_rtos_total", ""},
	{"tcp", "newtsim_tcp_dsacks_received_total", ""},
	{"tcp", "newtsim_tcp_dsack_undos_total", ""},
	{"ip", "newtsim_ip_no_buffer_total", ""},
}

// retransmitsMetric is the tcp engine's retransmitted segments, a row's
// retransmits.
const retransmitsMetric = "newtsim_tcp_retransmitted_segments_total"

// counterDelta is how far a counter moved between two reads, nil where
// either read failed (metricValue's -1).
func counterDelta(before, after map[string]float64, metric string) *int64 {
	b, okb := before[metric]
	a, oka := after[metric]
	if !okb || !oka || b < 0 || a < 0 {
		return nil
	}
	d := int64(a - b)
	return &d
}

// start starts a server side.
func (r *httpRun) start(ctx context.Context, s HTTPServer) (*httpSide, error) {
	switch s.Kind {
	case sideHost:
		return r.startHost(ctx, s)
	case sideMonolith:
		return r.startMonolith(ctx, s)
	}
	if r.veth == nil {
		v, err := newVethNet()
		if err != nil {
			return nil, err
		}
		r.veth = v
	}
	var name string
	var args []string
	switch s.Kind {
	case sideLinux:
		name, args = r.exe, []string{"bench", "http-peer", "--mode", "httpd",
			"--addr", fmt.Sprintf("%s:%d", vethServerIP, httpPort), "--dir", r.www}
	case sideLighttpd:
		conf, err := r.lighttpdConf()
		if err != nil {
			return nil, err
		}
		name, args = "lighttpd", []string{"-D", "-f", conf}
	default:
		return nil, fmt.Errorf("unknown server kind %q", s.Kind)
	}
	fmt.Fprintf(r.log, "bench http: starting %s in namespace %s: %s %s\n", s.Name, r.veth.srv.Name, name, strings.Join(args, " "))
	cmd, err := spawn.Start(spawn.Spec{Path: name, Args: args, NetNS: r.veth.srv.Path(),
		Cores: r.servers, Stdout: r.log, Stderr: r.log, DeathSignal: syscall.SIGKILL})
	if err != nil {
		return nil, err
	}
	exited, stop := stoppable(cmd)
	// Wait until it listens, so that no cell counts its start.
	deadline := time.Now().Add(probeTime)
	for {
		if ok, _ := r.veth.srv.Listening(netip.AddrPortFrom(netip.MustParseAddr(vethServerIP), httpPort)); ok {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("%s exited before it listened: %v", s.Name, err)
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s did not listen on %s:%d within %v", s.Name, vethServerIP, httpPort, probeTime)
		}
	}
	return &httpSide{server: s, ns: r.veth.cli.Name, target: netip.AddrPortFrom(netip.MustParseAddr(vethServerIP), httpPort),
		pid: cmd.Process.Pid, stop: stop,
		plan: fmt.Sprintf("linux/%dcpu: %d=client %s=%s", len(r.cpus), r.client, cpu.FormatList(r.servers), s.Name),
		health: func() error {
			select {
			case err := <-exited:
				exited <- err
				return fmt.Errorf("%s exited during the cell: %v", s.Name, err)
			default:
				return nil
			}
		},
		evidence: func(w io.Writer) {
			out, _ := r.veth.srv.Run("ss", "-tni")
			fmt.Fprintf(w, "bench http: %s failed; its namespace's sockets:\n%s\n", s.Name, out)
		}}, nil
}

// lighttpdConf writes lighttpd's configuration: the same files, on the
// veth pair's server address, one process (server.max-worker is left at
// its default, 0: no worker processes), no access log.
func (r *httpRun) lighttpdConf() (string, error) {
	path := filepath.Join(r.dir, "lighttpd.conf")
	conf := fmt.Sprintf(`# newtsim bench http: lighttpd serving the benchmark's files, one process.
server.document-root = %q
server.bind = %q
server.port = %d
server.errorlog = %q
server.max-connections = 1024
mimetype.assign = (".txt" => "text/plain; charset=utf-8", ".bin" => "application/octet-stream")
`, r.www, vethServerIP, httpPort, filepath.Join(r.dir, "lighttpd-error.log"))
	return path, os.WriteFile(path, []byte(conf), 0o644)
}

// startHost starts a run of the simulated host with httpd on the backend
// and transport s names, its nic on a TAP in the run's namespace.
func (r *httpRun) startHost(ctx context.Context, s HTTPServer) (*httpSide, error) {
	t := topology.Default()
	t.Name, t.Transport = "bench-http", s.Transport
	listening := filepath.Join(r.dir, "listening-"+s.Name)
	t.Processes = append(t.Processes, topology.Process{Name: "web", Role: "httpd", Args: []string{
		"--backend", s.Backend, "--addr", fmt.Sprintf("0.0.0.0:%d", httpPort), "--dir", r.www, "--ready", listening}})
	t.Links = append(t.Links, topology.Link{A: "web", B: "syscall"})
	if s.Backend != "message" {
		t.Links = append(t.Links, topology.Link{A: "web", B: "tcp"})
	}
	nic, control := "tap", ""
	if r.o.Client == ClientRemoteHost {
		// The client machine: a monolithic host on a wire from the nic,
		// pinned to the client's CPU, running the cells it is given. It
		// blocks rather than spins: its host loop and its load generator
		// are goroutines of the same process, on one CPU.
		nic = ""
		control = filepath.Join(r.dir, "control-"+s.Name)
		if err := os.MkdirAll(control, 0o755); err != nil {
			return nil, err
		}
		for i := range t.Processes {
			if t.Processes[i].Name == "nic" {
				t.Processes[i].Args = []string{"--backend", "wire", "--wire-peer", "client", "--link", remoteWire}
			}
		}
		t.Processes = append(t.Processes, topology.Process{Name: "client", Role: "clienthost", Cores: []int{r.client}, Wait: "block",
			Args: []string{"--addr", remoteClientIP + "/24", "--wire-peer", "nic", "--target",
				netip.AddrPortFrom(netip.MustParseAddr(hostIP), httpPort).String(), "--control", control}})
		t.Links = append(t.Links, topology.Link{A: "nic", B: "client"})
	}
	state := filepath.Join(r.dir, "state")
	h, err := launch.Start(ctx, launch.Options{StateDir: state, Topology: t, CPUs: r.cpus, Log: r.log, NIC: nic, Trace: r.o.Breakdown,
		NoTSO: r.o.NoTSO})
	if err != nil {
		return nil, err
	}
	// Wait until it listens, so that no cell counts its start.
	if _, err := ready.Await(listening, probeTime); err != nil {
		h.Stop()
		return nil, fmt.Errorf("httpd on the simulated host: %w", err)
	}
	proc := func(name string) (kernel.ProcStatus, bool) {
		st, err := kernel.ReadStatus(state)
		if err != nil {
			return kernel.ProcStatus{}, false
		}
		for _, p := range st.Processes {
			if p.Name == name {
				return p, true
			}
		}
		return kernel.ProcStatus{}, false
	}
	web, ok := proc("web")
	if !ok {
		h.Stop()
		return nil, errors.New("no web process in the run's status")
	}
	ns := ""
	if h.NS != nil {
		if err := tuneClientNS(h.NS); err != nil {
			h.Stop()
			return nil, err
		}
		ns = h.NS.Name
	}
	plan := strings.Replace(h.Plan.Summary(), "=app[poll]", "=client", 1)
	return &httpSide{server: s, ns: ns, control: control, target: netip.AddrPortFrom(netip.MustParseAddr(hostIP), httpPort),
		pid: web.Pid, plan: plan, stop: func() { h.Stop() }, state: state,
		procs: func() []namedPID {
			st, err := kernel.ReadStatus(state)
			if err != nil {
				return nil
			}
			return statusProcs(st)
		},
		health: func() error {
			st, err := kernel.ReadStatus(state)
			if err != nil {
				return err
			}
			var bad []string
			for _, p := range st.Processes {
				if p.Restarts > 0 || !p.Alive {
					bad = append(bad, fmt.Sprintf("%s (alive %v, restarts %d)", p.Name, p.Alive, p.Restarts))
				}
			}
			if len(bad) > 0 {
				return fmt.Errorf("the simulated host's processes died: %s", strings.Join(bad, ", "))
			}
			return nil
		},
		counters: func() map[string]float64 {
			m := map[string]float64{}
			st, err := kernel.ReadStatus(state) // once: it names every server's port
			if err != nil {
				return m
			}
			fams := map[string]map[string]*dto.MetricFamily{} // by server: one scrape each
			for _, c := range hostCounters {
				f, seen := fams[c[0]]
				if !seen {
					i := slices.IndexFunc(st.Processes, func(p kernel.ProcStatus) bool { return p.Name == c[0] })
					if i < 0 {
						continue
					}
					f = scrapeRetried(st.Processes[i].MetricsPort)
					fams[c[0]] = f
				}
				m[c[1]] = metricValue(f, c[1])
			}
			return m
		},
		evidence: func(w io.Writer) {
			// The tcp server logs its connection table on SIGUSR1; its
			// metrics and httpd's say what the stack and the server saw.
			if p, ok := proc("tcp"); ok {
				fmt.Fprintf(w, "bench http: %s failed; tcp's connection table (SIGUSR1) follows\n", s.Name)
				syscall.Kill(p.Pid, syscall.SIGUSR1)
				time.Sleep(300 * time.Millisecond)
			}
			for _, name := range []string{"tcp", "web", "syscall"} {
				if p, ok := proc(name); ok {
					fmt.Fprintf(w, "bench http: %s's metrics:\n%s\n", name, scrapeNewtsim(p.MetricsPort))
				}
			}
		}}, nil
}

// startMonolith starts httpd-monolith: httpd on a monolithic host (the
// engines in one process, sim/host), pinned to the server CPUs, attached
// to a TAP device in a namespace made for it, where Linux (and the client)
// is launch.LinuxAddr and the host hostIP, as in a tap run of the
// simulated host. The namespace is not named as a run's (newtsim-RUN), so
// that no launcher's clean-up takes it for a dead run's.
func (r *httpRun) startMonolith(ctx context.Context, s HTTPServer) (*httpSide, error) {
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	tapName := "ntsmono" + id
	ns, err := netns.Create("ntsmono-" + id)
	if err != nil {
		return nil, err
	}
	if err := ns.AddTap(tapName, launch.LinuxAddr); err != nil {
		ns.Close()
		return nil, err
	}
	if err := tuneClientNS(ns); err != nil {
		ns.Close()
		return nil, err
	}
	note := filepath.Join(r.dir, "listening-"+s.Name)
	args := []string{"bench", "http-peer", "--mode", "monolith", "--host", hostIP + "/24", "--ifname", tapName,
		"--netns", "/var/run/netns/" + ns.Name, "--addr", fmt.Sprintf("0.0.0.0:%d", httpPort), "--dir", r.www, "--ready", note,
		"--no-tso=" + strconv.FormatBool(r.o.NoTSO)}
	fmt.Fprintf(r.log, "bench http: starting %s: %s %s\n", s.Name, r.exe, strings.Join(args, " "))
	cmd, err := spawn.Start(spawn.Spec{Path: r.exe, Args: args, Cores: r.servers, Stdout: r.log, Stderr: r.log,
		DeathSignal: syscall.SIGKILL})
	if err != nil {
		ns.Close()
		return nil, err
	}
	exited, end := stoppable(cmd)
	stop := func() {
		end()
		ns.Close()
	}
	failed := make(chan error, 1)
	go func() {
		err := <-exited
		exited <- err
		failed <- err
	}()
	// Wait until it listens, so that no cell counts its start.
	var n probe.MonolithNote
	if err := awaitJSON(note, probeTime, failed, &n); err != nil {
		stop()
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	return &httpSide{server: s, ns: ns.Name, target: netip.AddrPortFrom(netip.MustParseAddr(hostIP), n.Port),
		pid: cmd.Process.Pid, stop: stop,
		plan: fmt.Sprintf("monolith/%dcpu: %d=client %s=%s", len(r.cpus), r.client, cpu.FormatList(r.servers), s.Name),
		health: func() error {
			select {
			case err := <-exited:
				exited <- err
				return fmt.Errorf("%s exited during the cell: %v", s.Name, err)
			default:
				return nil
			}
		},
		counters: func() map[string]float64 {
			m := map[string]float64{}
			f := scrapeRetried(n.MetricsPort)
			for _, c := range hostCounters {
				m[c[1]] = metricValue(f, c[1])
			}
			return m
		},
		evidence: func(w io.Writer) {
			// The process logs its goroutines and its host's drops,
			// connections and timers on SIGUSR1 (probe.stateOnSignal).
			fmt.Fprintf(w, "bench http: %s failed; its goroutines and its host's state (SIGUSR1) follow\n", s.Name)
			cmd.Process.Signal(syscall.SIGUSR1)
			time.Sleep(300 * time.Millisecond)
			fmt.Fprintf(w, "bench http: %s's metrics:\n%s\n", s.Name, scrapeNewtsim(n.MetricsPort))
		}}, nil
}

// scrape reads a process's metrics, giving up after two seconds.
func scrape(port int) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return prom.Scrape(ctx, prom.LocalURL(port))
}

// scrapeNewtsim returns the newtsim_* metrics of a process, as text.
func scrapeNewtsim(port int) string {
	fams, err := scrape(port)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	if err := prom.WriteText(&b, fams, prom.Namespace+"_"); err != nil {
		return err.Error()
	}
	return b.String()
}

// scrapeRetried reads a process's metrics, trying three times (a loaded
// machine may leave a live process unanswered for longer than one
// scrape's two seconds); nil when every try failed.
func scrapeRetried(port int) map[string]*dto.MetricFamily {
	for range 3 {
		if fams, err := scrape(port); err == nil {
			return fams
		}
	}
	return nil
}

// metricValue is a metric's value in fams, -1 where it is not there (or
// the scrape failed: fams nil).
func metricValue(fams map[string]*dto.MetricFamily, metric string) float64 {
	if v, ok := prom.Value(fams, metric, nil); ok {
		return v
	}
	return -1
}

// tuneClientNS lets the client reuse its ports quickly, as a load
// generator's machine would be set up: it closes first, so its side holds
// TIME-WAIT. Both settings belong to the namespace.
func tuneClientNS(ns *netns.NS) error {
	for _, kv := range [][2]string{{"net.ipv4.ip_local_port_range", "1024 65535"}, {"net.ipv4.tcp_tw_reuse", "1"}} {
		if err := ns.Sysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// vethNet is two namespaces joined by a veth pair: the client's and the
// Linux servers'.
type vethNet struct {
	cli, srv *netns.NS
}

func newVethNet() (*vethNet, error) {
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	v := &vethNet{}
	var err error
	if v.cli, err = netns.Create("ntshttpc-" + id); err != nil {
		return nil, err
	}
	if v.srv, err = netns.Create("ntshttps-" + id); err != nil {
		v.close()
		return nil, err
	}
	cif, sif := "ntshc"+id, "ntshs"+id
	if err := netns.VethPair(cif, sif); err != nil {
		v.close()
		return nil, err
	}
	if err := v.cli.Adopt(cif, vethClientAddr); err != nil {
		netns.DeleteLink(cif)
		v.close()
		return nil, err
	}
	if err := v.srv.Adopt(sif, vethServerAddr); err != nil {
		v.close()
		netns.DeleteLink(sif)
		return nil, err
	}
	if err := tuneClientNS(v.cli); err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

// close deletes both namespaces, and the veth pair with them.
func (v *vethNet) close() {
	if v.cli != nil {
		v.cli.Close()
	}
	if v.srv != nil {
		v.srv.Close()
	}
}

// cell runs the client against a started server side under one workload
// and counts the server process's system calls over the measured run.
func (r *httpRun) cell(ctx context.Context, side *httpSide, w HTTPWorkload) (HTTPCell, error) {
	if side.control != "" {
		return r.remoteCell(ctx, side, w)
	}
	name := side.server.Name + "-" + w.Name
	cfgPath, out := filepath.Join(r.dir, name+".client.json"), filepath.Join(r.dir, name+".result.json")
	rpc := w.RequestsPerConn
	c := probe.HTTPClientConfig{Target: side.target.String(), Path: w.Path(), Connections: r.o.Connections,
		RequestsPerConn: rpc, Warmup: r.o.Warmup, Duration: r.o.Duration, Timeout: r.o.Timeout, Probe: probeTime, Out: out}
	if r.o.Breakdown && side.state != "" {
		// The client stamps its requests and responses for the breakdown
		// (breakdown.go), as messages to and from the nic.
		slot, err := processSlot(side.state, "nic")
		if err != nil {
			return HTTPCell{}, err
		}
		c.TracePeer = slot
	}
	if err := atomicfile.WriteJSON(cfgPath, c); err != nil {
		return HTTPCell{}, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return HTTPCell{}, err
	}
	defer pr.Close()
	cmd, err := spawn.Start(spawn.Spec{Path: r.exe, Args: []string{"bench", "http-peer",
		"--mode", "loadgen", "--config", cfgPath}, NetNS: filepath.Join(netns.Dir, side.ns), Cores: []int{r.client}, Stdout: pw, Stderr: r.log, DeathSignal: syscall.SIGKILL})
	pw.Close()
	if err != nil {
		return HTTPCell{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	}()
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	await := func(want string, timeout time.Duration) error {
		return awaitLine(ctx, lines, exited, want, timeout, r.log)
	}
	if err := await(probe.HTTPMeasureLine, probeTime+r.o.Warmup+r.o.Timeout+30*time.Second); err != nil {
		return HTTPCell{}, err
	}
	// Count the server's system calls over the measured run: every thread
	// of the process, opened now that the warm-up has started them.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ctr, err := syscount.OpenThreads(side.pid)
	if err != nil {
		return HTTPCell{}, fmt.Errorf("counting %s's system calls: %w", side.server.Name, err)
	}
	defer ctr.Close()
	if err := ctr.Start(); err != nil {
		return HTTPCell{}, err
	}
	before := side.usage()
	if err := await(probe.HTTPDoneLine, r.o.Duration+r.o.Timeout+30*time.Second); err != nil {
		return HTTPCell{}, err
	}
	n, err := ctr.Stop()
	if err != nil {
		return HTTPCell{}, err
	}
	after := side.usage()
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			return HTTPCell{}, fmt.Errorf("the client: %v", err)
		}
	case <-time.After(10 * time.Second):
		return HTTPCell{}, errors.New("the client did not exit after its run")
	}
	var res probe.HTTPClientResult
	if err := awaitJSON(out, 5*time.Second, nil, &res); err != nil {
		return HTTPCell{}, err
	}
	if res.Error != "" {
		return HTTPCell{}, fmt.Errorf("the client: %s", res.Error)
	}
	cell := side.row(w, res.Report, res.Warmup, n, len(ctr.Threads()))
	cell.clientTrace = res.Trace
	cell.setUsage(before, after, res.Report.Requests)
	return cell, nil
}

// awaitLine waits for the client to print want, passing the lines before
// it to log. A client that ends first fails it with its exit status, which
// stays in exited for whoever waits on the client next (the cell's clean-up
// waits there: taking it would leave that wait for ever).
func awaitLine(ctx context.Context, lines <-chan string, exited chan error, want string, timeout time.Duration, log io.Writer) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				err := <-exited
				exited <- err
				return fmt.Errorf("the client ended before it said %q: %v", want, err)
			}
			if l == want {
				return nil
			}
			fmt.Fprintf(log, "client: %s\n", l)
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("the client did not say %q within %v", want, timeout)
		}
	}
}

// row makes a cell's row from the client's report and the server's
// system calls.
func (side *httpSide) row(w HTTPWorkload, rp, warm loadgen.Report, n uint64, threads int) HTTPCell {
	row := HTTPRow{Workload: w.Name, Server: side.server.Name, ReqPerS: rp.RequestsPerSec, MeanUS: us(rp.Latency.Mean),
		P50US: us(rp.Latency.P50), P99US: us(rp.Latency.P99), Errors: rp.Errors.Failed() + rp.Errors.Status, CorePlan: side.plan}
	if rp.Requests > 0 {
		row.LinuxSyscallsPerRequest = float64(n) / float64(rp.Requests)
	}
	return HTTPCell{Row: row, URL: fmt.Sprintf("http://%s%s", side.target, w.Path()), Report: rp, Warmup: warm,
		Syscalls: n, Threads: threads}
}

// remoteCell runs a cell from the remote client host: it writes the cell,
// counts the server's system calls from the host's measuring marker to its
// result.
func (r *httpRun) remoteCell(ctx context.Context, side *httpSide, w HTTPWorkload) (HTTPCell, error) {
	side.cells++
	n := side.cells
	cell := host.ClientCell{Path: w.Path(), Connections: r.o.Connections, RequestsPerConn: w.RequestsPerConn,
		Warmup: r.o.Warmup, Duration: r.o.Duration, Timeout: r.o.Timeout}
	if err := atomicfile.WriteJSON(host.CellPath(side.control, n, ".json"), cell); err != nil {
		return HTTPCell{}, err
	}
	wait := func(path string, timeout time.Duration) error {
		deadline := time.Now().Add(timeout)
		for {
			if _, err := os.Stat(path); err == nil {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the client host wrote no %s within %v", filepath.Base(path), timeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := wait(host.CellPath(side.control, n, ".measure"), probeTime+r.o.Warmup+r.o.Timeout+30*time.Second); err != nil {
		return HTTPCell{}, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ctr, err := syscount.OpenThreads(side.pid)
	if err != nil {
		return HTTPCell{}, fmt.Errorf("counting %s's system calls: %w", side.server.Name, err)
	}
	defer ctr.Close()
	if err := ctr.Start(); err != nil {
		return HTTPCell{}, err
	}
	before := side.usage()
	if err := wait(host.CellPath(side.control, n, ".result.json"), r.o.Duration+r.o.Timeout+30*time.Second); err != nil {
		return HTTPCell{}, err
	}
	calls, err := ctr.Stop()
	if err != nil {
		return HTTPCell{}, err
	}
	after := side.usage()
	var res host.ClientResult
	if err := awaitJSON(host.CellPath(side.control, n, ".result.json"), 5*time.Second, nil, &res); err != nil {
		return HTTPCell{}, err
	}
	if res.Error != "" {
		return HTTPCell{}, fmt.Errorf("the client host: %s", res.Error)
	}
	c := side.row(w, res.Report, res.Warmup, calls, len(ctr.Threads()))
	c.setUsage(before, after, res.Report.Requests)
	drops := map[string]float64{}
	for k, n := range res.Drops {
		drops[k] = float64(n)
	}
	c.clientDrops, side.clientDrops = dropsSince(side.clientDrops, drops), drops
	return c, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// cellProgress shows the cells as they run: a bar on a terminal, redrawn
// as each cell starts, and a line per cell measured.
type cellProgress struct {
	w           io.Writer
	tty         bool
	total, done int
	start       time.Time
}

func newCellProgress(w io.Writer, total int) *cellProgress {
	return &cellProgress{w: w, tty: isTTY(w), total: total, start: time.Now()}
}

func (p *cellProgress) begin(server, workload string) {
	if p.w == nil || !p.tty {
		return
	}
	const width = 30
	fill := width * p.done / max(p.total, 1)
	fmt.Fprintf(p.w, "\r\x1b[K[%s%s] %d/%d cells, %s: %s on %s ...", strings.Repeat("#", fill), strings.Repeat(".", width-fill),
		p.done, p.total, time.Since(p.start).Round(time.Second), workload, server)
}

func (p *cellProgress) end(row HTTPRow) {
	p.done++
	if p.w == nil {
		return
	}
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	fmt.Fprintf(p.w, "  [%2d/%d] %-11s %-21s %10.0f req/s  p50 %8.0f us  p99 %8.0f us  errors %d  syscalls/request %.3f\n",
		p.done, p.total, row.Workload, row.Server, row.ReqPerS, row.P50US, row.P99US, row.Errors, row.LinuxSyscallsPerRequest)
}

func (p *cellProgress) finish() {
	if p.w != nil && p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// isTTY reports whether w is a file open on a terminal.
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// stoppable waits for a started server process in the background. exited
// gives its end (a reader that only looks puts it back, so that the next
// one sees it too); stop ends it as a user would: SIGTERM, then SIGKILL
// after 5 s.
func stoppable(cmd *exec.Cmd) (exited chan error, stop func()) {
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return exited, func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
}

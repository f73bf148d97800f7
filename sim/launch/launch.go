// Package launch starts and stops a newtsim topology: `newtsim up` runs the
// kernel process in the foreground (which starts every server), `newtsim
// down` stops a run from another terminal, and both clean up what an earlier
// run left behind, even one whose launcher or kernel was killed.
package launch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/internal/sandbox"
	"github.com/newtsim/newtsim/internal/spawn"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/coreplan"
	"github.com/newtsim/newtsim/sim/netns"
	"github.com/newtsim/newtsim/sim/topology"
)

// DefaultStateDir is where a run's state lives unless told otherwise.
const DefaultStateDir = "/run/newtsim"

// StateFile records the running kernel, so `down` and the next `up` can
// find it.
const StateFile = "state.json"

// SpecFile is the kernel's Spec for the run: every process resolved, which
// the kernel process reads at its start.
const SpecFile = "spec.json"

// State is what state.json says.
type State struct {
	Run        string    `json:"run"`
	KernelPid  int       `json:"kernel_pid"`
	LauncherID int       `json:"launcher_pid"`
	Started    time.Time `json:"started"`
	Topology   string    `json:"topology"`
	Plan       string    `json:"core_plan"`
}

// Options configure Up.
type Options struct {
	StateDir string
	Topology *topology.Topology
	CPUs     []int     // the CPUs to plan for; nil: every online CPU
	Out      io.Writer // where the plan and process lines are printed
	Slots    int       // ring slots; 0 for the default
	Ready    func(*kernel.Status)
	// KernelCores pins the kernel process; nil: as the plan says.
	KernelCores []int
	// Log receives the kernel's and the servers' logs; nil: stderr.
	Log *os.File
	// NIC is the backend of the topology's nic: "" or "none" (no cable),
	// or "tap": a TAP device in a namespace of its own, named for the run,
	// where Linux is LinuxAddr and can reach the host.
	NIC string
	// NoTSO turns TCP segmentation offload on the TAP off (nic
	// --tso=false, and tcp without --tso): every frame fits the MTU, as
	// before it was built. By default a tap run has it (docs/PACKET_PATH.md).
	NoTSO bool
	// ServiceTimes has every server time its role's handling of each
	// message, for newtsim_server_service_seconds; off, the default, it
	// costs nothing.
	ServiceTimes bool
	// App is an application to run on the simulated host beside the
	// stack, or nil.
	App *App
	// Trace turns on every server's trace recorder (package
	// internal/trace), for `newtsim trace` and the benchmarks' breakdown.
	Trace bool
	// NoSandbox runs every process as root without a seccomp filter, as
	// before docs/SANDBOX.md; by default each runs as a user of its own
	// under its role's filter.
	NoSandbox bool
	// IDBase is the sandbox's first id; 0: sandbox.DefaultBase.
	IDBase int
}

// LinuxAddr is Linux's address in a tap run's namespace; the host is
// 198.18.0.2 unless its ip server is told otherwise.
const LinuxAddr = "198.18.0.1/24"

// NSName is the namespace of a tap run, and TapName its TAP device.
func NSName(run string) string  { return "newtsim-" + run }
func TapName(run string) string { return "nts" + run }

// withNIC returns the topology with its nic processes given the backend,
// and, on a TAP, TCP segmentation offload in its nic and tcp processes
// unless noTSO.
func withNIC(t *topology.Topology, backend, run string, noTSO bool) *topology.Topology {
	if backend == "" || backend == "none" {
		return t
	}
	c := *t
	c.Processes = append([]topology.Process(nil), t.Processes...)
	tso := backend == "tap" && !noTSO
	for i, p := range c.Processes {
		switch {
		case p.Role == "nic":
			c.Processes[i].Args = append([]string{"--backend", backend, "--ifname", TapName(run),
				"--netns", "/var/run/netns/" + NSName(run), "--tso=" + strconv.FormatBool(tso)}, p.Args...)
		case p.Role == "tcp" && tso:
			c.Processes[i].Args = append([]string{"--tso"}, p.Args...)
		}
	}
	return &c
}

// tapNamespace makes a tap run's namespace with a persistent TAP device in
// it, Linux's address on it and up: the nic attaches to it from outside,
// again after every restart, and deleting the namespace removes it.
func tapNamespace(run string) (*netns.NS, error) {
	ns, err := netns.Create(NSName(run))
	if err != nil {
		return nil, err
	}
	if err := ns.AddTap(TapName(run), LinuxAddr); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// NewRunID returns a fresh run id: eight hex digits, which is how
// shm.RunOf tells a run's /dev/shm files from any other.
func NewRunID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Plan makes the core plan for a topology on cpus (nil: every online CPU),
// keeping a place for the applications that will run on it, and returns it
// with the CPUs it was made for. It is the only place a run's plan is made:
// the kernel is given the plan's outcome in its Spec.
func Plan(t *topology.Topology, cpus []int) (coreplan.Plan, []int, error) {
	if cpus == nil {
		var err error
		if cpus, err = cpu.Online(); err != nil {
			return coreplan.Plan{}, nil, err
		}
	}
	p, err := coreplan.FromTopology(t, cpus, coreplan.App)
	return p, cpus, err
}

// Handle is a started run.
type Handle struct {
	State  State
	NS     *netns.NS      // the tap run's namespace, or nil
	Status *kernel.Status // as it was when every server had registered
	Plan   coreplan.Plan
	dir    string
	cmd    *exec.Cmd
	exited chan error
	app    *App
	lock   *runLock // held from before the run's namespace exists until Stop
}

// Start starts the topology and returns once every server has registered.
// It refuses to start over a live run in the same state directory and
// cleans up after a dead one first.
func Start(ctx context.Context, o Options) (*Handle, error) {
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if st, alive := Running(o.StateDir); alive {
		return nil, fmt.Errorf("launch: run %s is already up (kernel pid %d): `newtsim down` first", st.Run, st.KernelPid)
	}
	if _, err := Clean(o.StateDir); err != nil {
		return nil, err
	}
	if err := o.Topology.Validate(); err != nil {
		return nil, err
	}
	if o.NIC != "" && o.NIC != "none" && o.NIC != "tap" {
		return nil, fmt.Errorf("launch: nic backend %q: want none or tap", o.NIC)
	}
	run := NewRunID()
	lock, err := lockRun(run)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			lock.release()
		}
	}()
	if o.Topology, err = withApp(o.Topology, o.App, filepath.Join(o.StateDir, appDir)); err != nil {
		return nil, err
	}
	o.Topology = withNIC(o.Topology, o.NIC, run, o.NoTSO)
	plan, _, err := Plan(o.Topology, o.CPUs)
	if err != nil {
		return nil, err
	}
	if o.Out != nil {
		fmt.Fprintln(o.Out, plan.String())
	}
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	kcores := o.KernelCores
	if kcores == nil {
		ke, _ := plan.Lookup(topology.KernelName)
		kcores = ke.Cores
	}
	spec := Resolve(o.Topology, plan, kcores, o.Slots)
	spec.ServiceTimes = o.ServiceTimes
	spec.Trace = o.Trace
	if !o.NoSandbox {
		if err := sandboxed(&spec, o); err != nil {
			return nil, err
		}
	}
	specPath := filepath.Join(o.StateDir, SpecFile)
	if err := kernel.WriteSpec(specPath, &spec); err != nil {
		return nil, err
	}
	exe, err := spawn.Self()
	if err != nil {
		return nil, err
	}
	args := []string{"--state-dir", o.StateDir, "kernel", "--run", run, "--spec", specPath}
	// The kernel gets a process group of its own, which its servers share,
	// so the whole run can be signalled; it dies with the launcher.
	var ns *netns.NS
	if o.NIC == "tap" {
		if ns, err = tapNamespace(run); err != nil {
			return nil, err
		}
	}
	cmd, err := spawn.Start(spawn.Spec{Path: exe, Args: args, Cores: kcores, Setpgid: true,
		DeathSignal: syscall.SIGTERM, Stdout: o.Log, Stderr: o.Log})
	if err != nil {
		if ns != nil {
			ns.Close()
		}
		return nil, err
	}
	started = true // the Handle owns the lock now: Stop releases it
	h := &Handle{dir: o.StateDir, cmd: cmd, exited: make(chan error, 1), Plan: plan, NS: ns, lock: lock, app: o.App,
		State: State{Run: run, KernelPid: cmd.Process.Pid, LauncherID: os.Getpid(), Started: time.Now(),
			Topology: o.Topology.Name, Plan: plan.Summary()}}
	go func() { h.exited <- cmd.Wait() }()
	if err := writeState(o.StateDir, h.State); err != nil {
		h.Stop()
		return nil, err
	}
	if h.Status, err = waitReady(ctx, o.StateDir, run, h.exited); err != nil {
		h.Stop()
		return nil, err
	}
	if err := awaitApp(o.App, filepath.Join(o.StateDir, appDir)); err != nil {
		h.Stop()
		return nil, fmt.Errorf("launch: %s did not listen: %w", o.App.Role, err)
	}
	return h, nil
}

// Wait blocks until ctx is done or the kernel exits. A kernel that exits
// cleanly (stopped by `newtsim down`) is no error.
func (h *Handle) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-h.exited:
		h.exited <- err
		if err != nil {
			return fmt.Errorf("launch: kernel exited: %w", err)
		}
		return nil
	}
}

// Stop stops the run: SIGTERM to the kernel, which stops its servers and
// removes its files; SIGKILL to the process group if it takes over 5 s; then
// Clean.
func (h *Handle) Stop() error {
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.exited:
		h.exited <- err
	case <-time.After(5 * time.Second):
		syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
	}
	h.lock.release() // so Clean takes this run's namespace and files too
	_, err := Clean(h.dir)
	return err
}

// Reach says how to reach the host of a tap run from Linux.
func (h *Handle) Reach() string {
	if h.NS == nil {
		return ""
	}
	return fmt.Sprintf("the host is %s in namespace %s (Linux there is %s): %s ping %s",
		HostAddr, h.NS.Name, LinuxAddr, strings.Join(nsPrefix(h.NS.Name), " "), HostAddr)
}

// Up starts the topology, prints a line per process, and blocks until ctx is
// done (Ctrl-C) or the kernel exits; then it stops everything.
func Up(ctx context.Context, o Options) error {
	h, err := Start(ctx, o)
	if err != nil {
		return err
	}
	PrintStatus(o.Out, h.Status)
	fmt.Fprintf(o.Out, "metrics targets for Prometheus (file_sd): %s\n", filepath.Join(h.dir, kernel.TargetsFile))
	if r := h.Reach(); r != "" {
		fmt.Fprintln(o.Out, r)
	}
	if c, what := h.AppCommand(); c != "" {
		fmt.Fprintf(o.Out, "%s; from Linux, as root:\n  %s\n", what, c)
	}
	if o.Ready != nil {
		o.Ready(h.Status)
	}
	err = h.Wait(ctx)
	if serr := h.Stop(); err == nil {
		err = serr
	}
	return err
}

func waitReady(ctx context.Context, dir, run string, exited chan error) (*kernel.Status, error) {
	deadline := time.After(30 * time.Second)
	for {
		if s, err := kernel.ReadStatus(dir); err == nil && s.Run == run && s.Ready {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("launch: kernel exited before the servers were up: %v", err)
		case <-deadline:
			return nil, errors.New("launch: servers did not all register within 30s")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sandboxed gives the run its id range: a nic that opens a TAP device
// starts as root and drops its privileges itself, a process whose filter
// keeps it root (the eagain probe) stays root; the temporary files and
// directories the processes' arguments name (results, captures, document
// roots, shared lines) and the application's directory are shared with the
// run's group.
func sandboxed(spec *kernel.Spec, o Options) error {
	spec.Sandbox = sandbox.IDs{Base: o.IDBase}
	if spec.Sandbox.Base == 0 {
		spec.Sandbox.Base = sandbox.DefaultBase
	}
	if err := spec.Sandbox.Check(); err != nil {
		return err
	}
	for i, p := range spec.Procs {
		if f, _ := sandbox.Lookup(p.Filter); f.Root || p.Role == "nic" && o.NIC == "tap" {
			spec.Procs[i].Privileged = true
		}
		for _, a := range p.Args {
			if err := sandbox.ShareTemp(a, spec.Sandbox.RunGroup()); err != nil {
				return fmt.Errorf("launch: %s: %w", p.Name, err)
			}
		}
	}
	// Where the application leaves its ready note, when it has one.
	if dir := filepath.Join(o.StateDir, appDir); o.App != nil && exists(dir) {
		return sandbox.ShareDir(dir, spec.Sandbox.RunGroup())
	}
	return nil
}

// PrintStatus prints a line per process: name, pid, cores, transport,
// endpoint, wait policy, metrics port, restarts, uid and seccomp filter.
func PrintStatus(w io.Writer, s *kernel.Status) {
	fmt.Fprintf(w, "run %s, topology %s, transport %s\n", s.Run, s.Topology, s.Transport)
	fmt.Fprintf(w, "  %-10s %-8s %-7s %-9s %-8s %-6s %-8s %-8s %-6s %-12s\n", "process", "pid", "cores", "transport", "endpoint", "wait", "metrics", "restarts", "uid", "filter")
	for _, p := range s.Processes {
		state := ""
		if !p.Alive {
			state = " (dead)"
		}
		tr := s.Transport
		if p.Name == "kernel" {
			tr = "-"
		}
		uid, filter := strconv.Itoa(p.UID), "none"
		if p.SetupRoot {
			uid += "*"
		}
		if p.Filter != "" {
			filter = fmt.Sprintf("%s (%d calls)", p.Filter, p.Syscalls)
		}
		fmt.Fprintf(w, "  %-10s %-8d %-7s %-9s %-8s %-6s %-8d %-8d %-6s %-12s%s\n", p.Name, p.Pid, cpu.FormatList(p.Cores), tr,
			p.Endpoint, p.Wait, p.MetricsPort, p.Restarts, uid, filter, state)
	}
	if anySetupRoot(s) {
		fmt.Fprintln(w, "  (uid*: root for its set-up only; docs/SANDBOX.md)")
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// anySetupRoot reports whether a process of s starts as root and drops.
func anySetupRoot(s *kernel.Status) bool {
	for _, p := range s.Processes {
		if p.SetupRoot {
			return true
		}
	}
	return false
}

func writeState(dir string, st State) error {
	if err := atomicfile.WriteJSON(filepath.Join(dir, StateFile), st); err != nil {
		return fmt.Errorf("launch: write state: %w", err)
	}
	return nil
}

// ReadState reads the state file in dir.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("launch: parse %s: %w", StateFile, err)
	}
	return &st, nil
}

// Running reports the run recorded in dir and whether its kernel is alive.
func Running(dir string) (*State, bool) {
	st, err := ReadState(dir)
	if err != nil {
		return nil, false
	}
	return st, isRunProcess(st.KernelPid, st.Run)
}

// isRunProcess reports whether pid is alive and is a newtsim process of run
// (so a recycled pid is never signalled).
func isRunProcess(pid int, run string) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		if a == "--run" && i+1 < len(args) && args[i+1] == run {
			return true
		}
	}
	return false
}

// runProcesses lists every live process whose command line names run.
func runProcesses(run string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if isRunProcess(pid, run) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Down stops the run recorded in dir: SIGTERM to the kernel, which stops its
// servers; after a grace period SIGKILL to whatever of the run remains. Then
// Clean. It reports what it stopped.
func Down(dir string, out io.Writer) error {
	if dir == "" {
		dir = DefaultStateDir
	}
	st, err := ReadState(dir)
	if err == nil {
		if isRunProcess(st.KernelPid, st.Run) {
			fmt.Fprintf(out, "stopping run %s (kernel pid %d)\n", st.Run, st.KernelPid)
			syscall.Kill(st.KernelPid, syscall.SIGTERM)
			deadline := time.Now().Add(5 * time.Second)
			for isRunProcess(st.KernelPid, st.Run) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	n, err := Clean(dir)
	if n > 0 {
		fmt.Fprintf(out, "cleaned up %d leftovers\n", n)
	}
	if st == nil && n == 0 {
		fmt.Fprintln(out, "nothing is running")
	}
	return err
}

// Clean kills every process of a dead or dying run recorded in dir, removes
// every /dev/shm file of newtsim runs that are not alive, and the run's
// state files. It returns how many processes and files it removed.
func Clean(dir string) (int, error) {
	n := 0
	st, err := ReadState(dir)
	if err == nil {
		for _, pid := range runProcesses(st.Run) {
			syscall.Kill(pid, syscall.SIGKILL)
			n++
		}
		// Wait for them to go, so their files can go too.
		deadline := time.Now().Add(3 * time.Second)
		for len(runProcesses(st.Run)) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Files and namespaces of other live runs (other state directories)
	// stay.
	live := liveRuns()
	m, err := shm.RemoveAll(live...)
	n += m
	if names, lerr := netns.List(); lerr == nil {
		for _, name := range names {
			run, ok := strings.CutPrefix(name, "newtsim-")
			if ok && len(run) == 8 && !slices.Contains(live, run) {
				if (&netns.NS{Name: name}).Close() == nil {
					n++
				}
			}
		}
	}
	for _, f := range []string{StateFile, kernel.StatusFile, kernel.TargetsFile, SpecFile} {
		os.Remove(filepath.Join(dir, f))
	}
	os.RemoveAll(filepath.Join(dir, appDir))
	return n, err
}

// liveRuns lists the run ids of every live newtsim kernel on the machine,
// and of every run a live launcher is starting or running (its run lock).
func liveRuns() []string {
	runs := lockedRuns()
	eachRunProcess(func(_ int, run string) { runs = append(runs, run) })
	return runs
}

// RunProcesses lists the live processes, other than this one, whose
// command line names run (with --run): a run's kernel, servers and
// standby, which must all be gone once it stops.
func RunProcesses(run string) []int {
	var pids []int
	eachRunProcess(func(pid int, r string) {
		if r == run && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	})
	return pids
}

// eachRunProcess calls f with the pid and the run of every live process
// whose command line names a run with --run.
func eachRunProcess(f func(pid int, run string)) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i, a := range args {
			if a == "--run" && i+1 < len(args) {
				f(pid, args[i+1])
				break
			}
		}
	}
}

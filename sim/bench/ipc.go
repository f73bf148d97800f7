package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/internal/spawn"
	"github.com/newtsim/newtsim/internal/stats"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/sim/bench/probe"
	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/machine"
	"github.com/newtsim/newtsim/sim/topology"
)

// Row is one measured line of a benchmark table.
type Row struct {
	Name string `json:"name"`
	probe.Sample
	Placement string `json:"placement"` // which process ran on which core
	Wait      string `json:"wait"`      // the wait policy in force
	What      string `json:"what"`      // what a round trip is
}

// Check is a target a benchmark is judged against.
type Check struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
}

// Report is a benchmark's result, as printed and as written to results/.
type Report struct {
	Bench    string       `json:"bench"`
	Command  string       `json:"command"`
	Time     time.Time    `json:"time"`
	Machine  machine.Info `json:"machine"`
	CorePlan string       `json:"core_plan"`
	Rows     []Row        `json:"rows"`
	Checks   []Check      `json:"checks"`
	Streams  []StreamRow  `json:"streams,omitempty"`
	Bulk     []BulkRow    `json:"bulk,omitempty"`  // bench tcp's throughput rows
	Conns    []ConnRow    `json:"conns,omitempty"` // bench tcp's connection rate rows
	// SwitchHop is bench tcp's measure of a hop between processes on the
	// stack's core (docs/LATENCY.md, the switch floor).
	SwitchHop *SwitchHop `json:"switch_hop,omitempty"`
	Notes     []string   `json:"notes,omitempty"`
}

// StreamRow is one measured one-way stream: its embedded StreamResult is
// the unpaced stream (sent, received, datagrams_per_s as before the
// search was added), and Throughput the search that followed it.
type StreamRow struct {
	Name string `json:"name"`
	probe.StreamResult
	Throughput *probe.Throughput `json:"throughput,omitempty"`
	Placement  string            `json:"placement"`
	// Drops are the simulated host's drop counters that moved over the
	// stream ("PROCESS REASON" -> count, as Drops names them), for the rows
	// through the multiserver stack: where the datagrams the sink did not
	// get were lost (udp-queue-full: the sink's receive queue, as Linux
	// drops).
	Drops map[string]float64 `json:"drops,omitempty"`
	// SearchDrops are what the drop counters gained over the throughput
	// search's trials, after Drops were read.
	SearchDrops map[string]float64 `json:"search_drops,omitempty"`
}

// linuxThroughput is the throughput search of the rows' Linux stream, or
// nil.
func linuxThroughput(rows []StreamRow) *probe.Throughput {
	var t *probe.Throughput
	for _, r := range rows {
		if r.Name == "linux" && r.Throughput != nil {
			t = r.Throughput
		}
	}
	return t
}

// writeThroughput writes the streams' throughput searches as a table.
func writeThroughput(b *strings.Builder, rows []StreamRow) {
	var linux float64
	if t := linuxThroughput(rows); t != nil {
		linux = t.Rate
	}
	header := false
	for _, s := range rows {
		t := s.Throughput
		if t == nil {
			continue
		}
		if !header {
			fmt.Fprintf(b, "\n| stream, throughput (%.4g%% delivered) | datagrams per second offered | pacer's target | payload Mbit/s | of Linux's | delivered there | ceiling, floor per second | trials | seconds |\n|---|---:|---:|---:|---:|---|---|---:|---:|\n", 100*t.Deliver)
			header = true
		}
		of := "-"
		if linux > 0 {
			of = fmt.Sprintf("%.3f", t.Rate/linux)
		}
		rate := fmt.Sprintf("%.0f", t.Rate)
		switch {
		case t.Unpaced:
			rate = "≥ " + rate + " (unpaced)"
		case t.Rate == 0:
			rate = fmt.Sprintf("< %.0f (floor)", t.Floor)
		}
		target := "-"
		if t.Target > 0 {
			target = fmt.Sprintf("%.0f", t.Target)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %.2f | %s | %d of %d | %.0f, %.0f | %d | %.1f |\n", s.Name, rate, target, t.Mbits, of,
			t.At.Received, t.At.Sent, t.Ceiling, t.Floor, len(t.Trials), t.Seconds)
	}
}

// Row returns the named row, or nil.
func (r *Report) Row(name string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Name == name {
			return &r.Rows[i]
		}
	}
	return nil
}

// IPCOptions configure the IPC benchmark.
type IPCOptions struct {
	CPUs     []int     // nil: every online CPU; the first two are used
	Progress io.Writer // a line per row as it runs; nil for none
	Log      *os.File  // the measuring processes' logs; nil: discarded
	Command  string    // recorded in the report
	Slots    int       // ring slots for the transport rows; 0: the default
	// CompareSandbox measures each row that runs under the kernel a
	// second time with the sandbox off (docs/SANDBOX.md), right after
	// it: the row's name with NoSandboxSuffix.
	CompareSandbox bool
	noSandbox      bool // this row runs with the sandbox off
}

// NoSandboxSuffix names a row measured with the sandbox off, beside the
// same row with it on.
const NoSandboxSuffix = "/nosandbox"

// IPC runs `newtsim bench ipc`: a round trip over each transport and wait
// policy, and the references (a bare cache-line ping-pong, a pipe), each
// between two processes pinned as the row says, all in one run.
func IPC(ctx context.Context, o IPCOptions) (*Report, error) {
	cpus, log, done, err := prepare("ipc", o.CPUs, o.Log)
	if err != nil {
		return nil, err
	}
	defer done()
	o.Log = log
	a, b := cpus[0], cpus[1]
	kcore := b // with two CPUs the kernel shares the echo side's core
	if len(cpus) > 2 {
		kcore = cpus[2]
	}
	rep := &Report{Bench: "ipc", Command: o.Command, Time: time.Now().UTC(), Machine: machine.Detect(),
		CorePlan: fmt.Sprintf("pinger on CPU %d; echo on CPU %d (1core rows: both on CPU %d); kernel on CPU %d", a, b, a, kcore)}
	dir, err := os.MkdirTemp("", "newtsim-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	// Each row's run leaves its result in out and says where it ran.
	type row struct {
		name, what string
		run        func(out string) (placement, wait string, err error)
		twin       bool // its processes run under the kernel: CompareSandbox measures it again without
	}
	line := filepath.Join(dir, "line")
	rows := []row{
		{"shm-spin-2core", "Ping and Pong over user-space rings, both sides spinning; measured in alternating batches " +
			"with ref-cacheline-2core by the same two processes",
			func(out string) (string, string, error) {
				os.Remove(line) // the row's twin makes it anew
				reg, err := shm.CreateRegion(line, 128)
				if err != nil {
					return "", "", err
				}
				reg.Close()
				return transportRow(ctx, dir, out, topology.Shm, "poll", a, b, kcore, o, "--pair", line)
			}, true},
		{"shm-local", "one process sends a message into its own ring and takes it out: the transport's code alone, " +
			"nothing crossing cores (a round trip runs it twice)",
			func(out string) (string, string, error) {
				path := shm.Path("bench"+strconv.Itoa(os.Getpid()), "local.inbox")
				return fmt.Sprintf("self=%d", a), "poll", single(out, a, "shm-local", path, o.Log)
			}, false},
		{"shm-futex-2core", "Ping and Pong over user-space rings, each receiver asleep on its futex until woken",
			func(out string) (string, string, error) {
				return transportRow(ctx, dir, out, topology.Shm, "block", a, b, kcore, o)
			}, true},
		{"shm-futex-1core", "the same with both processes on one core",
			func(out string) (string, string, error) {
				return transportRow(ctx, dir, out, topology.Shm, "block", a, a, kcore, o)
			}, true},
		{"shm-futex-1core-go", "shm-futex-1core with every sleep through the Go scheduler (the policy block-go): " +
			"the runtime hands the sleeping thread's P over and takes it back on each wake-up, which the default " +
			"block saves by holding it for the first 2 ms of a sleep (docs/CORE_PLANS.md)",
			func(out string) (string, string, error) {
				return transportRow(ctx, dir, out, topology.Shm, "block-go", a, a, kcore, o)
			}, false},
		{"kernel-msg", "Ping and Pong each through the kernel process: 4 sends and 4 blocking receives",
			func(out string) (string, string, error) {
				return transportRow(ctx, dir, out, topology.Kernel, "block", a, b, kcore, o)
			}, true},
		{"ref-pipe", "one byte each way over two pipes, both processes on one core",
			func(out string) (string, string, error) {
				return fmt.Sprintf("ping=%d pong=%d", a, a), "block", pipes(out, a, a, o.Log)
			}, false},
		{"ref-pipe-2core", "the same across two cores",
			func(out string) (string, string, error) {
				return fmt.Sprintf("ping=%d pong=%d", a, b), "block", pipes(out, a, b, o.Log)
			}, false},
		{"ring-procs-1core", fmt.Sprintf("ns per hop, not per round trip: a token passed around %d processes on one core, "+
			"each asleep on a futex until the one before it wakes it (a wake-up, a switch and a sleep per hop), as many "+
			"processes as the simulated host runs on its shared core", RingMembers),
			func(out string) (string, string, error) {
				return fmt.Sprintf("%d processes=%d", RingMembers, a), "block", ringProcs(out, a, RingMembers, o.Log)
			}, false},
		{"ring-threads-1core", fmt.Sprintf("ns per hop: the same ring between %d threads of one process, which switches "+
			"no address space", RingMembers),
			func(out string) (string, string, error) {
				return fmt.Sprintf("%d threads=%d", RingMembers, a), "block", ringThreads(out, a, RingMembers, o.Log)
			}, false},
	}
	if o.CompareSandbox {
		var both []row
		for _, r := range rows {
			both = append(both, r)
			if r.twin {
				run := r.run
				both = append(both, row{r.name + NoSandboxSuffix, r.what + "; the sandbox off (every process root, unfiltered)",
					func(out string) (string, string, error) {
						o.noSandbox = true
						defer func() { o.noSandbox = false }()
						return run(out)
					}, false})
			}
		}
		rows = both
	}
	for _, r := range rows {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		out := filepath.Join(dir, strings.ReplaceAll(r.name, "/", "-")+".json")
		placement, wait, err := r.run(out)
		if err != nil {
			return nil, fmt.Errorf("bench ipc: %s: %w", r.name, err)
		}
		res, err := readResult(out, 5*time.Second, nil)
		if err != nil {
			return nil, fmt.Errorf("bench ipc: %s: %w", r.name, err)
		}
		rep.Rows = append(rep.Rows, Row{Name: r.name, Sample: res.Sample, Placement: placement, Wait: wait, What: r.what})
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "  %-28s %10.0f ns %10.0f cycles\n", r.name, res.NS, res.Cycles)
		}
		if res.Ref == nil || strings.HasSuffix(r.name, NoSandboxSuffix) {
			continue
		}
		// The paired reference, measured by the same processes on the
		// same cores between the ring's batches.
		rep.Rows = append(rep.Rows, Row{Name: "ref-cacheline-2core", Sample: *res.Ref,
			Placement: strings.Replace(placement, "echo", "reflector", 1), Wait: "poll",
			What: "a store seen by the other core and answered: the floor for any shared-memory channel; " +
				"measured between shm-spin-2core's batches by the same processes"})
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "  %-20s %10.0f ns %10.0f cycles\n", "ref-cacheline-2core", res.Ref.NS, res.Ref.Cycles)
		}
		v := stats.Median(res.Ratios)
		rep.Checks = append(rep.Checks, Check{Name: "shm-spin-2core / ref-cacheline-2core (median of adjacent batches' ratios)",
			Value: v, Target: "<= 1.5", Met: v <= 1.5})
		sorted := append([]float64(nil), res.Ratios...)
		sort.Float64s(sorted)
		rep.Notes = append(rep.Notes, fmt.Sprintf("ratio of each adjacent pair of batches ranged %.2f-%.2f over %d pairs",
			sorted[0], sorted[len(sorted)-1], len(sorted)))
	}
	if p, t := rep.Row("ring-procs-1core"), rep.Row("ring-threads-1core"); p != nil && t != nil && t.NS > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("a hop between processes on one core costs %.1fx a hop between threads "+
			"(%.0f against %.0f ns, rings of %d): what the multiserver stack's separate address spaces add to every "+
			"message between two of its processes that share a core (docs/LATENCY.md)", p.NS/t.NS, p.NS, t.NS, RingMembers))
	}
	if spin, cl, local := rep.Row("shm-spin-2core"), rep.Row("ref-cacheline-2core"), rep.Row("shm-local"); spin != nil && cl != nil && local != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf(
			"where a shm-spin-2core round trip goes: the transport's own code twice (2 x shm-local = %.0f ns), "+
				"a cache line crossing cores each way (ref-cacheline-2core = %.0f ns), and the rest (%.0f ns) the two "+
				"processes' loops and the stalls of their fenced stores on a line the other core holds",
			2*local.NS, cl.NS, spin.NS-2*local.NS-cl.NS))
	}
	return rep, nil
}

// prepare resolves what a benchmark runs on: its CPUs (every online one
// when nil; it needs two) and where its processes log (discarded when nil).
// done releases what it opened.
func prepare(bench string, cpus []int, log *os.File) ([]int, *os.File, func(), error) {
	if cpus == nil {
		var err error
		if cpus, err = cpu.Online(); err != nil {
			return nil, nil, nil, err
		}
	}
	if len(cpus) < 2 {
		return nil, nil, nil, fmt.Errorf("bench %s: needs two CPUs, have %v", bench, cpus)
	}
	if log != nil {
		return cpus, log, func() {}, nil
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	return cpus, devnull, func() { devnull.Close() }, nil
}

// transportRow runs a pinger and an echo server under a kernel, over the
// given transport, and leaves the pinger's sample in out.
func transportRow(ctx context.Context, dir, out string, tr topology.Transport, wait string, pc, ec, kc int, o IPCOptions, pingerArgs ...string) (string, string, error) {
	var echoArgs []string
	if len(pingerArgs) == 2 && pingerArgs[0] == "--pair" {
		echoArgs = []string{"--line", pingerArgs[1]}
	}
	t := &topology.Topology{
		Name: "bench-ipc", Transport: tr, Wait: wait,
		Processes: []topology.Process{
			{Name: "pinger", Role: "pinger", Cores: []int{pc}, Wait: wait, Args: append([]string{"--out", out}, pingerArgs...)},
			{Name: "echo", Role: "reflector", Cores: []int{ec}, Wait: wait, Args: echoArgs},
		},
		Links: []topology.Link{{A: "pinger", B: "echo"}},
	}
	h, err := launch.Start(ctx, launch.Options{StateDir: filepath.Join(dir, "state"), Topology: t,
		CPUs: uniq(pc, ec, kc), KernelCores: []int{kc}, Log: o.Log, Slots: o.Slots, NoSandbox: o.noSandbox})
	if err != nil {
		return "", "", err
	}
	defer h.Stop()
	if _, err := readResult(out, 60*time.Second, nil); err != nil {
		return "", "", err
	}
	return fmt.Sprintf("pinger=%d echo=%d kernel=%d", pc, ec, kc), wait, nil
}

func uniq(xs ...int) []int {
	var out []int
	seen := map[int]bool{}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// startPeer starts `newtsim bench peer` pinned to core, with files as its
// descriptors 3 and up.
func startPeer(core int, log *os.File, files []*os.File, p probe.PeerOptions) (*exec.Cmd, error) {
	return startPeerOn([]int{core}, log, files, p)
}

// startPeerOn is startPeer on several cores.
func startPeerOn(cores []int, log *os.File, files []*os.File, p probe.PeerOptions) (*exec.Cmd, error) {
	exe, err := spawn.Self()
	if err != nil {
		return nil, err
	}
	args := []string{"bench", "peer", "--mode", p.Mode, "--out", p.Out, "--file", p.File, "--size", strconv.Itoa(p.Size),
		"--index", strconv.Itoa(p.Index),
		"--trial", strconv.Itoa(p.Search.Trial), "--deliver", strconv.FormatFloat(p.Search.Deliver, 'g', -1, 64),
		"--resolution", strconv.FormatFloat(p.Search.Resolution, 'g', -1, 64)}
	return spawn.Start(spawn.Spec{Path: exe, Args: args, Cores: cores, Files: files, Stdout: log, Stderr: log})
}

// single runs a one-process measurement pinned to core.
func single(out string, core int, mode, path string, log *os.File) error {
	cmd, err := startPeer(core, log, nil, probe.PeerOptions{Mode: mode, File: path, Out: out})
	if err != nil {
		return err
	}
	return cmd.Wait()
}

// pipes runs the pipe round trip between two processes.
func pipes(out string, pc, qc int, log *os.File) error {
	r1, w1, err := os.Pipe() // ping -> pong
	if err != nil {
		return err
	}
	r2, w2, err := os.Pipe() // pong -> ping
	if err != nil {
		return err
	}
	return pair(out, pc, qc, "pipe", []*os.File{r2, w1}, []*os.File{r1, w2}, log)
}

// pair starts the pong side then the ping side of a reference measurement
// and waits for both.
func pair(out string, pc, qc int, mode string, pingFiles, pongFiles []*os.File, log *os.File) error {
	start := func(side string, core int, files []*os.File) (*exec.Cmd, error) {
		return startPeer(core, log, files, probe.PeerOptions{Mode: mode + "-" + side, Out: out})
	}
	pong, err := start("pong", qc, pongFiles)
	if err != nil {
		return err
	}
	ping, err := start("ping", pc, pingFiles)
	for _, f := range append(pingFiles, pongFiles...) {
		f.Close()
	}
	if err != nil {
		pong.Process.Kill()
		pong.Wait()
		return err
	}
	perr := ping.Wait()
	qerr := pong.Wait()
	if perr != nil {
		return fmt.Errorf("ping side: %w", perr)
	}
	if qerr != nil {
		return fmt.Errorf("pong side: %w", qerr)
	}
	return nil
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error { return atomicfile.WriteJSON(path, r) }

// Table formats the report as a Markdown table with the machine, the core
// plan and the checks, for the terminal and for results/*.md.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# newtsim bench %s\n\n", r.Bench)
	fmt.Fprintf(&b, "- command: `%s`\n- when: %s\n- %s\n- core plan: %s\n\n",
		r.Command, r.Time.Format(time.RFC3339), r.Machine.String(), r.CorePlan)
	if len(r.Rows) > 0 {
		b.WriteString("| row | ns per round trip (median of batches) | cycles | batches' min-max ns | placement | wait | round trips |\n")
		b.WriteString("|---|---:|---:|---|---|---|---:|\n")
		for _, row := range r.Rows {
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f-%.0f | %s | %s | %d |\n", row.Name, row.NS, row.Cycles,
				row.MinNS, row.MaxNS, row.Placement, row.Wait, row.RoundTrips)
		}
	}
	if len(r.Bulk) > 0 {
		b.WriteString("| bulk | Mbit/s (median) | min-max Mbit/s | bytes each | repetitions | seconds (median) | " +
			"stack CPU us per MiB | context switches per MiB | switch floor us per MiB | placement |\n")
		b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---|\n")
		for _, row := range r.Bulk {
			cpu, sw, floor := "-", "-", "-"
			if row.StackCPUUSPerMiB > 0 {
				cpu, sw = fmt.Sprintf("%.1f", row.StackCPUUSPerMiB), fmt.Sprintf("%.2f", row.SwitchesPerMiB)
			}
			if row.SwitchFloorUSPerMiB != nil {
				floor = fmt.Sprintf("%.1f", *row.SwitchFloorUSPerMiB)
			}
			fmt.Fprintf(&b, "| %s | %.1f | %.1f-%.1f | %d | %d | %.3f | %s | %s | %s | %s |\n", row.Name, row.Mbits,
				row.MinMbits, row.MaxMbits, row.Bytes, row.Reps, row.Seconds, cpu, sw, floor, row.Placement)
		}
		if h := r.SwitchHop; h != nil {
			fmt.Fprintf(&b, "\nthe stack's core (CPU %d): a hop between %d processes %.1f us of CPU and %.2f context switches, "+
				"%.1f us of CPU a switch; between %d threads of one process %.1f us. A row's switch floor is its "+
				"switches per MiB times the CPU a switch (docs/LATENCY.md)\n", h.Core, h.Members, h.ProcessCPUNS/1e3,
				h.ProcessSwitches, h.PerSwitchNS()/1e3, h.Members, h.ThreadCPUNS/1e3)
		}
	}
	if len(r.Conns) > 0 {
		if len(r.Bulk) > 0 {
			b.WriteString("\n")
		}
		b.WriteString("| connections | per second (median of batches) | batches' min-max | connections | seconds | placement |\n")
		b.WriteString("|---|---:|---|---:|---:|---|\n")
		for _, row := range r.Conns {
			fmt.Fprintf(&b, "| %s | %.0f | %.0f-%.0f | %d | %.3f | %s |\n", row.Name, row.PerSec,
				row.MinPerSec, row.MaxPerSec, row.Conns, row.Seconds, row.Placement)
		}
	}
	if len(r.Streams) > 0 {
		b.WriteString("\n| stream, unpaced | datagrams per second | received of sent | offered per second | seconds | placement |\n|---|---:|---|---:|---:|---|\n")
		for _, s := range r.Streams {
			fmt.Fprintf(&b, "| %s | %.0f | %d of %d | %.0f | %.3f | %s |\n", s.Name, s.PerSec, s.Received, s.Sent, s.Offered, s.Seconds, s.Placement)
		}
		writeThroughput(&b, r.Streams)
	}
	b.WriteString("\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "- %s: %s\n", row.Name, row.What)
	}
	for _, row := range r.Bulk {
		fmt.Fprintf(&b, "- bulk %s: %s\n", row.Name, row.What)
	}
	for _, row := range r.Conns {
		fmt.Fprintf(&b, "- connections %s: %s\n", row.Name, row.What)
	}
	if len(r.Checks) > 0 {
		b.WriteString("\n")
	}
	writeChecks(&b, "- target ", "- ", r.Checks, r.Notes)
	return b.String()
}

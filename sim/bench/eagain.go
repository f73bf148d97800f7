package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/sim/bench/probe"
	"github.com/newtsim/newtsim/sim/chart"
	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/machine"
	"github.com/newtsim/newtsim/sim/topology"
)

// The recvfrom-EAGAIN experiment of the NewtOS talk: one connected TCP
// socket with nothing to read, and a non-blocking recvfrom called over and
// over on it. Every call's answer is EAGAIN; what differs between the rows
// is the road the call takes to learn it.

// Talk is the talk's figure for a row, in cycles (12-core AMD at 1.9 GHz).
var Talk = map[string]float64{"kernel-msg": 79800, "user-msg": 19950, "linux": 478, "exposed": 137}

// EagainRow is one row of `newtsim bench eagain`.
type EagainRow struct {
	Name          string  `json:"name"`
	What          string  `json:"what"`
	NS            float64 `json:"ns"`     // median ns per call
	Cycles        float64 `json:"cycles"` // median TSC cycles per call
	MinNS         float64 `json:"min_ns"`
	MaxNS         float64 `json:"max_ns"`
	Calls         int64   `json:"calls"`          // calls made in the row, warm-up included
	Eagain        int64   `json:"eagain"`         // of which answered EAGAIN
	LinuxSyscalls float64 `json:"linux_syscalls"` // real system calls per call, counted by the kernel
	TalkCycles    float64 `json:"talk_cycles,omitempty"`
	Placement     string  `json:"placement"`
}

// EagainReport is what `newtsim bench eagain` writes.
type EagainReport struct {
	Bench    string       `json:"bench"`
	Command  string       `json:"command"`
	Time     time.Time    `json:"time"`
	Machine  machine.Info `json:"machine"`
	CorePlan string       `json:"core_plan"`
	Rows     []EagainRow  `json:"rows"`
	// Reference is the cache-line round trip between the two CPUs,
	// measured in the same run.
	Reference *EagainRow `json:"reference,omitempty"`
	Checks    []Check    `json:"checks"`
	Notes     []string   `json:"notes,omitempty"`
	// Breakdown is the first message row's breakdown by hop, Breakdowns
	// every message row's (--breakdown; breakdown.go).
	Breakdown  *CellBreakdown  `json:"breakdown,omitempty"`
	Breakdowns []CellBreakdown `json:"breakdowns,omitempty"`
}

// EagainOptions configure the experiment.
type EagainOptions struct {
	CPUs     []int     // nil: every online CPU
	Progress io.Writer // a line per row; nil for none
	Log      *os.File  // the processes' logs; nil: discarded
	Command  string
	// Breakdown traces the message rows and breaks a call down by hop
	// (breakdown.go).
	Breakdown bool
	// CompareSandbox measures each row a second time with the sandbox
	// off, right after it: the row's name with NoSandboxSuffix.
	CompareSandbox bool
}

// Eagain runs `newtsim bench eagain`: the rows of the talk's table, each in
// a run of the simulated host, the application alone on the first CPU.
func Eagain(ctx context.Context, o EagainOptions) (*EagainReport, error) {
	cpus, log, done, err := prepare("eagain", o.CPUs, o.Log)
	if err != nil {
		return nil, err
	}
	defer done()
	o.Log = log
	a := cpus[0]
	dir, err := os.MkdirTemp("", "newtsim-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rep := &EagainReport{Bench: "eagain", Command: o.Command, Time: time.Now().UTC(), Machine: machine.Detect()}
	b := cpus[1]
	type eagainRow struct {
		name, what, backend string
		tr                  topology.Transport
		spin                bool // tcp alone spinning on the second CPU
		noSandbox           bool
	}
	rows := []eagainRow{
		{"kernel-msg", "message backend over kernel messages: app, kernel, syscall, kernel, tcp and back", "message", topology.Kernel, false, false},
		{"user-msg", "message backend over user-space channels: app, syscall, tcp and back", "message", topology.Shm, false, false},
		{"user-msg-direct", "the same with syscall left out: app, tcp and back", "message-direct", topology.Shm, false, false},
		{"linux", "recvfrom(2) on a Linux TCP socket over loopback, from the same application process", "linux", topology.Shm, false, false},
		{"exposed", "exposed socket buffers: the library reads the empty ring in shared memory", "exposed", topology.Shm, false, false},
	}
	if o.CompareSandbox {
		var both []eagainRow
		for _, r := range rows {
			off := r
			off.name, off.what, off.noSandbox = r.name+NoSandboxSuffix, r.what+"; the sandbox off", true
			both = append(both, r, off)
		}
		rows = both
	}
	for _, row := range rows {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		out := filepath.Join(dir, strings.ReplaceAll(row.name, "/", "-")+".json")
		t := topology.Default()
		t.Transport = row.tr
		t.Processes = append(t.Processes, topology.Process{Name: "app", Role: "eagain", Cores: []int{a},
			Args: []string{"--backend", row.backend, "--out", out}})
		t.Links = append(t.Links, topology.Link{A: "app", B: "syscall"}, topology.Link{A: "app", B: "tcp"})
		placement := fmt.Sprintf("app=%d (spins)", a)
		if row.spin {
			for i := range t.Processes {
				if t.Processes[i].Name == "tcp" {
					t.Processes[i].Cores, t.Processes[i].Wait = []int{b}, "poll"
				}
			}
			placement += fmt.Sprintf(" tcp=%d (spins)", b)
		}
		traced := o.Breakdown && strings.HasPrefix(row.backend, "message") && !row.noSandbox
		h, err := launch.Start(ctx, launch.Options{StateDir: filepath.Join(dir, "state"), Topology: t, CPUs: cpus, Log: o.Log, Trace: traced,
			NoSandbox: row.noSandbox})
		if err != nil {
			return nil, fmt.Errorf("bench eagain: %s: %w", row.name, err)
		}
		if rep.CorePlan == "" {
			rep.CorePlan = h.Plan.Summary()
		}
		var res probe.EagainResult
		err = awaitJSON(out, 90*time.Second, nil, &res)
		if err == nil && res.Error == "" && traced {
			err = rep.eagainBreakdown(ctx, row.name, row.backend, filepath.Join(dir, "state"), res, o.Progress)
		}
		h.Stop()
		if err == nil && res.Error != "" {
			err = errors.New(res.Error)
		}
		if err != nil {
			return nil, fmt.Errorf("bench eagain: %s: %w", row.name, err)
		}
		er := EagainRow{Name: row.name, What: row.what, NS: res.NS, Cycles: res.Cycles, MinNS: res.MinNS, MaxNS: res.MaxNS,
			Calls: res.Calls, Eagain: res.Eagain, LinuxSyscalls: res.PerCall, TalkCycles: Talk[row.name],
			Placement: placement}
		rep.Rows = append(rep.Rows, er)
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "  %-26s %10.0f ns %10.0f cycles %6.2f syscalls/call\n", er.Name, er.NS, er.Cycles, er.LinuxSyscalls)
		}
	}
	// The cache-line round trip of bench ipc, measured now on the same
	// two CPUs, for the user-msg-direct target.
	out := filepath.Join(dir, "ref.json")
	line := filepath.Join(dir, "line")
	reg, err := shm.CreateRegion(line, 128)
	if err != nil {
		return nil, err
	}
	reg.Close()
	if _, _, err := transportRow(ctx, dir, out, topology.Shm, "poll", a, b, b, IPCOptions{Log: o.Log}, "--pair", line); err != nil {
		return nil, fmt.Errorf("bench eagain: the cache-line reference: %w", err)
	}
	res, err := readResult(out, 5*time.Second, nil)
	if err != nil || res.Ref == nil {
		return nil, fmt.Errorf("bench eagain: the cache-line reference: %v", err)
	}
	rep.Reference = &EagainRow{Name: "ref-cacheline-2core", What: "a cache line bounced between the two CPUs and back (bench ipc's reference)",
		NS: res.Ref.NS, Cycles: res.Ref.Cycles, MinNS: res.Ref.MinNS, MaxNS: res.Ref.MaxNS, Placement: fmt.Sprintf("%d and %d", a, b)}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "  %-20s %10.0f ns %10.0f cycles\n", rep.Reference.Name, rep.Reference.NS, rep.Reference.Cycles)
	}
	rep.judge()
	return rep, nil
}

func (r *EagainReport) row(name string) *EagainRow {
	for i := range r.Rows {
		if r.Rows[i].Name == name {
			return &r.Rows[i]
		}
	}
	return nil
}

// judge records the targets: exposed at most a tenth of linux, the order
// kernel-msg > user-msg > linux > exposed, every answer EAGAIN, and each
// breakdown's hops within 10% of the probe's figure.
func (r *EagainReport) judge() {
	for _, row := range r.Rows {
		r.Checks = append(r.Checks, Check{Name: row.Name + ": eagain == calls", Value: float64(row.Eagain),
			Target: fmt.Sprintf("== %d", row.Calls), Met: row.Eagain == row.Calls})
	}
	k, u, l, x := r.row("kernel-msg"), r.row("user-msg"), r.row("linux"), r.row("exposed")
	if l != nil && x != nil {
		r.Checks = append(r.Checks, Check{Name: "exposed / linux", Value: x.NS / l.NS, Target: "<= 0.1", Met: x.NS <= l.NS/10})
	}
	for _, name := range []string{"user-msg-direct"} {
		if d := r.row(name); d != nil && r.Reference != nil {
			r.Checks = append(r.Checks, Check{Name: name + " / ref-cacheline-2core", Value: d.NS / r.Reference.NS,
				Target: "<= 3", Met: d.NS <= 3*r.Reference.NS})
		}
	}
	if k != nil && u != nil && l != nil && x != nil {
		r.Checks = append(r.Checks, Check{Name: "order kernel-msg > user-msg > linux > exposed", Value: 0,
			Target: "true", Met: k.NS > u.NS && u.NS > l.NS && l.NS > x.NS})
	}
	r.Checks = append(r.Checks, breakdownChecks(r.Breakdowns)...)
	for _, row := range r.Rows {
		if off := r.row(row.Name + NoSandboxSuffix); off != nil && off.NS > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: %.0f ns with the sandbox, %.0f without: %.2fx",
				row.Name, row.NS, off.NS, row.NS/off.NS))
		}
	}
}

// Table prints the rows beside the talk's figures.
func (r *EagainReport) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# newtsim bench eagain: recvfrom() returning EAGAIN on an idle TCP socket\n\n")
	fmt.Fprintf(&b, "- command: `%s`\n- when: %s\n- %s\n- core plan: %s\n\n",
		r.Command, r.Time.Format(time.RFC3339), r.Machine.String(), r.CorePlan)
	fmt.Fprintf(&b, "| row | ns | cycles | talk cycles | Linux syscalls per call | calls | eagain |\n|---|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		talk := "-"
		if row.TalkCycles > 0 {
			talk = fmt.Sprintf("%.0f", row.TalkCycles)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %s | %.2f | %d | %d |\n", row.Name, row.NS, row.Cycles, talk, row.LinuxSyscalls, row.Calls, row.Eagain)
	}
	if ref := r.Reference; ref != nil {
		fmt.Fprintf(&b, "| (%s) | %.0f | %.0f | - | - | - | - |\n", ref.Name, ref.NS, ref.Cycles)
	}
	fmt.Fprintf(&b, "\ntalk: NewtOS on a 12-core AMD at 1.9 GHz (Hrubý, Crivăț, Bos, Tanenbaum, \"On Sockets and System Calls\", TRIOS 2014).\n")
	writeChecks(&b, "check ", "note: ", r.Checks, r.Notes)
	return b.String() + breakdownMarkdown(r.Breakdowns)
}

// WriteJSON writes the report to path.
func (r *EagainReport) WriteJSON(path string) error { return atomicfile.WriteJSON(path, r) }

// WriteSVG draws the rows as bars on a log scale, cycles per call, the
// talk's figure beside each row that has one.
func (r *EagainReport) WriteSVG(path string) error {
	c := chart.Chart{Title: "recvfrom() returning EAGAIN: cycles per call (log scale)", Unit: "cycles", Log: true,
		ValueLabel: "measured here", RefLabel: "NewtOS talk (12-core AMD, 1.9 GHz)"}
	for _, row := range r.Rows {
		c.Bars = append(c.Bars, chart.Bar{Label: row.Name, Value: max(row.Cycles, 1), Ref: row.TalkCycles,
			Note: fmt.Sprintf("%.0f ns, %.2f syscalls/call", row.NS, row.LinuxSyscalls)})
	}
	return c.WriteFile(path)
}

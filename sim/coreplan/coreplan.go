// Package coreplan maps the processes of a newtsim system to cores and
// gives each a wait policy.
//
// With a core for every process, each gets its own and polls, as in
// NewtOS. With fewer, the processes that matter most to latency keep cores
// of their own and the rest share the last core and block, since spinning
// on a core shared with the peer one waits for only steals the peer's
// time. docs/CORE_PLANS.md gives the rule and its reasons. A topology may
// also give cores and wait policies by hand.
package coreplan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/sim/topology"
)

// Wait policies a plan gives.
const (
	// Poll spins on the channel and never sleeps.
	Poll = "poll"
	// Block sleeps until a peer wakes the process.
	Block = "block"
)

// Sources of a plan.
const (
	// SourceDerived plans come from the cores alone.
	SourceDerived = "derived"
	// SourceTopology plans follow cores given by hand in the topology.
	SourceTopology = "topology"
)

// Modes of a plan.
const (
	// ModeDedicated means every process has a core of its own.
	ModeDedicated = "dedicated"
	// ModeShared means some processes share a core.
	ModeShared = "shared"
)

// App is the process a plan reserves for the applications of a run, when
// its maker names it among the application names (FromTopology).
const App = "app"

// priority orders processes for cores of their own when there are too
// few: the application, then the servers on its path in the order their
// wake-up latency costs it.
var priority = []string{App, "tcp", "syscall", "ip", "udp", "driver", "pf", "nic", "kernel"}

// Entry is one process's place in a plan.
type Entry struct {
	// Process names the process: "kernel", a topology process or an
	// application.
	Process string `json:"process"`
	// Cores are the cores the process is pinned to; nil: not pinned.
	Cores []int `json:"cores"`
	// Wait is "block", "poll" or a duration string, as the process will
	// be told.
	Wait string `json:"wait"`
	// Shared reports whether another process of the plan uses one of the
	// same cores.
	Shared bool `json:"shared"`
}

// Plan maps processes to cores.
type Plan struct {
	// Source is SourceDerived, or SourceTopology when the topology gave
	// any process its cores.
	Source string `json:"source"`
	// CPUs counts the cores the plan was made for.
	CPUs int `json:"cpus"`
	// Mode is ModeDedicated or ModeShared.
	Mode string `json:"mode"`
	// Entries are in the order of the processes given.
	Entries []Entry `json:"entries"`
}

// Derive makes a plan for the named processes (which include the "kernel"
// and "app" pseudo-processes as the caller lists them) on the given CPU
// ids.
//
// With at least as many CPUs as processes, process i gets cpus[i] and
// polls. Otherwise the first len(cpus)-1 processes in priority order (app,
// tcp, syscall, ip, udp, driver, pf, kernel, then the others in the order
// given) get cpus[0], cpus[1], ... and poll, and the rest share the last
// CPU and block. With no CPUs, no process is pinned and all block.
func Derive(procs []string, cpus []int) Plan {
	cpus = uniq(cpus)
	p := Plan{Source: SourceDerived, CPUs: len(cpus), Entries: make([]Entry, len(procs))}
	for i, name := range procs {
		p.Entries[i] = Entry{Process: name, Wait: Block}
	}
	switch {
	case len(cpus) == 0:
	case len(cpus) >= len(procs):
		for i := range p.Entries {
			p.Entries[i].Cores = []int{cpus[i]}
		}
	default:
		last := cpus[len(cpus)-1]
		for i := range p.Entries {
			p.Entries[i].Cores = []int{last}
		}
		for k, i := range byPriority(procs)[:len(cpus)-1] {
			p.Entries[i].Cores = []int{cpus[k]}
		}
	}
	p.settle()
	for i, e := range p.Entries {
		if !e.Shared && len(e.Cores) > 0 {
			p.Entries[i].Wait = Poll
		}
	}
	return p
}

// byPriority returns the indexes of procs in priority order.
func byPriority(procs []string) []int {
	rank := func(name string) int {
		if r := slices.Index(priority, name); r >= 0 {
			return r
		}
		return len(priority)
	}
	idx := make([]int, len(procs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return rank(procs[a]) - rank(procs[b]) })
	return idx
}

// uniq returns cpus without repeats, in order.
func uniq(cpus []int) []int {
	var out []int
	for _, c := range cpus {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// settle sets every entry's Shared flag and the plan's Mode from the cores
// given. Entries without cores share whatever cores the system gives them
// when there are more than one.
func (p *Plan) settle() {
	users := map[int]int{}
	for _, e := range p.Entries {
		for _, c := range uniq(e.Cores) {
			users[c]++
		}
	}
	p.Mode = ModeDedicated
	for i, e := range p.Entries {
		shared := len(e.Cores) == 0 && len(p.Entries) > 1
		for _, c := range e.Cores {
			shared = shared || users[c] > 1
		}
		p.Entries[i].Shared = shared
		if shared {
			p.Mode = ModeShared
		}
	}
}

// FromTopology makes the plan for a topology on cpus. Its processes are
// "kernel", then the topology's processes in order, then appNames (less
// any the topology lists). Processes given cores in the topology get them;
// the others are planned by Derive on the CPUs no process was given by
// hand (on all of cpus if none is left). A process given a Wait keeps it;
// the others get t.Wait when it is not "" or "auto", else poll when alone
// on their cores and block when sharing. It refuses an invalid topology
// and cores not among cpus.
func FromTopology(t *topology.Topology, cpus []int, appNames ...string) (Plan, error) {
	if err := t.Validate(); err != nil {
		return Plan{}, fmt.Errorf("coreplan: %w", err)
	}
	cpus = uniq(cpus)
	if len(cpus) == 0 {
		return Plan{}, fmt.Errorf("coreplan: topology %s: no CPUs to plan for", t.Name)
	}
	names := []string{topology.KernelName}
	for _, p := range t.Processes {
		names = append(names, p.Name)
	}
	for _, a := range appNames {
		if !slices.Contains(names, a) {
			names = append(names, a)
		}
	}
	plan := Plan{Source: SourceDerived, CPUs: len(cpus), Entries: make([]Entry, len(names))}
	var rest []string
	var taken []int
	for i, name := range names {
		plan.Entries[i].Process = name
		p, _ := t.Process(name)
		if len(p.Cores) == 0 {
			rest = append(rest, name)
			continue
		}
		for _, c := range p.Cores {
			if !slices.Contains(cpus, c) {
				return Plan{}, fmt.Errorf("coreplan: topology %s: process %s: core %d is not among the CPUs planned for (%s)",
					t.Name, name, c, cpu.FormatList(cpus))
			}
		}
		plan.Entries[i].Cores = slices.Clone(p.Cores)
		taken = append(taken, p.Cores...)
		plan.Source = SourceTopology
	}
	free := slices.DeleteFunc(slices.Clone(cpus), func(c int) bool { return slices.Contains(taken, c) })
	if len(free) == 0 {
		free = cpus
	}
	derived := Derive(rest, free)
	for i, e := range plan.Entries {
		if e.Cores == nil {
			d, _ := derived.Lookup(e.Process)
			plan.Entries[i].Cores = d.Cores
		}
	}
	plan.settle()
	for i, e := range plan.Entries {
		p, _ := t.Process(e.Process)
		switch {
		case p.Wait != "" && p.Wait != "auto":
			plan.Entries[i].Wait = p.Wait
		case t.Wait != "" && t.Wait != "auto":
			plan.Entries[i].Wait = t.Wait
		case e.Shared:
			plan.Entries[i].Wait = Block
		default:
			plan.Entries[i].Wait = Poll
		}
	}
	return plan, nil
}

// Lookup returns the entry of the named process.
func (p Plan) Lookup(process string) (Entry, bool) {
	for _, e := range p.Entries {
		if e.Process == process {
			return e, true
		}
	}
	return Entry{}, false
}

// core is one line of String and one group of Summary: a core (or -1 for
// the unpinned) and the entries that use it.
type core struct {
	id      int
	entries []Entry
}

// cores groups the entries by core, in ascending order, the unpinned last.
func (p Plan) cores() []core {
	var ids []int
	for _, e := range p.Entries {
		ids = append(ids, e.Cores...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var out []core
	for _, id := range ids {
		c := core{id: id}
		for _, e := range p.Entries {
			if slices.Contains(e.Cores, id) {
				c.entries = append(c.entries, e)
			}
		}
		out = append(out, c)
	}
	unpinned := core{id: -1}
	for _, e := range p.Entries {
		if len(e.Cores) == 0 {
			unpinned.entries = append(unpinned.entries, e)
		}
	}
	if len(unpinned.entries) > 0 {
		out = append(out, unpinned)
	}
	return out
}

// sameWait returns the wait policy every entry shares, or "".
func sameWait(entries []Entry) string {
	for _, e := range entries[1:] {
		if e.Wait != entries[0].Wait {
			return ""
		}
	}
	return entries[0].Wait
}

// String describes the plan for people: a headline, then a line per core
// naming its processes and how they wait.
func (p Plan) String() string {
	var b strings.Builder
	source := "derived"
	if p.Source == SourceTopology {
		source = "from the topology"
	}
	fmt.Fprintf(&b, "core plan: %s for %s, %s (%s)", source, plural(p.CPUs, "CPU"), p.headline(), plural(len(p.Entries), "process"))
	for _, c := range p.cores() {
		var names []string
		for _, e := range c.entries {
			names = append(names, e.Process)
		}
		where := fmt.Sprintf("core %d", c.id)
		if c.id < 0 {
			where = "unpinned"
		}
		var how string
		if w := sameWait(c.entries); w != "" {
			how = describeWait(w)
		} else {
			var each []string
			for _, e := range c.entries {
				each = append(each, e.Process+" "+describeWait(e.Wait))
			}
			how = strings.Join(each, "; ")
		}
		fmt.Fprintf(&b, "\n  %s: %s  (%s)", where, strings.Join(names, " "), how)
	}
	return b.String()
}

// headline sums up the mode and the waits.
func (p Plan) headline() string {
	if p.Mode == ModeDedicated {
		s := "dedicated: every process has a core of its own"
		if len(p.Entries) > 0 {
			switch sameWait(p.Entries) {
			case Poll:
				s += " and polls"
			case Block:
				s += " and blocks"
			}
		}
		return s
	}
	s := "shared: servers share cores"
	var sharing []Entry
	for _, e := range p.Entries {
		if e.Shared {
			sharing = append(sharing, e)
		}
	}
	for _, e := range sharing {
		if e.Wait != Block {
			return s + ", and some spin on a shared core"
		}
	}
	return s + " and block"
}

// plural writes n things, in the plural unless n is 1.
func plural(n int, thing string) string {
	switch {
	case n == 1:
		return "1 " + thing
	case strings.HasSuffix(thing, "s"):
		return fmt.Sprintf("%d %ses", n, thing)
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// describeWait says how a process waits.
func describeWait(w string) string {
	switch w {
	case Poll:
		return "poll: spins, never sleeps"
	case Block:
		return "block"
	}
	if y, ok := strings.CutPrefix(w, "yield"); ok {
		return "yields the core" + strings.Replace(y, ":", " ", 1) + ", then blocks"
	}
	return "spins " + w + ", then blocks"
}

// Summary writes the plan on one line for results files:
// "shared/2cpu: 0=app[poll] 1=kernel,syscall,tcp[block]". Where the
// processes on a core wait differently, each has its own brackets.
func (p Plan) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%dcpu:", p.Mode, p.CPUs)
	for _, c := range p.cores() {
		b.WriteByte(' ')
		if c.id < 0 {
			b.WriteString("unpinned=")
		} else {
			fmt.Fprintf(&b, "%d=", c.id)
		}
		if w := sameWait(c.entries); w != "" {
			var names []string
			for _, e := range c.entries {
				names = append(names, e.Process)
			}
			fmt.Fprintf(&b, "%s[%s]", strings.Join(names, ","), w)
			continue
		}
		for i, e := range c.entries {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s[%s]", e.Process, e.Wait)
		}
	}
	return b.String()
}

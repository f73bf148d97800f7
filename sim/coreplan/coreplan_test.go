package coreplan

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/sim/topology"
)

// stack is the process list launch plans for: the kernel, the default
// topology's servers and an application.
var stack = []string{"kernel", "syscall", "tcp", "udp", "ip", "pf", "driver", "app"}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestDerive(t *testing.T) {
	tests := []struct {
		name     string
		procs    []string
		cpus     []int
		mode     string
		summary  string
		alone    []string // processes with a core of their own
		wantLine string   // a line String must contain
	}{
		{
			name: "1 CPU", procs: stack, cpus: seq(1), mode: ModeShared,
			summary:  "shared/1cpu: 0=kernel,syscall,tcp,udp,ip,pf,driver,app[block]",
			wantLine: "  core 0: kernel syscall tcp udp ip pf driver app  (block)",
		},
		{
			name: "2 CPUs", procs: stack, cpus: seq(2), mode: ModeShared, alone: []string{"app"},
			summary:  "shared/2cpu: 0=app[poll] 1=kernel,syscall,tcp,udp,ip,pf,driver[block]",
			wantLine: "core plan: derived for 2 CPUs, shared: servers share cores and block (8 processes)",
		},
		{
			name: "4 CPUs", procs: stack, cpus: seq(4), mode: ModeShared, alone: []string{"app", "tcp", "syscall"},
			summary:  "shared/4cpu: 0=app[poll] 1=tcp[poll] 2=syscall[poll] 3=kernel,udp,ip,pf,driver[block]",
			wantLine: "  core 1: tcp  (poll: spins, never sleeps)",
		},
		{
			name: "8 CPUs", procs: stack, cpus: seq(8), mode: ModeDedicated, alone: stack,
			summary:  "dedicated/8cpu: 0=kernel[poll] 1=syscall[poll] 2=tcp[poll] 3=udp[poll] 4=ip[poll] 5=pf[poll] 6=driver[poll] 7=app[poll]",
			wantLine: "core plan: derived for 8 CPUs, dedicated: every process has a core of its own and polls (8 processes)",
		},
		{
			name: "16 CPUs", procs: stack, cpus: seq(16), mode: ModeDedicated, alone: stack,
			summary:  "dedicated/16cpu: 0=kernel[poll] 1=syscall[poll] 2=tcp[poll] 3=udp[poll] 4=ip[poll] 5=pf[poll] 6=driver[poll] 7=app[poll]",
			wantLine: "  core 7: app  (poll: spins, never sleeps)",
		},
		{
			name: "7 CPUs: all but the kernel", procs: stack, cpus: seq(7), mode: ModeShared,
			alone:    []string{"app", "tcp", "syscall", "ip", "udp", "driver"},
			summary:  "shared/7cpu: 0=app[poll] 1=tcp[poll] 2=syscall[poll] 3=ip[poll] 4=udp[poll] 5=driver[poll] 6=kernel,pf[block]",
			wantLine: "  core 6: kernel pf  (block)",
		},
		{
			name: "sparse CPU ids, unknown process last", procs: []string{"echo", "kernel", "tcp", "app"}, cpus: []int{1, 4, 6},
			mode: ModeShared, alone: []string{"app", "tcp"},
			summary:  "shared/3cpu: 1=app[poll] 4=tcp[poll] 6=echo,kernel[block]",
			wantLine: "  core 6: echo kernel  (block)",
		},
		{
			name: "repeated CPU ids count once", procs: []string{"a", "b"}, cpus: []int{2, 2}, mode: ModeShared,
			summary: "shared/1cpu: 2=a,b[block]",
		},
		{
			name: "no CPUs", procs: []string{"a", "b"}, mode: ModeShared,
			summary:  "shared/0cpu: unpinned=a,b[block]",
			wantLine: "  unpinned: a b  (block)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Derive(tt.procs, tt.cpus)
			if p.Source != SourceDerived || p.Mode != tt.mode {
				t.Errorf("source, mode = %s, %s; want %s, %s", p.Source, p.Mode, SourceDerived, tt.mode)
			}
			if got := p.Summary(); got != tt.summary {
				t.Errorf("Summary() =\n%s\nwant\n%s", got, tt.summary)
			}
			if len(p.Entries) != len(tt.procs) {
				t.Fatalf("%d entries for %d processes", len(p.Entries), len(tt.procs))
			}
			for i, e := range p.Entries {
				if e.Process != tt.procs[i] {
					t.Errorf("entry %d is %s, want %s", i, e.Process, tt.procs[i])
				}
				alone := slices.Contains(tt.alone, e.Process)
				if e.Shared == alone {
					t.Errorf("%s: shared = %v, want %v", e.Process, e.Shared, !alone)
				}
				if want := map[bool]string{true: Poll, false: Block}[alone]; e.Wait != want {
					t.Errorf("%s waits %s, want %s", e.Process, e.Wait, want)
				}
			}
			if !strings.Contains(p.String(), tt.wantLine) {
				t.Errorf("String() =\n%s\nwant a line %q", p, tt.wantLine)
			}
		})
	}
}

func TestDeriveString(t *testing.T) {
	want := `core plan: derived for 2 CPUs, shared: servers share cores and block (8 processes)
  core 0: app  (poll: spins, never sleeps)
  core 1: kernel syscall tcp udp ip pf driver  (block)`
	if got := Derive(stack, seq(2)).String(); got != want {
		t.Fatalf("String() =\n%s\nwant\n%s", got, want)
	}
}

func TestFromTopology(t *testing.T) {
	bench := func(wait string, pc, ec int) *topology.Topology {
		return &topology.Topology{Name: "bench-ipc", Transport: topology.Shm, Wait: wait,
			Processes: []topology.Process{
				{Name: "pinger", Role: "pinger", Cores: []int{pc}, Wait: wait},
				{Name: "echo", Role: "echo", Cores: []int{ec}, Wait: wait},
			},
			Links: []topology.Link{{A: "pinger", B: "echo"}}}
	}
	edit := func(f func(*topology.Topology)) *topology.Topology {
		t := topology.Default()
		f(t)
		return t
	}
	tests := []struct {
		name    string
		top     *topology.Topology
		cpus    []int
		apps    []string
		source  string
		summary string
		wantErr string
	}{
		{
			name: "default on 2 CPUs", top: topology.Default(), cpus: seq(2), apps: []string{"app"}, source: SourceDerived,
			summary: "shared/2cpu: 0=app[poll] 1=kernel,syscall,tcp,udp,ip,pf,driver,nic[block]",
		},
		{
			name: "default on 8 CPUs", top: topology.Default(), cpus: seq(8), apps: []string{"app"}, source: SourceDerived,
			summary: "shared/8cpu: 0=app[poll] 1=tcp[poll] 2=syscall[poll] 3=ip[poll] 4=udp[poll] 5=driver[poll] 6=pf[poll] 7=kernel,nic[block]",
		},
		{
			name: "default without apps", top: topology.Default(), cpus: seq(2), source: SourceDerived,
			summary: "shared/2cpu: 0=tcp[poll] 1=kernel,syscall,udp,ip,pf,driver,nic[block]",
		},
		{
			name: "topology wait overrides the derived one", top: edit(func(t *topology.Topology) { t.Wait = "20us" }),
			cpus: seq(2), apps: []string{"app"}, source: SourceDerived,
			summary: "shared/2cpu: 0=app[20us] 1=kernel,syscall,tcp,udp,ip,pf,driver,nic[20us]",
		},
		{
			name: "topology wait auto", top: edit(func(t *topology.Topology) { t.Wait = "auto" }),
			cpus: seq(2), apps: []string{"app"}, source: SourceDerived,
			summary: "shared/2cpu: 0=app[poll] 1=kernel,syscall,tcp,udp,ip,pf,driver,nic[block]",
		},
		{
			name: "process wait beats topology wait", top: edit(func(t *topology.Topology) {
				t.Wait = "block"
				t.Processes[1].Wait = "poll"
			}),
			cpus: seq(2), apps: []string{"app"}, source: SourceDerived,
			summary: "shared/2cpu: 0=app[block] 1=kernel[block],syscall[block],tcp[poll],udp[block],ip[block],pf[block],driver[block],nic[block]",
		},
		{
			name: "tcp pinned by hand, the rest derived on the other CPUs", top: edit(func(t *topology.Topology) {
				t.Processes[1].Cores = []int{3}
			}),
			cpus: seq(4), apps: []string{"app"}, source: SourceTopology,
			summary: "shared/4cpu: 0=app[poll] 1=syscall[poll] 2=kernel,udp,ip,pf,driver,nic[block] 3=tcp[poll]",
		},
		{
			name: "hand cores shared with derived ones", top: edit(func(t *topology.Topology) {
				for i := range t.Processes {
					t.Processes[i].Cores = []int{0, 1}
				}
			}),
			cpus: seq(2), apps: []string{"app"}, source: SourceTopology,
			summary: "shared/2cpu: 0=kernel,syscall,tcp,udp,ip,pf,driver,nic[block] 1=syscall,tcp,udp,ip,pf,driver,nic,app[block]",
		},
		{
			name: "bench pinned poll", top: bench("poll", 0, 1), cpus: seq(2), apps: []string{"app"}, source: SourceTopology,
			summary: "shared/2cpu: 0=kernel,pinger[poll] 1=echo,app[poll]",
		},
		{
			name: "bench same core", top: bench("block", 1, 1), cpus: []int{0, 1}, apps: []string{"app"}, source: SourceTopology,
			summary: "shared/2cpu: 0=kernel,app[block] 1=pinger,echo[block]",
		},
		{
			name: "app listed in the topology once", top: &topology.Topology{Transport: topology.Shm,
				Processes: []topology.Process{{Name: "app", Role: "app"}, {Name: "tcp"}}, Links: []topology.Link{{A: "app", B: "tcp"}}},
			cpus: seq(3), apps: []string{"app", "tcp2"}, source: SourceDerived,
			summary: "shared/3cpu: 0=app[poll] 1=tcp[poll] 2=kernel,tcp2[block]",
		},
		{
			name: "core not planned for", top: edit(func(t *topology.Topology) { t.Processes[2].Cores = []int{1, 5} }),
			cpus: seq(2), wantErr: "coreplan: topology default: process udp: core 5 is not among the CPUs planned for (0-1)",
		},
		{
			name: "no CPUs", top: topology.Default(), wantErr: "no CPUs to plan for",
		},
		{
			name: "invalid topology", top: edit(func(t *topology.Topology) { t.Links[0].B = "nosuch" }), cpus: seq(2),
			wantErr: `coreplan: topology default: link syscall nosuch: no process is called "nosuch"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := FromTopology(tt.top, tt.cpus, tt.apps...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromTopology() = %v, %v; want error %q", p, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromTopology() = %v", err)
			}
			if p.Source != tt.source {
				t.Errorf("source %s, want %s", p.Source, tt.source)
			}
			if got := p.Summary(); got != tt.summary {
				t.Errorf("Summary() =\n%s\nwant\n%s", got, tt.summary)
			}
			if p.Entries[0].Process != "kernel" {
				t.Errorf("first entry %s, want kernel", p.Entries[0].Process)
			}
		})
	}
}

func TestFromTopologyKeepsHandCores(t *testing.T) {
	top := topology.Default()
	top.Processes[0].Cores = []int{1}
	p, err := FromTopology(top, seq(2))
	if err != nil {
		t.Fatal(err)
	}
	p.Entries[1].Cores[0] = 9
	if top.Processes[0].Cores[0] != 1 {
		t.Fatal("the plan shares its cores slice with the topology")
	}
}

func TestLookup(t *testing.T) {
	p := Derive(stack, seq(2))
	tests := []struct {
		name   string
		want   Entry
		wantOK bool
	}{
		{name: "app", want: Entry{Process: "app", Cores: []int{0}, Wait: Poll}, wantOK: true},
		{name: "kernel", want: Entry{Process: "kernel", Cores: []int{1}, Wait: Block, Shared: true}, wantOK: true},
		{name: "nosuch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := p.Lookup(tt.name)
			if ok != tt.wantOK || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Lookup(%q) = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestStringMixedWaits(t *testing.T) {
	top := topology.Default()
	top.Processes[1].Wait = "poll"
	top.Processes[2].Wait = "50us"
	p, err := FromTopology(top, seq(2), "app")
	if err != nil {
		t.Fatal(err)
	}
	s := p.String()
	for _, want := range []string{
		"core plan: derived for 2 CPUs, shared: servers share cores, and some spin on a shared core (9 processes)",
		"  core 1: kernel syscall tcp udp ip pf driver nic  (kernel block; syscall block; tcp poll: spins, never sleeps; udp spins 50us, then blocks;",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("String() =\n%s\nwant it to contain %q", s, want)
		}
	}
}

func TestStringOneCPU(t *testing.T) {
	want := `core plan: derived for 1 CPU, shared: servers share cores and block (2 processes)
  core 0: kernel app  (block)`
	if got := Derive([]string{"kernel", "app"}, seq(1)).String(); got != want {
		t.Fatalf("String() =\n%s\nwant\n%s", got, want)
	}
	want = "core plan: derived for 3 CPUs, dedicated: every process has a core of its own and polls (1 process)\n  core 5: app  (poll: spins, never sleeps)"
	if got := Derive([]string{"app"}, []int{5, 6, 7}).String(); got != want {
		t.Fatalf("String() =\n%s\nwant\n%s", got, want)
	}
}

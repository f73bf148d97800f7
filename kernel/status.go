package kernel

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/internal/sandbox"
)

// Files the kernel keeps in its state directory while it runs.
const (
	// StatusFile describes every process of the run (Status, as JSON).
	StatusFile = "status.json"
	// TargetsFile lists every process's metrics endpoint for Prometheus
	// file-based service discovery, with the labels LabelProcess,
	// LabelRole and LabelRun.
	TargetsFile = "targets.json"
)

// Labels the targets file gives every series scraped from a process: its
// name, its role and the run. They begin with "newtsim_", which no
// metric's own label does (docs/METRICS.md), so that a Prometheus never
// renames a metric's label to exported_NAME for clashing with them.
const (
	LabelProcess = "newtsim_process"
	LabelRole    = "newtsim_role"
	LabelRun     = "newtsim_run"
)

// Status is what status.json says about a run.
type Status struct {
	Run       string       `json:"run"`
	Topology  string       `json:"topology"`
	Transport string       `json:"transport"`
	Plan      string       `json:"core_plan"`
	Ready     bool         `json:"ready"` // every server has registered
	Processes []ProcStatus `json:"processes"`
}

// ProcStatus describes one process of a run, the kernel first.
type ProcStatus struct {
	Name        string `json:"name"`
	Role        string `json:"role"`
	Slot        int    `json:"slot"`
	Endpoint    string `json:"endpoint"`
	Pid         int    `json:"pid"`
	Cores       []int  `json:"cores"`
	Wait        string `json:"wait"`
	Alive       bool   `json:"alive"`
	Ready       bool   `json:"ready"`
	MetricsPort int    `json:"metrics_port"`
	Restarts    int    `json:"restarts"`
	// UID is the user it serves as (docs/SANDBOX.md): its own with the
	// sandbox on, else the kernel's (0).
	UID int `json:"uid"`
	// SetupRoot says it starts as root for its set-up and drops to UID
	// before it serves (a nic on a TAP device).
	SetupRoot bool `json:"setup_root,omitempty"`
	// Filter names its seccomp filter, which allows Syscalls system
	// calls; "" with the sandbox off.
	Filter   string `json:"filter,omitempty"`
	Syscalls int    `json:"filter_syscalls,omitempty"`
}

// ReadStatus reads the status file in dir.
func ReadStatus(dir string) (*Status, error) {
	b, err := os.ReadFile(filepath.Join(dir, StatusFile))
	if err != nil {
		return nil, fmt.Errorf("kernel: read status: %w", err)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("kernel: parse %s: %w", StatusFile, err)
	}
	return &s, nil
}

func (k *kern) status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	sp := &k.c.Spec
	s := Status{Run: k.c.Run, Topology: sp.Topology, Transport: sp.Transport, Plan: sp.Plan, Ready: true}
	s.Processes = append(s.Processes, ProcStatus{Name: "kernel", Role: "kernel", Endpoint: k.core.Entry(0).EP.String(),
		Pid: os.Getpid(), Cores: sp.KernelCores, Wait: "block", Alive: true, Ready: true, MetricsPort: k.metrics.Port})
	for _, p := range k.procs[1:] {
		ps := ProcStatus{Name: p.spec.Name, Role: p.spec.Role, Slot: p.slot, Endpoint: p.entry.EP.String(),
			Cores: p.spec.Cores, Wait: p.spec.Wait, Alive: p.entry.Alive, Ready: p.entry.Ready,
			MetricsPort: p.entry.Port, Restarts: k.core.Restarts(p.slot)}
		if sb := sp.Sandbox; sb.On() {
			ps.UID, ps.SetupRoot, ps.Filter = sb.User(p.slot), p.spec.Privileged, p.spec.Filter
			if f, ok := sandbox.Lookup(p.spec.Filter); ok {
				ps.Syscalls = f.Count()
				if f.Root {
					ps.UID, ps.SetupRoot = 0, false
				}
			}
		}
		if p.cmd != nil {
			ps.Pid = p.cmd.Process.Pid
		}
		s.Ready = s.Ready && ps.Ready
		s.Processes = append(s.Processes, ps)
	}
	return s
}

// writeStatus rewrites status.json and targets.json, each atomically.
func (k *kern) writeStatus() {
	s := k.status()
	if err := atomicfile.WriteJSON(filepath.Join(k.c.StateDir, StatusFile), s); err != nil {
		k.c.Log.Printf("status: %v", err)
	}
	var ts []prom.Target
	for _, p := range s.Processes {
		if p.MetricsPort != 0 {
			ts = append(ts, prom.Target{Addr: "127.0.0.1:" + strconv.Itoa(p.MetricsPort),
				Labels: map[string]string{LabelProcess: p.Name, LabelRole: p.Role, LabelRun: s.Run}})
		}
	}
	if err := prom.WriteTargets(filepath.Join(k.c.StateDir, TargetsFile), ts); err != nil {
		k.c.Log.Printf("targets: %v", err)
	}
	if s.Ready && !k.ready {
		k.ready = true
		k.c.Log.Printf("all %d servers registered", len(s.Processes)-1)
	}
}

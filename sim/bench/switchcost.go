package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/newtsim/newtsim/sim/bench/probe"
)

// RingMembers is the ring the switch rows measure: as many members as the
// simulated host runs processes on its shared core in a two-CPU plan
// (kernel, syscall, tcp, udp, ip, pf, driver, nic and the application).
const RingMembers = 9

// SwitchHop is what a hop between two of the stack's processes costs on
// one core of this machine, in the same run: a token passed around a ring
// of Members processes, each asleep on a futex until the one before it
// wakes it (a wake-up, a switch and a sleep per hop), against the same
// ring of threads of one process, which switches no address space. The
// CPU time per hop is every member's together, over the hops: it is what
// the floor is made of, as the server side's CPU per request is, and
// other work on the core does not inflate it as it does the wall time.
type SwitchHop struct {
	Members         int     `json:"members"`
	Core            int     `json:"core"`
	ProcessNS       float64 `json:"process_ns"`     // median wall ns per hop between processes
	ProcessCPUNS    float64 `json:"process_cpu_ns"` // CPU ns per hop between processes
	ThreadNS        float64 `json:"thread_ns"`      // median wall ns per hop between threads of one process
	ThreadCPUNS     float64 `json:"thread_cpu_ns"`  // CPU ns per hop between threads
	ProcessSwitches float64 `json:"process_switches_per_hop"`
}

// PerSwitchNS is the CPU time of the ring of processes per context switch
// its members made: the hop's CPU where each hop is one switch, and on a
// core that other work shares (whose preemptions add switches to the
// members as they do to the stack's processes) the same measure as a
// request's switches.
func (h SwitchHop) PerSwitchNS() float64 {
	if h.ProcessSwitches <= 0 {
		return h.ProcessCPUNS
	}
	return h.ProcessCPUNS / h.ProcessSwitches
}

// ringProcs runs a ring of n processes on core and leaves the lead's
// sample (per hop) in out.
func ringProcs(out string, core, n int, log *os.File) error {
	f, err := probe.RingFile()
	if err != nil {
		return err
	}
	defer f.Close()
	var members []*exec.Cmd
	stop := func() {
		for _, m := range members {
			m.Process.Kill()
			m.Wait()
		}
	}
	for i := 1; i < n; i++ {
		cmd, err := startPeer(core, log, []*os.File{f}, probe.PeerOptions{Mode: "ring-member", Size: n, Index: i, Out: out})
		if err != nil {
			stop()
			return fmt.Errorf("ring member %d: %w", i, err)
		}
		members = append(members, cmd)
	}
	lead, err := startPeer(core, log, []*os.File{f}, probe.PeerOptions{Mode: "ring-lead", Size: n, Out: out})
	if err != nil {
		stop()
		return fmt.Errorf("ring lead: %w", err)
	}
	if err := lead.Wait(); err != nil {
		stop()
		return fmt.Errorf("ring lead: %w", err)
	}
	// The lead stopped the ring: each member ends within its sleep's
	// bound.
	var errs []error
	for i, m := range members {
		if err := m.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("ring member %d: %w", i+1, err))
		}
	}
	return errors.Join(errs...)
}

// ringThreads runs a ring of n threads of one process on core and leaves
// its sample (per hop) in out.
func ringThreads(out string, core, n int, log *os.File) error {
	cmd, err := startPeer(core, log, nil, probe.PeerOptions{Mode: "ring-threads", Size: n, Out: out})
	if err != nil {
		return err
	}
	return cmd.Wait()
}

// measureSwitchHop measures both rings of RingMembers on core.
func measureSwitchHop(core int, log *os.File) (*SwitchHop, error) {
	dir, err := os.MkdirTemp("", "newtsim-ring-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	h := &SwitchHop{Members: RingMembers, Core: core}
	for i, run := range []func(out string, core, n int, log *os.File) error{ringProcs, ringThreads} {
		out := filepath.Join(dir, "ring.json")
		os.Remove(out)
		if err := run(out, core, RingMembers, log); err != nil {
			return nil, err
		}
		var res probe.RingResult
		if err := awaitJSON(out, 5*time.Second, nil, &res); err != nil {
			return nil, err
		}
		if i == 0 {
			h.ProcessNS, h.ProcessCPUNS, h.ProcessSwitches = res.NS, res.CPUNSPerHop, res.SwitchesPerHop
		} else {
			h.ThreadNS, h.ThreadCPUNS = res.NS, res.CPUNSPerHop
		}
	}
	return h, nil
}

// setSwitchFloors gives every row of the simulated host what its context
// switches cost at the measured hop: the floor the split into processes
// puts under its CPU per request on this machine.
func (r *HTTPReport) setSwitchFloors() {
	for i := range r.Rows {
		if row := &r.Rows[i]; r.isHost(row.Server) {
			row.SwitchFloorUS = r.SwitchHop.floorUS(row.SwitchesPerRequest)
		}
	}
}

// floorUS is what switches context switches cost at the hop h, in us of
// CPU; nil where h was not measured or there are no switches.
func (h *SwitchHop) floorUS(switches float64) *float64 {
	if h == nil || h.PerSwitchNS() <= 0 || switches <= 0 {
		return nil
	}
	v := switches * h.PerSwitchNS() / 1e3
	return &v
}

// isHost says whether the named server runs on the simulated host.
func (r *HTTPReport) isHost(name string) bool {
	for _, s := range r.Servers {
		if s.Name == name {
			return s.Kind == sideHost
		}
	}
	return false
}

// switchTable prints what the simulated host's context switches cost, per
// cell, beside its CPU per request.
func (r *HTTPReport) switchTable() string {
	h := r.SwitchHop
	if h == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nwhat the split into processes costs on this machine: a hop between processes on CPU %d "+
		"(a wake-up, a switch and a sleep; a token around a ring of %d processes, measured before the matrix) took "+
		"%.1f us of CPU and %.2f context switches (%.1f us of wall time), %.1f us of CPU a switch; between %d threads "+
		"of one process %.1f us of CPU (%.1f wall), %.1fx less. Every context switch of the simulated host's processes "+
		"is such a hop, so its switches per request times the CPU a switch is what the design's separate processes "+
		"cost per request here before any of them does its work:\n\n",
		h.Core, h.Members, h.ProcessCPUNS/1e3, h.ProcessSwitches, h.ProcessNS/1e3, h.PerSwitchNS()/1e3, h.Members,
		h.ThreadCPUNS/1e3, h.ThreadNS/1e3, h.ProcessCPUNS/max(h.ThreadCPUNS, 1))
	b.WriteString("| workload | server | context switches per request | switch floor us per request | server CPU us per request | floor's share |\n|---|---|---:|---:|---:|---:|\n")
	for _, row := range r.Rows {
		if row.SwitchFloorUS == nil {
			continue
		}
		share := 0.0
		if row.ServerCPUUSPerRequest > 0 {
			share = *row.SwitchFloorUS / row.ServerCPUUSPerRequest
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %.1f | %.1f | %.0f%% |\n", row.Workload, row.Server, row.SwitchesPerRequest,
			*row.SwitchFloorUS, row.ServerCPUUSPerRequest, 100*share)
	}
	return b.String()
}

// lighttpdTargets are the shares of lighttpd's requests per second that
// the simulated host's backends are to serve (issue 11): httpd-exposed
// half on every workload of ten requests a connection and on 512kB-1rpc,
// httpd-message-shm a fifth on 20B-10rpc.
var lighttpdTargets = []struct {
	workload, server string
	share            float64
}{
	{"20B-10rpc", "httpd-exposed", 0.5},
	{"11kB-10rpc", "httpd-exposed", 0.5},
	{"512kB-1rpc", "httpd-exposed", 0.5},
	{"20B-10rpc", "httpd-message-shm", 0.2},
}

// lighttpdChecks checks the simulated host against lighttpd where both
// were measured. Where a target is missed and the cell has a switch floor,
// a note sets the floor against the CPU a request may take at the target
// on the one core the server side has: the share of the gap that the
// design's switches hold on this machine, whatever the servers' own work.
func (r *HTTPReport) lighttpdChecks() {
	for _, t := range lighttpdTargets {
		row, ref := r.row(t.workload, t.server), r.row(t.workload, "lighttpd")
		if row == nil || ref == nil || row.NotInstalled != "" || ref.NotInstalled != "" {
			continue
		}
		v := 0.0
		if ref.ReqPerS > 0 {
			v = row.ReqPerS / ref.ReqPerS
		}
		met := ref.ReqPerS > 0 && v >= t.share
		r.Checks = append(r.Checks, Check{Name: fmt.Sprintf("%s: %s req/s / lighttpd req/s", t.workload, t.server),
			Value: v, Target: fmt.Sprintf(">= %g", t.share), Met: met})
		if met || row.SwitchFloorUS == nil || ref.ReqPerS <= 0 {
			continue
		}
		budget := 1e6 / (t.share * ref.ReqPerS)
		r.Notes = append(r.Notes, fmt.Sprintf("%s on %s: at %g of lighttpd's %.0f req/s, the server side's one core "+
			"has %.1f us of CPU a request; this cell's switch floor alone is %.1f us (%.2f switches a request x %.1f us "+
			"of CPU a switch between processes), its CPU per request %.1f us", t.workload, t.server, t.share, ref.ReqPerS,
			budget, *row.SwitchFloorUS, row.SwitchesPerRequest, r.SwitchHop.PerSwitchNS()/1e3, row.ServerCPUUSPerRequest))
	}
}

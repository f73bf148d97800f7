package launch

import (
	"slices"

	"github.com/newtsim/newtsim/internal/sandbox"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/coreplan"
	"github.com/newtsim/newtsim/sim/topology"
)

// Resolve gives the kernel what it runs for a topology under a core plan:
// every process with its role (its name where the topology gives none),
// its cores and wait policy from the plan, its routes
// towards the processes it is not linked to, the links, and the kernel
// pinned to kernelCores; slots is the ring size (0: the kernel's default).
func Resolve(t *topology.Topology, plan coreplan.Plan, kernelCores []int, slots int) kernel.Spec {
	s := kernel.Spec{Topology: t.Name, Transport: string(t.Transport), Slots: slots,
		Plan: plan.Summary(), KernelCores: kernelCores}
	for _, p := range t.Processes {
		e, _ := plan.Lookup(p.Name)
		kp := kernel.Proc{Name: p.Name, Role: p.Role, Cores: e.Cores, Wait: e.Wait, Args: p.Args}
		if kp.Role == "" {
			kp.Role = p.Name
		}
		kp.Filter = FilterOf(kp.Role)
		for _, q := range t.Processes {
			if hop, ok := t.NextHop(p.Name, q.Name); ok && hop != q.Name {
				if kp.Routes == nil {
					kp.Routes = map[string]string{}
				}
				kp.Routes[q.Name] = hop
			}
		}
		s.Procs = append(s.Procs, kp)
	}
	for _, l := range t.Links {
		s.Links = append(s.Links, kernel.Link{A: l.A, B: l.B})
	}
	return s
}

// stackRoles are the roles of the network stack and its diagnostics,
// which run under the server filter; every other role is an application
// or a benchmark's measuring side.
var stackRoles = []string{"nic", "driver", "pf", "ip", "udp", "tcp", "syscall", "echo", "prober", "hostile"}

// FilterOf names the seccomp filter a role runs under when the run is
// sandboxed (docs/SANDBOX.md): the stack's servers may not open Linux
// sockets of their own; applications may.
func FilterOf(role string) string {
	switch {
	case slices.Contains(stackRoles, role):
		return sandbox.FilterServer
	case role == "eagain": // counts its own system calls with a perf event
		return sandbox.FilterProbe
	}
	return sandbox.FilterApp
}

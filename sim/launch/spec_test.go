package launch

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/topology"
)

// TestResolve: the kernel's Spec carries the plan's cores and waits, and
// every server boots with the peers, slots and routes of the topology.
func TestResolve(t *testing.T) {
	top := topology.Default()
	top.Processes = append(top.Processes, topology.Process{Name: "web", Args: []string{"--port", "80"}})
	top.Links = append(top.Links, topology.Link{A: "web", B: "syscall"})
	plan, _, err := Plan(top, []int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	s := Resolve(top, plan, []int{7}, 64)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Topology != "default" || s.Transport != kernel.TransportShm || s.Slots != 64 ||
		s.Plan != plan.Summary() || !slices.Equal(s.KernelCores, []int{7}) {
		t.Fatalf("spec = %+v", s)
	}
	for slot, p := range top.Processes {
		slot++
		kp := s.Procs[slot-1]
		e, _ := plan.Lookup(p.Name)
		role := p.Role
		if role == "" {
			role = p.Name
		}
		if kp.Name != p.Name || kp.Role != role || !slices.Equal(kp.Cores, e.Cores) || kp.Wait != e.Wait ||
			!slices.Equal(kp.Args, p.Args) {
			t.Errorf("process %d = %+v; plan %+v, topology %+v", slot, kp, e, p)
		}
		o, err := s.Boot("0a1b2c3d", slot, ipc.MakeEndpoint(slot, 1))
		if err != nil {
			t.Fatal(err)
		}
		peers := map[string]int{}
		for _, q := range top.Peers(p.Name) {
			peers[q] = top.Slot(q)
		}
		routes := map[string]string{}
		for _, q := range top.Processes {
			if hop, ok := top.NextHop(p.Name, q.Name); ok && hop != q.Name {
				routes[q.Name] = hop
			}
		}
		if !maps.Equal(o.Peers, peers) || !maps.Equal(o.Routes, routes) || len(o.Procs) != len(top.Processes) ||
			o.Procs[p.Name] != slot {
			t.Errorf("%s boots with peers %v routes %v procs %v; want peers %v routes %v", p.Name,
				o.Peers, o.Routes, o.Procs, peers, routes)
		}
	}
	if got := s.Procs[len(s.Procs)-1].Routes["nic"]; got != "syscall" {
		t.Errorf("web reaches nic via %q, want syscall", got)
	}
	if !reflect.DeepEqual(s.Links[len(s.Links)-1], kernel.Link{A: "web", B: "syscall"}) {
		t.Errorf("links = %v", s.Links)
	}
}

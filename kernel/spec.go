package kernel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/internal/sandbox"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/boot"
)

// Transports a Spec may name.
const (
	// TransportShm is user-space channels: rings in shared memory, which
	// the kernel creates.
	TransportShm = "shm"
	// TransportKernel is kernel messages: every message goes through the
	// kernel, which checks the sender's privileges.
	TransportKernel = "kernel"
)

// Spec is what a kernel runs, resolved by the launcher: every process with
// its role, cores and wait policy, who may send to whom, and the transport.
// The kernel plans nothing; it starts what the Spec says.
type Spec struct {
	// Topology names the topology, for the status file.
	Topology string `json:"topology"`
	// Transport is TransportShm or TransportKernel.
	Transport string `json:"transport"`
	// Slots is the number of messages per ring (a power of two); 0: 256.
	Slots int `json:"slots,omitempty"`
	// Plan sums up the core plan, for the status file.
	Plan string `json:"core_plan"`
	// KernelCores are the cores the kernel process is pinned to, for the
	// status file.
	KernelCores []int `json:"kernel_cores"`
	// Procs are the servers in slot order: Procs[i] has slot i+1.
	Procs []Proc `json:"processes"`
	// Links say who may send to whom, besides the kernel: in both
	// directions.
	Links []Link `json:"links"`
	// ServiceTimes has every server time its role's handling of each
	// message (boot.Options.ServiceTimes).
	ServiceTimes bool `json:"service_times,omitempty"`
	// Trace turns on every server's trace recorder (boot.Options.Trace).
	Trace bool `json:"trace,omitempty"`
	// Sandbox is the run's id range: each process runs as a user of its
	// own under its seccomp filter (docs/SANDBOX.md). Zero: off, every
	// process runs as the kernel does, unfiltered.
	Sandbox sandbox.IDs `json:"sandbox"`
}

// Proc is one server process of a Spec.
type Proc struct {
	// Name is unique in the Spec, and not "kernel".
	Name string `json:"name"`
	// Role is what the process runs.
	Role string `json:"role"`
	// Cores are the cores it is pinned to; nil: not pinned.
	Cores []int `json:"cores"`
	// Wait is its wait policy as ipc.ParseWaitPolicy reads it.
	Wait string `json:"wait"`
	// Args are its role's own arguments.
	Args []string `json:"args,omitempty"`
	// Routes give the next hop towards each process it is not linked to
	// but must reach.
	Routes map[string]string `json:"routes,omitempty"`
	// Filter names its seccomp filter (sandbox.Lookup) when the run is
	// sandboxed.
	Filter string `json:"filter,omitempty"`
	// Privileged starts it as root, for a set-up that needs it (a nic
	// that opens a TAP device); it drops to its own ids itself before it
	// serves.
	Privileged bool `json:"privileged,omitempty"`
}

// Link joins two processes, which may then send to each other.
type Link struct {
	A string `json:"a"`
	B string `json:"b"`
}

// Slot returns the endpoint slot of the named server, or -1.
func (s *Spec) Slot(name string) int {
	for i, p := range s.Procs {
		if p.Name == name {
			return i + 1
		}
	}
	return -1
}

// Validate checks that the kernel can run s: a known transport, distinct
// names that fit the endpoint table, wait policies it can parse, and links
// and routes between its processes.
func (s *Spec) Validate() error {
	if s.Transport != TransportShm && s.Transport != TransportKernel {
		return fmt.Errorf("kernel: spec: transport %q: want %s or %s", s.Transport, TransportShm, TransportKernel)
	}
	if len(s.Procs) >= ipc.MaxSlots {
		return fmt.Errorf("kernel: spec: %d processes; at most %d fit", len(s.Procs), ipc.MaxSlots-1)
	}
	known := func(n string) bool { return s.Slot(n) > 0 }
	for i, p := range s.Procs {
		if p.Name == "" || p.Name == "kernel" || s.Slot(p.Name) != i+1 {
			return fmt.Errorf("kernel: spec: process %d: name %q is empty, reserved or taken", i+1, p.Name)
		}
	}
	if err := s.Sandbox.Check(); err != nil {
		return fmt.Errorf("kernel: spec: %w", err)
	}
	for _, p := range s.Procs {
		if _, ok := sandbox.Lookup(p.Filter); s.Sandbox.On() && !ok {
			return fmt.Errorf("kernel: spec: %s: unknown seccomp filter %q", p.Name, p.Filter)
		}
		if _, err := ipc.ParseWaitPolicy(p.Wait); err != nil {
			return fmt.Errorf("kernel: spec: %s: %w", p.Name, err)
		}
		for dst, hop := range p.Routes {
			if !known(dst) || !known(hop) {
				return fmt.Errorf("kernel: spec: %s: route to %q via %q names an unknown process", p.Name, dst, hop)
			}
		}
	}
	for _, l := range s.Links {
		if !known(l.A) || !known(l.B) || l.A == l.B {
			return fmt.Errorf("kernel: spec: link %s-%s: want two distinct processes of the spec", l.A, l.B)
		}
	}
	return nil
}

// peers returns the processes linked to name, by slot.
func (s *Spec) peers(name string) map[string]int {
	m := map[string]int{}
	for _, l := range s.Links {
		switch name {
		case l.A:
			m[l.B] = s.Slot(l.B)
		case l.B:
			m[l.A] = s.Slot(l.A)
		}
	}
	return m
}

// Boot returns the options the server in slot is started with, as the
// incarnation ep of run. s must be valid.
func (s *Spec) Boot(run string, slot int, ep ipc.Endpoint) (boot.Options, error) {
	if slot < 1 || slot > len(s.Procs) {
		return boot.Options{}, fmt.Errorf("kernel: spec: no process in slot %d", slot)
	}
	p := s.Procs[slot-1]
	w, err := ipc.ParseWaitPolicy(p.Wait)
	if err != nil {
		return boot.Options{}, fmt.Errorf("kernel: %s: %w", p.Name, err)
	}
	o := boot.Options{Name: p.Name, Role: p.Role, Endpoint: ep, Run: run, Transport: s.Transport,
		Wait: w, Cores: p.Cores, Args: p.Args, Peers: s.peers(p.Name),
		Procs: map[string]int{}, Routes: map[string]string{}, Roles: map[string]string{}, ServiceTimes: s.ServiceTimes, Trace: s.Trace}
	if s.Sandbox.On() {
		o.Sandbox, o.Filter = s.Sandbox.Base, p.Filter
	}
	for i, q := range s.Procs {
		o.Procs[q.Name] = i + 1
		o.Roles[q.Name] = q.Role
	}
	for dst, hop := range p.Routes {
		o.Routes[dst] = hop
	}
	return o, nil
}

// WriteSpec writes s to path as JSON, for ReadSpec.
func WriteSpec(path string, s *Spec) error {
	if err := atomicfile.WriteJSON(path, s); err != nil {
		return fmt.Errorf("kernel: write spec: %w", err)
	}
	return nil
}

// ReadSpec reads the Spec WriteSpec wrote to path and validates it. Fields
// it does not know are an error: the launcher and kernel are one binary.
func ReadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kernel: read spec: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var s Spec
	if err := d.Decode(&s); err != nil {
		return nil, fmt.Errorf("kernel: parse spec %s: %w", path, err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

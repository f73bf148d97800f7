// Package topology describes a newtsim system: which processes run, what
// each runs (its role), the cores and wait policy given to any of them by
// hand, the transport their messages travel on, and the links saying who
// may send to whom.
//
// A topology is written in a small line-oriented file format, read by Parse
// and written by Format; docs/TOPOLOGY.md describes it. The kernel is not
// listed: it is implicit, in slot 0, and may exchange messages with every
// process.
package topology

// Transport is how the processes of a topology exchange messages.
type Transport string

// The transports.
const (
	// Shm is user-space channels: rings in shared memory.
	Shm Transport = "shm"
	// Kernel is kernel messages: every message goes through the kernel
	// process, which checks the sender's privileges.
	Kernel Transport = "kernel"
)

// KernelName is the name of the implicit kernel process.
const KernelName = "kernel"

// MaxProcesses is the most processes a topology may list: with the kernel
// they fill the 64 endpoint slots.
const MaxProcesses = 63

// Process is one process of a topology.
type Process struct {
	// Name is unique in the topology: [a-z0-9-]{1,32}, and not "kernel".
	Name string
	// Role is what the process runs: "syscall", "tcp", "udp", "ip", "pf",
	// "driver", "app", "echo", "pinger", ...; any [a-z0-9-]{1,32}.
	// Validate does not restrict it to the roles newtsim knows. "" means
	// the same as Name.
	Role string
	// Cores are the cores given by hand; nil: from the core plan.
	Cores []int
	// Wait is the wait policy given by hand: "block", "poll" or a Go
	// duration such as "20us" (spin that long, then block); "" (or "auto"):
	// from the core plan.
	Wait string
	// Args are extra arguments for the process, if any. Each must be a
	// single field of the file format: not empty, without white space or
	// '#'.
	Args []string
}

// Link joins two processes, which may then send to each other.
type Link struct{ A, B string }

// Topology is a whole system, less the implicit kernel.
type Topology struct {
	// Name names the topology in results; optional.
	Name string
	// Transport carries the messages between processes.
	Transport Transport
	// Wait is the wait policy of every process without one of its own:
	// "block", "poll" or a duration; "" (or "auto") lets the core plan
	// choose.
	Wait string
	// Processes are in slot order: Processes[i] has slot i+1.
	Processes []Process
	// Links say who may send to whom, besides the kernel.
	Links []Link
}

// Default returns the NewtOS network stack: syscall, tcp, udp, ip, pf and
// driver servers, on shared-memory channels, each linked to its
// neighbours on the packet path.
func Default() *Topology {
	t := &Topology{Name: "default", Transport: Shm}
	for _, n := range []string{"syscall", "tcp", "udp", "ip", "pf", "driver", "nic"} {
		t.Processes = append(t.Processes, Process{Name: n, Role: n})
	}
	t.Links = []Link{
		{"syscall", "tcp"}, {"syscall", "udp"}, {"tcp", "ip"},
		{"udp", "ip"}, {"ip", "pf"}, {"pf", "driver"}, {"driver", "nic"},
	}
	return t
}

// Process returns the process called name. The kernel is not one of them.
func (t *Topology) Process(name string) (Process, bool) {
	if i := t.index(name); i >= 0 {
		return t.Processes[i], true
	}
	return Process{}, false
}

// Slot returns the endpoint slot of the process called name: 0 for the
// kernel, i+1 for Processes[i], -1 for a name the topology does not know.
func (t *Topology) Slot(name string) int {
	if name == KernelName {
		return 0
	}
	if i := t.index(name); i >= 0 {
		return i + 1
	}
	return -1
}

// index returns the index of the process called name in t.Processes, or -1.
func (t *Topology) index(name string) int {
	for i, p := range t.Processes {
		if p.Name == name {
			return i
		}
	}
	return -1
}

// Peers returns the names of the processes linked to name, in topology
// order, each once. The kernel's peers are all the processes.
func (t *Topology) Peers(name string) []string {
	var peers []string
	for _, p := range t.Processes {
		if p.Name != name && t.linked(name, p.Name) || name == KernelName {
			peers = append(peers, p.Name)
		}
	}
	return peers
}

// CanSend reports whether from may send to to: when a link joins them (in
// either direction), or when either is the kernel.
func (t *Topology) CanSend(from, to string) bool {
	return from == KernelName || to == KernelName || t.linked(from, to)
}

// linked reports whether a link joins a and b.
func (t *Topology) linked(a, b string) bool {
	for _, l := range t.Links {
		if l.A == a && l.B == b || l.A == b && l.B == a {
			return true
		}
	}
	return false
}

// NextHop returns the peer of from on a shortest path of links to to, and
// false when no path joins them. Messages that must reach a process they
// are not linked to (a buffer going back to its owner) travel hop by hop
// along these paths; ties go to the peer listed first.
func (t *Topology) NextHop(from, to string) (string, bool) {
	if from == to {
		return "", false
	}
	// Breadth-first from to, so the first peer of from reached is on a
	// shortest path.
	dist := map[string]int{to: 0}
	queue := []string{to}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, p := range t.Peers(n) {
			if _, seen := dist[p]; !seen && n != KernelName {
				dist[p] = dist[n] + 1
				queue = append(queue, p)
			}
		}
	}
	best, bestDist := "", -1
	for _, p := range t.Peers(from) {
		if d, ok := dist[p]; ok && (bestDist < 0 || d < bestDist) {
			best, bestDist = p, d
		}
	}
	return best, bestDist >= 0
}

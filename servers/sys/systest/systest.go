// Package systest runs one server's role in a test, without a kernel,
// shared memory or other processes: the server is a *sys.Server built by
// sys.New, as Main builds it, on an in-memory transport (Transport), a fake
// kernel connection (Kernel) and in-memory buffer pools (pool.NewMemory),
// one per process of a pretend run. A test queues messages from the run's
// other processes, lets the server's own loop handle them, and looks at
// what it sent, to its peers and to the kernel, and at its metrics.
//
// The messages a test sends and reads are built and opened by the small
// functions in messages.go, and nowhere else.
package systest

import (
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/boot"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/servers/sys"
)

// Buffers is the number of buffers in each process's in-memory pool.
const Buffers = 64

// Config describes the server under test and the pretend run around it.
type Config struct {
	// Name is the server's name, a key of Procs.
	Name string
	// Role names the server's role (metrics carry it); Name if empty.
	Role string
	// Procs is every process of the run, the server included, by slot
	// (1 to ipc.MaxSlots-1). Each has an in-memory pool, id its slot,
	// every process of the run a reader.
	Procs map[string]int
	// Peers are the processes the server is linked to.
	Peers []string
	// Routes is the next hop towards each process that is not a peer.
	Routes map[string]string
	// Roles gives the role of a process whose name is not its role (a
	// far nic called "far"): what the type table lets it send
	// (ipc.MaySend). A process not named here has its name for role.
	Roles map[string]string
	// Args are the role's own arguments.
	Args []string
	// Generation is the server's incarnation, as the kernel counts
	// restarts: 2 for a server restarted once. Zero is 1; every other
	// process is in its first.
	Generation int
}

// Harness is a server under test: its sys.Server, its role's handler, and
// the pretend run around it.
type Harness struct {
	// S is the server, as its role sees it.
	S *sys.Server
	// Handler is the role's handler, built by its Starter.
	Handler sys.Handler
	// T is the server's transport; K its kernel connection.
	T *Transport
	K *Kernel

	tb        testing.TB
	name      string
	endpoints map[string]ipc.Endpoint
	pools     map[string]*pool.Pool
}

var runs atomic.Uint64

// New builds the server c describes and its role's handler with start; a
// role with work of its own at the start (a sys.Runner) does it, up to
// its loop's first receive. Files a role makes in /dev/shm for the run
// are removed when the test ends.
func New(tb testing.TB, c Config, start sys.Starter) *Harness {
	tb.Helper()
	if _, ok := c.Procs[c.Name]; !ok {
		tb.Fatalf("systest: %s is not one of the run's processes %v", c.Name, slices.Sorted(maps.Keys(c.Procs)))
	}
	if c.Role == "" {
		c.Role = c.Name
	}
	h := &Harness{tb: tb, name: c.Name, endpoints: map[string]ipc.Endpoint{}, pools: map[string]*pool.Pool{}}
	readers := make([]ipc.Endpoint, 0, len(c.Procs))
	for _, slot := range c.Procs {
		readers = append(readers, ipc.MakeEndpoint(slot, 1))
	}
	for n, slot := range c.Procs {
		if slot <= ipc.KernelSlot || slot >= ipc.MaxSlots {
			tb.Fatalf("systest: %s in slot %d", n, slot)
		}
		ep := ipc.MakeEndpoint(slot, 1)
		h.endpoints[n] = ep
		p, err := pool.NewMemory(pool.Config{ID: uint8(slot), Path: n + ".pool", Count: Buffers, Owner: ep, Readers: readers})
		if err != nil {
			tb.Fatal(err)
		}
		h.pools[n] = p
	}
	h.endpoints["kernel"] = ipc.Kernel
	run := fmt.Sprintf("systest-%d-%d", os.Getpid(), runs.Add(1))
	tb.Cleanup(func() {
		files, _ := filepath.Glob(shm.Path(run, "*"))
		for _, f := range files {
			os.Remove(f)
		}
	})
	if c.Generation > 1 {
		h.endpoints[c.Name] = ipc.MakeEndpoint(c.Procs[c.Name], c.Generation)
	}
	self := h.endpoints[c.Name]
	o := boot.Options{Name: c.Name, Role: c.Role, Endpoint: self, Run: run, Transport: "fake",
		Peers: map[string]int{}, Procs: c.Procs, Routes: c.Routes, Roles: c.Roles, Args: c.Args, KernelFD: -1}
	if o.Routes == nil {
		o.Routes = map[string]string{}
	}
	for _, p := range c.Peers {
		slot, ok := c.Procs[p]
		if !ok {
			tb.Fatalf("systest: peer %s is not one of the run's processes", p)
		}
		o.Peers[p] = slot
	}
	h.T = NewTransport(self)
	h.K = NewKernel(self, h.endpoints)
	s, err := sys.New(o, sys.Env{Transport: h.T, Kernel: h.K, Pool: h.pools[c.Name],
		Log: log.New(io.Discard, "", 0), OpenPool: h.openPool})
	if err != nil {
		tb.Fatalf("systest: %v", err)
	}
	h.S = s
	h.K.Calls() // the peers' lookups
	if h.Handler, err = start(s); err != nil {
		tb.Fatalf("systest: start %s: %v", c.Role, err)
	}
	if r, ok := h.Handler.(sys.Runner); ok {
		h.T.Queue(Shutdown())
		if err := r.Run(s); err != nil {
			tb.Fatalf("systest: run %s: %v", c.Role, err)
		}
	}
	return h
}

// openPool gives the server another process's pool: a reader's view.
func (h *Harness) openPool(name string, slot int) (*pool.Pool, error) {
	p, ok := h.pools[name]
	if !ok || int(p.ID()) != slot {
		return nil, fmt.Errorf("systest: no pool of %s in slot %d", name, slot)
	}
	return p.View(), nil
}

// Endpoint is the named process's endpoint ("kernel": the kernel's).
func (h *Harness) Endpoint(name string) ipc.Endpoint {
	ep, ok := h.endpoints[name]
	if !ok {
		h.tb.Fatalf("systest: no process %s", name)
	}
	return ep
}

// Name is the name of the process at endpoint ep's slot, or "".
func (h *Harness) Name(ep ipc.Endpoint) string {
	for n, e := range h.endpoints {
		if e.Slot() == ep.Slot() {
			return n
		}
	}
	return ""
}

// Pool is the named process's pool, the owner's side.
func (h *Harness) Pool(name string) *pool.Pool {
	p, ok := h.pools[name]
	if !ok {
		h.tb.Fatalf("systest: no process %s", name)
	}
	return p
}

// Buffer puts data into a buffer of the named process's pool, as that
// process would before sending it, and returns the reference to it.
func (h *Harness) Buffer(owner string, data []byte) pool.Ref {
	h.tb.Helper()
	p := h.Pool(owner)
	ref, buf, err := p.Alloc()
	if err != nil {
		h.tb.Fatalf("systest: a buffer of %s: %v", owner, err)
	}
	return p.Slice(ref, copy(buf, data))
}

// Bytes returns what ref names, read as its pool's owner reads it.
func (h *Harness) Bytes(ref pool.Ref) []byte {
	h.tb.Helper()
	for _, p := range h.pools {
		if p.ID() == ref.Pool() {
			b, err := p.Bytes(ref, p.Owner())
			if err != nil {
				h.tb.Fatalf("systest: %v", err)
			}
			return b
		}
	}
	h.tb.Fatalf("systest: no pool %d", ref.Pool())
	return nil
}

// InUse is the number of buffers of the named process's pool handed out
// and not freed.
func (h *Harness) InUse(owner string) int { return h.Pool(owner).Stats().Allocated }

// Deliver has the server's loop receive ms, each from the named process,
// and handle them; it fails the test if the loop stops with an error.
func (h *Harness) Deliver(from string, ms ...ipc.Message) {
	h.tb.Helper()
	src := h.Endpoint(from)
	for i := range ms {
		ms[i].Src, ms[i].Dst = src, h.T.Self()
	}
	h.T.Queue(ms...)
	h.T.Queue(Shutdown())
	if err := h.S.Serve(h.Handler); err != nil {
		h.tb.Fatalf("systest: %s's loop: %v", h.name, err)
	}
	if n := h.T.Queued(); n > 0 {
		h.tb.Fatalf("systest: %s's loop stopped with %d messages unread", h.name, n)
	}
}

// Idle runs the server's loop with nothing to receive, up to the point
// where it would sleep (what it does first, such as the tasks sys.Server.Later
// queued, runs), then stops it.
func (h *Harness) Idle() {
	h.tb.Helper()
	h.T.ShutdownWhenIdle()
	if err := h.S.Serve(h.Handler); err != nil {
		h.tb.Fatalf("systest: %s's loop: %v", h.name, err)
	}
}

// IdleFor runs the server's loop with nothing to receive through d of
// pretend time, or polls looks at its transport, whichever ends first (see
// Transport.ShutdownAfterWaiting), then stops it; it returns the timeouts
// of the loop's waits, in order. It is for a loop that has something to
// wait for other than a message, such as messages in its outbox that a
// full channel (Transport.Refuse with ipc.ErrWouldBlock) does not take.
func (h *Harness) IdleFor(d time.Duration, polls int) []time.Duration {
	h.tb.Helper()
	h.T.Waits()
	h.T.ShutdownAfterWaiting(d, polls)
	if err := h.S.Serve(h.Handler); err != nil {
		h.tb.Fatalf("systest: %s's loop: %v", h.name, err)
	}
	return h.T.Waits()
}

// Kill has the named process die, as the kernel sees it: sends to it fail
// from now on (ipc.ErrDeadEndpoint), and the kernel tells the server. A
// Restart may follow.
func (h *Harness) Kill(name string) {
	h.tb.Helper()
	ep := h.Endpoint(name)
	h.T.Refuse(ep, ipc.ErrDeadEndpoint)
	h.Deliver("kernel", EndpointDown(ep.Slot(), ep))
}

// Restart gives the named process a new incarnation and tells the server,
// as the kernel does when it restarts a process.
func (h *Harness) Restart(name string) ipc.Endpoint {
	h.tb.Helper()
	old := h.Endpoint(name)
	ep := ipc.MakeEndpoint(old.Slot(), old.Generation()+1)
	h.endpoints[name] = ep
	h.Deliver("kernel", EndpointUpdate(ep.Slot(), ep))
	return ep
}

// Sent returns what the server sent on its transport since the last Sent,
// in order.
func (h *Harness) Sent() []ipc.Message { return h.T.Take() }

// SentTo returns the messages among Sent to the named process, and fails
// the test if the server sent any to another.
func (h *Harness) SentTo(name string) []ipc.Message {
	h.tb.Helper()
	var to []ipc.Message
	for _, m := range h.Sent() {
		if m.Dst != h.Endpoint(name) {
			h.tb.Fatalf("systest: %s sent %v to %s (%s), want only to %s", h.name, m.Type, m.Dst, h.Name(m.Dst), name)
		}
		to = append(to, m)
	}
	return to
}

// KernelSent returns what the server sent to the kernel (alarms, sends
// through it) since the last KernelSent.
func (h *Harness) KernelSent() []ipc.Message { return h.K.Take() }

// Metric is the value of the server's metric name, summed over the series
// whose labels include the given name, value pairs; 0 if none has.
func (h *Harness) Metric(name string, labels ...string) float64 {
	h.tb.Helper()
	if len(labels)%2 != 0 {
		h.tb.Fatalf("systest: Metric(%s, %q): labels in name, value pairs", name, labels)
	}
	mfs, err := h.S.Registry.Gather()
	if err != nil {
		h.tb.Fatalf("systest: gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m.GetLabel(), labels) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func hasLabels(have []*dto.LabelPair, want []string) bool {
	for i := 0; i < len(want); i += 2 {
		found := false
		for _, l := range have {
			if l.GetName() == want[i] && l.GetValue() == want[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Package sys is the runtime every newtsim process runs on, as MINIX's
// libsys is: the process's set-up (pinning, transport, buffer pool, kernel
// registration, metrics), the MINIX-shaped loop (receive a message, answer
// the messages every process answers, hand the rest to the role's
// Handler), sends that never block the loop, buffer references checked and
// given back, and the calls an application's socket library makes.
//
// What a role does with its messages is its Handler, built by its Starter;
// the roles themselves live in package servers (the network stack) and in
// the application packages, and one table names them all (cmd/newtsim).
package sys

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/boot"
	"github.com/newtsim/newtsim/ipc/collector"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/ipc/kmsg"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/runfiles"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/prometheus/client_golang/prometheus"
)

// Server is a running server process, as its Handler sees it.
type Server struct {
	Opts     boot.Options
	T        ipc.Transport // messages to and from peers
	K        Kernel        // calls to the kernel
	Registry *prometheus.Registry
	Log      *log.Logger
	// Pool is the server's own buffer pool, which it allocates from.
	Pool      *pool.Pool
	peers     map[string]ipc.Endpoint
	names     [ipc.MaxSlots]string // peers' names
	procs     [ipc.MaxSlots]string // every server's name
	pools     map[uint8]*pool.Pool // other servers' pools, mapped read-only on first use
	openPool  func(name string, slot int) (*pool.Pool, error)
	awake     map[int]*os.File // awake words handed over, by slot (Env.Awake)
	sendMu    sync.Mutex
	lockSend  bool
	badRefs   *prometheus.CounterVec
	sendFails *prometheus.CounterVec // dropped sends, by peer and reason (drop.go)
	stale     prometheus.Counter     // messages for another incarnation, dropped
	callSeq   uint32
	out       outbox
	times     *serviceTimes              // nil: handlings are not timed
	quar      quarantine                 // a restarted server's pool (quarantine.go)
	gone      [ipc.MaxSlots]ipc.Endpoint // the last endpoint that died in each slot
	deaths    [ipc.MaxSlots]int          // deaths announced, by slot
	class     [ipc.MaxSlots]ipc.Class    // each process's class, for the type table (ipc.MaySend)
	own       ipc.Class                  // this process's class, the receiver's in the type table
	refused   *prometheus.CounterVec     // messages the type table refused, by reason
	faults    prometheus.Counter         // memory faults recovered in handlers
	holders   holders                    // who holds each buffer handed on (holders.go)
	// Idle, when set, runs before the loop sleeps for want of messages;
	// it returns true when it found work, and the loop looks again
	// instead of sleeping.
	Idle func(s *Server) bool
	// beforeSleep are the one-shot tasks Later queued: they run once the
	// loop finds no message waiting, before it sleeps.
	beforeSleep []func()
	// held are messages received while a handling waited for a buffer
	// (awaitBuffer), not yet handled: recv gives them first, in order.
	held        []ipc.Message
	bufWaits    prometheus.Counter // waits for a buffer of the pool
	bufTimeouts prometheus.Counter // waits that ended without one
	bufSkipped  prometheus.Counter // copies that did not wait, the server being dry
	// dry says the last wait for a buffer ended without one, and no
	// buffer has been free since: copies do not wait (see BufferWait).
	dry   bool
	bells doorbells // the loop's transport, holding its wake-ups for the batch
	batch int       // messages taken since the doorbells last rang
}

// Handler is what a role does with the messages the loop does not handle
// itself. Returning an error stops the server.
type Handler interface {
	Handle(s *Server, m *ipc.Message) error
}

// Runner is a Handler with work of its own to do once the server has
// registered, such as a benchmark's measuring side. Main calls Run instead
// of Serve; Run usually ends by calling Serve.
type Runner interface {
	Run(s *Server) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(s *Server, m *ipc.Message) error

// Handle calls f.
func (f HandlerFunc) Handle(s *Server, m *ipc.Message) error { return f(s, m) }

// Starter builds a role's handler once the server is set up.
type Starter func(s *Server) (Handler, error)

// Peer returns the current endpoint of the named peer.
func (s *Server) Peer(name string) (ipc.Endpoint, bool) {
	e, ok := s.peers[name]
	return e, ok
}

// PeerName names the process in slot, or "" if it is not a peer.
func (s *Server) PeerName(slot int) string {
	if slot < 0 || slot >= ipc.MaxSlots {
		return ""
	}
	return s.names[slot]
}

// Reply sends r back to the sender of m, with m's Seq.
func (s *Server) Reply(m *ipc.Message, r *ipc.Message) error {
	r.Dst, r.Seq = m.Src, m.Seq
	return s.Send(r)
}

// Send sends m on the server's transport. From the loop it never waits: a
// message its channel has no room for waits in the outbox (see outbox.go).
// A role that sends from a second goroutine calls SendFromGoroutines first;
// every send then takes a lock (a ring has one producer at a time) and
// waits for room.
//
// A send that fails is dropped: counted by peer and reason, its buffer
// given back (see drop.go); the error returned wraps ErrDropped.
func (s *Server) Send(m *ipc.Message) error {
	s.gave(m)
	if s.lockSend {
		s.sendMu.Lock()
		err := s.T.Send(m)
		s.sendMu.Unlock()
		if err != nil {
			return s.drop(m, err)
		}
		return nil
	}
	return s.sendAsync(m)
}

// TrySendTo sends m to the named peer if its channel has room now, and
// gives ipc.ErrWouldBlock otherwise; it never waits, from any goroutine.
// A device-like sender (a nic's wire, a client host's NIC) drops what does
// not fit, as hardware drops on a full ring: waiting there, holding the send
// lock, could deadlock two processes that send each other frames.
func (s *Server) TrySendTo(peer string, m *ipc.Message) error {
	ep, ok := s.peers[peer]
	if !ok {
		return s.notPeer(peer, m)
	}
	m.Dst = ep
	s.gave(m)
	if s.lockSend {
		s.sendMu.Lock()
	}
	err := s.T.TrySend(m)
	if s.lockSend {
		s.sendMu.Unlock()
	}
	if err != nil {
		return s.drop(m, err)
	}
	return nil
}

// notPeer drops m, meant for a process that is not a peer.
func (s *Server) notPeer(peer string, m *ipc.Message) error {
	return s.dropFor(peer, m, fmt.Errorf("sys: %s is not a peer of %s: %w", peer, s.Opts.Name, ipc.ErrNoRoute))
}

// SendFromGoroutines makes Send safe from several goroutines. A process
// whose goroutines send works in them too, so its transport then sleeps
// through the Go scheduler (shm's SleepThroughScheduler): what the loop
// readies must not wait for its sleep.
func (s *Server) SendFromGoroutines() {
	s.lockSend = true
	if t, ok := s.T.(interface{ SleepThroughScheduler() }); ok {
		t.SleepThroughScheduler()
	}
}

// SendTo sends m to the named peer.
func (s *Server) SendTo(peer string, m *ipc.Message) error {
	ep, ok := s.peers[peer]
	if !ok {
		return s.notPeer(peer, m)
	}
	m.Dst = ep
	return s.Send(m)
}

// poolOf returns the pool with the given id: the server's own, or another
// server's mapped read-only.
func (s *Server) poolOf(id uint8) (*pool.Pool, error) {
	if int(id) == s.Opts.Endpoint.Slot() {
		return s.Pool, nil
	}
	if p, ok := s.pools[id]; ok {
		return p, nil
	}
	name := s.procs[int(id)%ipc.MaxSlots]
	if name == "" || s.openPool == nil {
		return nil, fmt.Errorf("sys: no pool %d", id)
	}
	p, err := s.openPool(name, int(id))
	if err != nil {
		return nil, err
	}
	s.pools[id] = p
	return p, nil
}

// Buffer returns the bytes that ref, a buffer reference m carries, names,
// after checking it: a pool of the run, rights of m's sender, bounds. A bad
// reference is counted, by m's type, and refused.
func (s *Server) Buffer(m *ipc.Message, ref pool.Ref) ([]byte, error) {
	p, err := s.poolOf(ref.Pool())
	if err == nil {
		var b []byte
		if b, err = p.Bytes(ref, m.Src); err == nil {
			return b, nil
		}
	}
	s.badRefs.WithLabelValues(m.Type.String()).Inc()
	return nil, err
}

// Release gives a buffer back: freed at once if this server owns it,
// otherwise sent one hop towards its owner. It is called from the loop's
// goroutine (a role's Handle, the loop itself).
func (s *Server) Release(ref pool.Ref) error {
	owner := int(ref.Pool())
	if owner == s.Opts.Endpoint.Slot() {
		return s.freeOwn(ref)
	}
	name := s.procs[owner%ipc.MaxSlots]
	hop := name
	if r, ok := s.Opts.Routes[name]; ok {
		hop = r
	}
	ep, ok := s.peers[hop]
	if !ok {
		return fmt.Errorf("sys: no way to return a buffer of pool %d", owner)
	}
	m := ipc.Message{Dst: ep}
	packet.BufFree{Buf: ref}.Encode(&m)
	// Through the outbox, never waiting, even in a process that sends
	// from goroutines (whose Send waits for room): two such processes
	// returning each other's buffers (a nic and the client host at the
	// far end of its wire) would otherwise each wait for the other, for
	// ever, once both channels filled. Release is the loop's.
	s.gave(&m)
	return s.sendAsync(&m)
}

// Kernel is a process's connection to the kernel: a transport (with the
// kernel transport it carries all the process's messages) and kernel calls
// that wait for the kernel's answer. *kmsg.Conn is the real one.
type Kernel interface {
	ipc.Transport
	// Call sends a kernel call and waits for the kernel's Ack (or Error,
	// returned as an error).
	Call(m *ipc.Message) (ipc.Message, error)
	// CallFile is Call with a descriptor each way (Deposit, Collect):
	// give, if not nil, goes attached to the call, and the descriptor
	// the reply carries, if any, is returned.
	CallFile(m *ipc.Message, give *os.File) (ipc.Message, *os.File, error)
}

var _ Kernel = (*kmsg.Conn)(nil)

// Env is what a server talks through, which New builds it on: Main makes
// it from the run's files, a role's tests in memory (package systest).
type Env struct {
	// Transport carries messages to and from peers. Nil: the kernel
	// carries them.
	Transport ipc.Transport
	// Kernel is the connection to the kernel.
	Kernel Kernel
	// Pool is the server's own buffer pool; nil for a process of a run
	// with none.
	Pool *pool.Pool
	// OpenPool maps the pool of the server name in slot, read-only, the
	// first time a reference into it arrives.
	OpenPool func(name string, slot int) (*pool.Pool, error)
	// Awake are the awake words the kernel handed over, by slot
	// (runfiles.Files.Awake): the server's own to write, if it has one,
	// and its peers' to read.
	Awake map[int]*os.File
	// Log is where the server logs; nil: standard error, prefixed with
	// the server's name.
	Log *log.Logger
}

// New builds the server o describes on e: its metrics registry (not yet
// served), and its peers' endpoints, looked up from the kernel.
func New(o boot.Options, e Env) (*Server, error) {
	s := &Server{Opts: o, T: e.Transport, K: e.Kernel, Pool: e.Pool, Log: e.Log, openPool: e.OpenPool, awake: e.Awake,
		peers: map[string]ipc.Endpoint{}, pools: map[uint8]*pool.Pool{},
		// An incarnation's calls start at its generation in the high half:
		// a reply to its predecessor's call cannot match one of its own.
		callSeq: uint32(o.Endpoint.Generation()) << 16}
	if s.T == nil {
		s.T = s.K
	}
	if s.Log == nil {
		s.Log = log.New(os.Stderr, o.Name+": ", log.Lmicroseconds)
	}
	s.names[ipc.KernelSlot] = "kernel"
	for n, slot := range o.Peers {
		s.names[slot] = n
	}
	for n, slot := range o.Procs {
		s.procs[slot%ipc.MaxSlots] = n
	}
	s.classify()
	s.Registry = prom.NewRegistry(o.Name, o.Role)
	s.badRefs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "server",
		Name: "bad_buffer_refs_total", Help: "Buffer references refused (pool, rights or bounds), by message type."}, []string{"type"})
	s.Registry.MustRegister(s.badRefs)
	s.sendFails = newSendFailures(s.Registry)
	s.stale = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "server",
		Name: "stale_messages_total", Help: "Messages received for another incarnation of this server, and dropped."})
	s.Registry.MustRegister(s.stale)
	s.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "server",
		Name: "refused_messages_total", Help: "Messages refused by the type table (a type the sender may not send), and BufFrees from a process the buffer was not given to, by reason."}, []string{"reason"})
	for _, r := range ipc.Refusals {
		s.refused.WithLabelValues(string(r))
	}
	s.Registry.MustRegister(s.refused)
	s.faults = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "server",
		Name: "memory_faults_total", Help: "Memory faults (a shared mapping truncated under the server) recovered while handling a message, which was dropped."})
	s.Registry.MustRegister(s.faults)
	s.out.register(s.Registry)
	s.bufWaits = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "server",
		Name: "buffer_waits_total", Help: "Copies that found the pool empty and waited for a buffer to come back."})
	s.bufTimeouts = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "server",
		Name: "buffer_wait_timeouts_total", Help: "Waits for a buffer that ended without one (the copy was dropped)."})
	s.bufSkipped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "server",
		Name: "buffer_waits_skipped_total", Help: "Copies that found the pool empty and did not wait, the last wait having ended without a buffer and none having come back since (the copy was dropped)."})
	s.Registry.MustRegister(s.bufWaits, s.bufTimeouts, s.bufSkipped)
	if s.Pool != nil {
		s.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: prom.Namespace,
			Subsystem: "pool", Name: "buffers_in_use", Help: "Buffers of this server's pool handed out and not yet back."},
			func() float64 { return float64(s.Pool.Stats().Allocated) }))
		s.registerQuarantine()
	}
	s.Registry.MustRegister(collector.NewTransport(o.Transport, s.T.Stats(), s.PeerName))
	if s.T != ipc.Transport(s.K) {
		s.Registry.MustRegister(collector.NewTransport("kernel", s.K.Stats(), func(slot int) string {
			if slot == ipc.KernelSlot {
				return "kernel"
			}
			return ""
		}))
	}
	for n := range o.Peers {
		ep, err := s.lookup(n)
		if err != nil {
			return nil, err
		}
		s.peers[n] = ep
	}
	if o.Endpoint.Generation() > 1 && s.Pool != nil {
		s.quarantinePool()
	}
	return s, nil
}

// Main sets up the server described by o, builds its role's handler with
// start, and runs its loop until the kernel asks it to stop. It is the body
// of `newtsim serve`. However the server ends, its log says why.
func Main(o boot.Options, start Starter) (err error) {
	lg := log.New(os.Stderr, o.Name+": ", log.Lmicroseconds)
	defer func() {
		if err != nil {
			lg.Printf("exits: %v", err)
		} else {
			lg.Printf("exits: shut down by the kernel")
		}
	}()
	if len(o.Cores) > 0 {
		if err := cpu.PinProcess(o.Cores); err != nil {
			return err
		}
	}
	e, err := env(o)
	if err != nil {
		return err
	}
	e.Log = lg
	defer e.Transport.Close()
	s, err := New(o, e)
	if err != nil {
		return err
	}
	if o.ServiceTimes {
		s.TimeHandlers()
	}
	if o.Trace {
		trace.Enable(o.Name, o.Role, o.Endpoint.Slot())
	}
	ms, err := prom.Serve(s.Registry, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ms.Close()
	ms.Handle(trace.Path, trace.Handler())

	h, err := start(s)
	if err != nil {
		return fmt.Errorf("sys: start %s: %w", o.Role, err)
	}
	var reg ipc.Message
	kcall.Register{MetricsPort: uint64(ms.Port)}.Encode(&reg)
	if _, err := s.K.Call(&reg); err != nil {
		return fmt.Errorf("sys: register: %w", err)
	}
	// SIGTERM from `newtsim down` or the kernel ends the process at once;
	// the kernel owns every shared file, so nothing is left behind.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-sigs
		lg.Printf("exits: %v", sig)
		os.Exit(0)
	}()
	if r, ok := h.(Runner); ok {
		return r.Run(s)
	}
	return s.Serve(h)
}

// env opens what the server o describes talks through: its pool, its
// kernel connection and its transport, from the run's files the kernel
// handed over on the connection (the first packet there).
func env(o boot.Options) (Env, error) {
	var e Env
	fs, err := runfiles.Receive(o.KernelFD)
	if err != nil {
		return e, fmt.Errorf("sys: %w", err)
	}
	// Mapped files stay mapped; their descriptors are not needed again.
	// Other servers' pools are mapped on first use: theirs are kept.
	defer fs.Inbox.Close()
	for _, pf := range fs.Peers {
		defer pf.Ring.Close()
		defer pf.Page.Close()
	}
	self := o.Endpoint.Slot()
	e.Awake = fs.Awake // kept open: mapped by the role, or the socket library
	if len(o.Procs) > 0 {
		c := runfiles.PoolConfig(o.Run, o.Name, self, o.Endpoint, len(o.Procs))
		if c.File = fs.Pools[self]; c.File == nil {
			return e, fmt.Errorf("sys: the kernel handed over no pool for %s", o.Name)
		}
		defer c.File.Close()
		p, err := pool.Adopt(c)
		if err != nil {
			return e, err
		}
		e.Pool = p
	}
	e.OpenPool = func(name string, slot int) (*pool.Pool, error) {
		c := runfiles.PoolConfig(o.Run, name, slot, ipc.MakeEndpoint(slot, 1), len(o.Procs))
		if c.File = fs.Pools[slot]; slot == self || c.File == nil {
			return nil, fmt.Errorf("sys: the kernel handed over no pool for %s", name)
		}
		return pool.Open(c)
	}
	k := kmsg.New(o.KernelFD, o.Endpoint)
	e.Kernel = k
	switch o.Transport {
	case "kernel":
		e.Transport = k
	case "shm":
		if fs.Inbox.Page == nil || len(fs.Inbox.Rings) == 0 {
			return e, fmt.Errorf("sys: the kernel handed over no inbox for %s", o.Name)
		}
		peers := map[int]shm.PeerFiles{}
		for n, slot := range o.Peers {
			pf, ok := fs.Peers[slot]
			if !ok {
				return e, fmt.Errorf("sys: the kernel handed over no ring to peer %s", n)
			}
			peers[slot] = pf
		}
		if fs.Owners == nil {
			return e, fmt.Errorf("sys: the kernel handed over no owners table")
		}
		defer fs.Owners.Close()
		// Mapped for the process's life: its sends read it.
		owners, err := shm.MapOwners(fs.Owners)
		if err != nil {
			return e, err
		}
		t, err := shm.Open(shm.Config{Self: o.Endpoint, Inbox: fs.Inbox, Peers: peers, Wait: o.Wait, Fallback: k, Owners: owners})
		if err != nil {
			return e, err
		}
		e.Transport = t
	default:
		return e, fmt.Errorf("sys: unknown transport %q", o.Transport)
	}
	return e, nil
}

func (s *Server) lookup(name string) (ipc.Endpoint, error) {
	m := ipc.Message{Type: ipc.Lookup}
	if err := m.SetName(name); err != nil {
		return 0, err
	}
	r, err := s.K.Call(&m)
	if err != nil {
		return 0, fmt.Errorf("sys: look up %s: %w", name, err)
	}
	var a kcall.Ack
	a.Decode(&r)
	return a.Endpoint, nil
}

// Serve is the server: receive, dispatch, reply, until Shutdown. It works
// in batches, as NewtOS's servers do: it takes what its channels hold
// without waiting and handles it, and its sends wake their receivers once
// per batch, when the loop is about to wait (see doorbells).
//
// A memory fault in the role's handling of a message (a mapping a peer
// truncated under it: a SIGBUS, which would otherwise kill the process) is
// recovered, counted and the message dropped (see Fault).
func (s *Server) Serve(h Handler) error {
	debug.SetPanicOnFault(true)
	if d, ok := s.T.(doorbells); ok && !s.lockSend {
		s.bells = d
		d.HoldDoorbells(true)
		defer func() {
			d.HoldDoorbells(false)
			s.ringDoorbells()
			s.bells = nil
		}()
	}
	var m ipc.Message
	for {
		if err := s.recv(&m); err != nil {
			return fmt.Errorf("sys: receive: %w", err)
		}
		next, err := s.common(&m)
		switch {
		case err != nil:
			return err
		case next == stop:
			return nil
		case next == passOn:
			t, start := m.Type, s.times.start()
			if trace.On() {
				trace.Record(trace.Begin, uint16(t), m.Src.Slot(), 0, 0)
			}
			err := s.handle(h, &m)
			if trace.On() {
				trace.Record(trace.End, uint16(t), 0, 0, 0)
			}
			s.times.done(t, start)
			// A send that failed is a drop, already counted: never the
			// end of the loop.
			if err != nil && !errors.Is(err, ErrDropped) {
				return err
			}
		}
	}
}

// handle hands m to the role, recovering from a memory fault.
func (s *Server) handle(h Handler, m *ipc.Message) (err error) {
	defer func() {
		if f := Fault(recover()); f != nil {
			if s.faults != nil {
				s.faults.Inc()
			}
			s.Log.Printf("%s from %s: %v; dropped", m.Type, m.Src, f)
			err = nil
		}
	}()
	return h.Handle(s, m)
}

// Fault turns r, what recover returned in a goroutine that runs with
// debug.SetPanicOnFault (the loop does), into an error when it is a memory
// fault at a mapped address: a file that a peer truncated under its
// mapping, which without it is a SIGBUS no process survives. It returns
// nil for nil, and panics again with anything else (a nil dereference, a
// bug).
func Fault(r any) error {
	if r == nil {
		return nil
	}
	if a, ok := r.(interface{ Addr() uintptr }); ok && a.Addr() >= 4096 {
		return fmt.Errorf("sys: memory fault at %#x (a mapping truncated under us?): %v", a.Addr(), r)
	}
	panic(r)
}

// What the loop does with a message once common has seen it.
const (
	passOn = iota // the role's: hand it to the Handler
	done          // handled
	stop          // Shutdown: the process ends
)

// common handles the messages every process answers alike, both in Serve
// and while an application waits for a reply (see background): Ping (a
// Pong back, with the ping's arguments), BufFree (the buffer goes on
// towards its owner), EndpointUpdate (the peer's new endpoint) and
// EndpointDown (a death, which a call waiting on the dead answers; see
// CallTo), both honoured from the kernel only and seen by the role too, a
// kernel's refusal of a send (counted, and seen by the role), and
// Shutdown. It says what to do next.
func (s *Server) common(m *ipc.Message) (int, error) {
	if !s.permitted(m) {
		return done, nil
	}
	if s.quar.held != nil {
		s.checkQuarantine() // its time may be up
	}
	switch m.Type {
	case ipc.Pong:
		if s.fenced(m) {
			return done, nil
		}
	case ipc.Ping:
		r := *m
		r.Type = ipc.Pong
		s.Reply(m, &r) // a Pong that cannot go back is dropped and counted
		return done, nil
	case ipc.Shutdown:
		return stop, nil
	case ipc.BufFree:
		var b packet.BufFree
		b.Decode(m)
		if !s.returnedBy(b.Buf, m.Src.Slot()) {
			if s.refused != nil {
				s.refused.WithLabelValues(string(ipc.RefuseNotHolder)).Inc()
			}
			return done, nil
		}
		if err := s.Release(b.Buf); err != nil {
			s.badRefs.WithLabelValues(m.Type.String()).Inc()
		}
		return done, nil
	case ipc.EndpointUpdate:
		if m.Src != ipc.Kernel {
			return done, nil // only the kernel announces restarts
		}
		var u kcall.EndpointUpdate
		u.Decode(m)
		if n := s.PeerName(u.Slot); n != "" && u.Endpoint.Slot() == u.Slot {
			s.peers[n] = u.Endpoint
			s.Log.Printf("peer %s is now endpoint %s", n, u.Endpoint)
		}
	case ipc.EndpointDown:
		if m.Src != ipc.Kernel {
			return done, nil // only the kernel announces deaths
		}
		var d kcall.EndpointDown
		d.Decode(m)
		if d.Slot <= ipc.KernelSlot || d.Slot >= ipc.MaxSlots || d.Endpoint.Slot() != d.Slot {
			return done, nil
		}
		s.gone[d.Slot] = d.Endpoint
		s.deaths[d.Slot]++
		if n := s.reclaim(d.Slot); n > 0 {
			s.Log.Printf("took back %d buffers %s held when it died", n, d.Endpoint)
		}
		if n := s.PeerName(d.Slot); n != "" {
			s.Log.Printf("peer %s (endpoint %s) died", n, d.Endpoint)
		}
	case ipc.Error:
		if m.Src == ipc.Kernel { // a send the kernel refused (kernel transport)
			e := ipc.AsKernelError(m)
			if s.sendFails != nil {
				s.sendFails.WithLabelValues(s.nameOf(e.Dst.Slot()), kernelReason(e.Errno)).Inc()
			}
		}
	}
	return passOn, nil
}

// classify gives each process of the run its class, from its role (or,
// where the options name no role, its name, as a role's tests do): what
// the type table lets it send this server.
func (s *Server) classify() {
	set := func(names map[string]int) {
		for n, slot := range names {
			role, ok := s.Opts.Roles[n]
			if !ok {
				role = n
			}
			if slot > ipc.KernelSlot && slot < ipc.MaxSlots {
				s.class[slot] = ipc.ClassOf(role)
			}
		}
	}
	set(s.Opts.Procs)
	set(s.Opts.Peers)
	s.class[ipc.KernelSlot] = ipc.ClassKernel
	s.own = ipc.ClassOf(s.Opts.Role)
}

// permitted holds m to the type table (ipc.MaySend), as the kernel does on
// the kernel transport: on shared memory nobody else does. A refusal is
// counted by reason and dropped.
func (s *Server) permitted(m *ipc.Message) bool {
	from := ipc.ClassApp
	switch slot := m.Src.Slot(); {
	case slot == ipc.KernelSlot:
		from = ipc.ClassKernel
	case slot < ipc.MaxSlots:
		from = s.class[slot]
	}
	why := ipc.MaySend(m.Type, from, s.own)
	if why == "" {
		return true
	}
	if s.refused != nil {
		s.refused.WithLabelValues(string(why)).Inc()
	}
	return false
}

// kernelReason is the send failure reason of a kernel's refusal.
func kernelReason(e ipc.Errno) string {
	switch e {
	case ipc.EDEADSRCDST:
		return ReasonDead
	case ipc.EPERM:
		return ReasonNoRoute
	case ipc.EAGAIN:
		return ReasonFull
	}
	return ReasonOther
}

// Gone reports whether ep is an endpoint the kernel announced dead (the
// last to die in its slot): a call still arriving from or for it, sent
// before it died, has nobody to answer.
func (s *Server) Gone(ep ipc.Endpoint) bool {
	return ep.Slot() < ipc.MaxSlots && ep != ipc.None && s.gone[ep.Slot()] == ep
}

// Deaths is how many times the named peer died, as the kernel announced
// (ipc.EndpointDown): a process that keeps state for a peer, such as an
// application's exposed sockets in tcp, compares it with the count it saw
// last.
func (s *Server) Deaths(peer string) int {
	ep, ok := s.peers[peer]
	if !ok {
		return 0
	}
	return s.deaths[ep.Slot()]
}

// Call sends a socket call (Type Socket) to syscall and waits for its reply,
// handling what else arrives meanwhile as the loop would: buffers coming
// back, pings, shutdown. It is how an application process's socket library
// (the `message` backend) talks to the stack.
func (s *Server) Call(m *ipc.Message) (ipc.Message, error) {
	return s.CallTo(s.syscallPeer(), m)
}

// syscallPeer names the syscall server an application calls: the peer
// called syscall, or else an application's only peer (a topology with
// several hosts names them syscall-a, syscall-b, ...).
func (s *Server) syscallPeer() string {
	if _, ok := s.peers["syscall"]; ok || len(s.peers) != 1 {
		return "syscall"
	}
	for n := range s.peers {
		return n
	}
	return "syscall"
}

// Alloc takes a buffer of the server's own pool.
func (s *Server) Alloc() (pool.Ref, []byte, error) { return s.Pool.Alloc() }

// Slice is a reference to the first n bytes of ref's buffer.
func (s *Server) Slice(ref pool.Ref, n int) pool.Ref { return s.Pool.Slice(ref, n) }

// Later queues f to run once, the next time the loop finds no message
// waiting and is about to sleep: work that may wait while messages keep
// coming (refreshing a snapshot for a scrape) but must not wait for ever
// once they stop. Only the loop's goroutine may call it.
func (s *Server) Later(f func()) { s.beforeSleep = append(s.beforeSleep, f) }

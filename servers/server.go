// Package servers runs newtsim's server processes. Every server is the same
// MINIX-shaped loop: receive a message, dispatch on its type, reply. The
// loop and its set-up (pinning, transport, kernel registration, metrics)
// live here; what a role does with its messages is a Handler.
//
// The roles of the network stack (syscall, tcp, udp, ip, pf, driver) answer
// the messages every server answers (Ping, Shutdown, EndpointUpdate); the
// protocol work of each is added by the issues that build it (see
// docs/ARCHITECTURE.md).
package servers

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kmsg"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/sim/metrics"
	"github.com/newtsim/newtsim/sim/pin"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are what the kernel starts a server with.
type Options struct {
	Name      string
	Role      string
	Endpoint  ipc.Endpoint
	Run       string
	Transport string         // "shm" or "kernel"
	Wait      ipc.WaitPolicy // how Recv waits
	Cores     []int
	Peers     map[string]int // peer name to slot
	Args      []string       // role-specific arguments
	KernelFD  int            // the kernel connection; kmsg.FD when started by the kernel
}

// Server is a running server process, as its Handler sees it.
type Server struct {
	Opts     Options
	T        ipc.Transport // messages to and from peers
	K        *kmsg.Conn    // calls to the kernel
	Registry *prometheus.Registry
	Log      *log.Logger
	peers    map[string]ipc.Endpoint
	names    [ipc.MaxSlots]string
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

var roles = map[string]Starter{}

// Register makes a role available to `newtsim serve`.
func Register(role string, start Starter) { roles[role] = start }

// Roles lists the registered roles.
func Roles() []string {
	var rs []string
	for r := range roles {
		rs = append(rs, r)
	}
	sort.Strings(rs)
	return rs
}

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
	return s.T.Send(r)
}

// Main sets up the server described by o and runs its loop until the kernel
// asks it to stop. It is the body of `newtsim serve`.
func Main(o Options) error {
	start, ok := roles[o.Role]
	if !ok {
		return fmt.Errorf("servers: unknown role %q (have %v)", o.Role, Roles())
	}
	if len(o.Cores) > 0 {
		if err := pin.Process(o.Cores); err != nil {
			return err
		}
	}
	s := &Server{Opts: o, Log: log.New(os.Stderr, o.Name+": ", log.Lmicroseconds), peers: map[string]ipc.Endpoint{}}
	s.names[ipc.KernelSlot] = "kernel"
	for n, slot := range o.Peers {
		s.names[slot] = n
	}
	s.K = kmsg.New(o.KernelFD, o.Endpoint)
	switch o.Transport {
	case "kernel":
		s.T = s.K
	case "shm":
		paths := map[int]string{}
		for n, slot := range o.Peers {
			paths[slot] = shm.Path(o.Run, n+".inbox")
		}
		t, err := shm.Open(shm.Config{Self: o.Endpoint, Inbox: shm.Path(o.Run, o.Name+".inbox"),
			Peers: paths, Wait: o.Wait, Fallback: s.K})
		if err != nil {
			return err
		}
		s.T = t
	default:
		return fmt.Errorf("servers: unknown transport %q", o.Transport)
	}
	defer s.T.Close()

	s.Registry = metrics.NewRegistry(o.Name, o.Role)
	s.Registry.MustRegister(metrics.NewTransport(o.Transport, s.T.Stats(), s.PeerName))
	if s.T != ipc.Transport(s.K) {
		s.Registry.MustRegister(metrics.NewTransport("kernel", s.K.Stats(), func(slot int) string {
			if slot == ipc.KernelSlot {
				return "kernel"
			}
			return ""
		}))
	}
	ms, err := metrics.Serve(s.Registry, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ms.Close()

	for n := range o.Peers {
		ep, err := s.lookup(n)
		if err != nil {
			return err
		}
		s.peers[n] = ep
	}
	h, err := start(s)
	if err != nil {
		return fmt.Errorf("servers: start %s: %w", o.Role, err)
	}
	if _, err := s.K.Call(&ipc.Message{Type: ipc.Register, Arg: [ipc.NumArgs]uint64{uint64(ms.Port)}}); err != nil {
		return fmt.Errorf("servers: register: %w", err)
	}
	// SIGTERM from `newtsim down` or the kernel ends the process at once;
	// the kernel owns every shared file, so nothing is left behind.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; os.Exit(0) }()
	if r, ok := h.(Runner); ok {
		return r.Run(s)
	}
	return s.Serve(h)
}

func (s *Server) lookup(name string) (ipc.Endpoint, error) {
	m := ipc.Message{Type: ipc.Lookup}
	if err := m.SetName(name); err != nil {
		return 0, err
	}
	r, err := s.K.Call(&m)
	if err != nil {
		return 0, fmt.Errorf("servers: look up %s: %w", name, err)
	}
	return ipc.Endpoint(r.Arg[0]), nil
}

// Serve is the server: receive, dispatch, reply, until Shutdown.
func (s *Server) Serve(h Handler) error {
	var m ipc.Message
	for {
		if err := s.T.Recv(&m); err != nil {
			return fmt.Errorf("servers: receive: %w", err)
		}
		switch m.Type {
		case ipc.Ping:
			r := m
			r.Type = ipc.Pong
			if err := s.Reply(&m, &r); err != nil && !errors.Is(err, ipc.ErrDeadEndpoint) {
				return err
			}
		case ipc.Shutdown:
			return nil
		case ipc.EndpointUpdate:
			slot, ep := int(m.Arg[0]), ipc.Endpoint(m.Arg[1])
			if n := s.PeerName(slot); n != "" && ep.Slot() == slot {
				s.peers[n] = ep
				s.Log.Printf("peer %s is now endpoint %s", n, ep)
			}
			if err := h.Handle(s, &m); err != nil {
				return err
			}
		default:
			if err := h.Handle(s, &m); err != nil {
				return err
			}
		}
	}
}

// Base is the handler of a role with no protocol work yet: it counts and
// ignores what the common loop does not answer.
func Base(s *Server) (Handler, error) {
	ignored := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: "server", Name: "ignored_messages_total",
		Help: "Messages this server received and had no use for, by type.",
	}, []string{"type"})
	s.Registry.MustRegister(ignored)
	return HandlerFunc(func(s *Server, m *ipc.Message) error {
		ignored.WithLabelValues(m.Type.String()).Inc()
		return nil
	}), nil
}

func init() {
	for _, r := range []string{"syscall", "tcp", "udp", "ip", "pf", "driver", "echo"} {
		Register(r, Base)
	}
}

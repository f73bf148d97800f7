package servers

import (
	"errors"
	"flag"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/servers/sys"
)

// Diagnostic roles: a prober that shows its peers answer, and a hostile
// process that shows the kernel refuses what it must. The end-to-end tests
// run them; they are useful by hand too (see docs/TOPOLOGY.md).

// prober pings every peer each interval, on the kernel's alarms, and counts
// the pongs per peer: newtsim_prober_pongs_total going up says the peer is
// reachable through the transport, also after a restart.
type prober struct {
	interval time.Duration
	pongs    *prometheus.CounterVec
	fails    *prometheus.CounterVec
}

// Prober starts the prober role, a diagnostic: pings its peers on kernel alarms and counts the pongs.
func Prober(s *sys.Server) (sys.Handler, error) {
	p := &prober{}
	fs := flag.NewFlagSet("prober", flag.ContinueOnError)
	fs.DurationVar(&p.interval, "interval", 50*time.Millisecond, "time between rounds of pings")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	p.pongs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "prober",
		Name: "pongs_total", Help: "Pongs received, by peer."}, []string{"peer"})
	p.fails = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "prober",
		Name: "send_failures_total", Help: "Pings that could not be sent, by peer and reason."}, []string{"peer", "reason"})
	s.Registry.MustRegister(p.pongs, p.fails)
	return p, nil
}

// Run arms the first alarm, then serves.
func (p *prober) Run(s *sys.Server) error {
	if err := p.arm(s); err != nil {
		return err
	}
	return s.Serve(p)
}

func (p *prober) arm(s *sys.Server) error { return s.ArmAlarm(p.interval) }

func (p *prober) Handle(s *sys.Server, m *ipc.Message) error {
	switch m.Type {
	case ipc.Alarm:
		for name := range s.Opts.Peers {
			ep, _ := s.Peer(name)
			err := s.T.TrySend(&ipc.Message{Dst: ep, Type: ipc.Ping})
			switch {
			case err == nil:
			case errors.Is(err, ipc.ErrDeadEndpoint):
				p.fails.WithLabelValues(name, "dead-endpoint").Inc()
			case errors.Is(err, ipc.ErrWouldBlock):
				p.fails.WithLabelValues(name, "full").Inc()
			default:
				return err
			}
		}
		return p.arm(s)
	case ipc.Pong:
		if n := s.PeerName(m.Src.Slot()); n != "" {
			p.pongs.WithLabelValues(n).Inc()
		}
	case ipc.Error:
		e := ipc.AsKernelError(m)
		p.fails.WithLabelValues(s.PeerName(e.Dst.Slot()), e.Errno.Error()).Inc()
	}
	return nil
}

// hostile writes malformed datagrams on its kernel connection and sends to a
// process it is not linked to, then serves like any server. The kernel must
// refuse each, count it by reason, answer with an Error where it can, and go
// on serving everybody else. What came back is counted by errno.
type hostile struct {
	target string
	attack time.Duration // how long to attack its peers and the kernel (hostileapp.go)
	until  string        // a file whose existence ends the attack sooner
	when   string        // a file whose existence starts the attack
	hoard  string        // where the attack connects to itself to keep receive buffers
	atk    *attack
	errs   *prometheus.CounterVec
}

// Hostile starts the hostile role, a diagnostic: sends the kernel bad datagrams and a forbidden send.
func Hostile(s *sys.Server) (sys.Handler, error) {
	h := &hostile{}
	fs := flag.NewFlagSet("hostile", flag.ContinueOnError)
	fs.StringVar(&h.target, "forbidden", "", "a process this one is not linked to, to send to")
	fs.DurationVar(&h.attack, "attack", 0, "then, for this long, forge every restricted message type to every peer, free buffers it was never given, flood alarms and notifications, and scribble on its shared mappings (0: none)")
	fs.StringVar(&h.until, "attack-until", "", "end the attack sooner, once this file exists")
	fs.StringVar(&h.when, "attack-when", "", "start the attack only once this file exists")
	fs.StringVar(&h.hoard, "hoard", "", "first, listen on this ADDR:PORT of the host, connect to it, send itself 256 bytes and receive them a byte at a time, keeping every receive's buffer, until refused")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	h.errs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "hostile",
		Name: "kernel_errors_total", Help: "Error replies from the kernel, by errno."}, []string{"errno"})
	s.Registry.MustRegister(h.errs)
	h.atk = newAttack(s)
	h.atk.hoardAt = h.hoard
	return h, nil
}

// Run sends the bad input, then serves.
func (h *hostile) Run(s *sys.Server) error {
	fd := s.Opts.KernelFD
	var b [ipc.MessageSize + 16]byte
	good := ipc.Message{Src: s.Opts.Endpoint, Dst: ipc.Kernel, Type: ipc.Lookup}
	// Short and oversized datagrams.
	unix.Write(fd, b[:10])
	good.Marshal(b[:])
	unix.Write(fd, b[:ipc.MessageSize+16])
	// An unknown type.
	bad := good
	bad.Type = 999
	bad.Marshal(b[:])
	unix.Write(fd, b[:ipc.MessageSize])
	// A forged source: another slot's endpoint.
	bad = good
	bad.Src = ipc.MakeEndpoint(s.Opts.Endpoint.Slot()+1, 1)
	bad.Marshal(b[:])
	unix.Write(fd, b[:ipc.MessageSize])
	// A send the privilege mask forbids, through the kernel.
	if h.target != "" {
		lk := ipc.Message{Type: ipc.Lookup}
		lk.SetName(h.target)
		if r, err := s.K.Call(&lk); err == nil {
			var a kcall.Ack
			a.Decode(&r)
			m := ipc.Message{Dst: a.Endpoint, Type: ipc.Ping}
			if err := s.K.Send(&m); err != nil {
				return err
			}
		}
	}
	if h.attack > 0 {
		h.atk.run(s, h.attack, h.when, h.until)
		s.Log.Printf("attack over")
	}
	return s.Serve(h)
}

func (h *hostile) Handle(s *sys.Server, m *ipc.Message) error {
	if m.Type == ipc.Error {
		h.errs.WithLabelValues(ipc.AsKernelError(m).Errno.Error()).Inc()
	}
	return nil
}

// Echo is the handler of a role with no protocol work (the `echo` role):
// the loop answers pings, and it counts and ignores the rest.
func Echo(s *sys.Server) (sys.Handler, error) {
	ignored := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: prom.Namespace, Subsystem: "server", Name: "ignored_messages_total",
		Help: "Messages this server received and had no use for, by type.",
	}, []string{"type"})
	s.Registry.MustRegister(ignored)
	return sys.HandlerFunc(func(s *sys.Server, m *ipc.Message) error {
		ignored.WithLabelValues(m.Type.String()).Inc()
		return nil
	}), nil
}

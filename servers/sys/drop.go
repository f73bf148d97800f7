package sys

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/sockcall"
)

// A send that fails is a drop, never the end of the sender (docs/RECOVERY.md):
// a peer that died, restarts or is congested must not take its neighbours
// down with it. The message is counted by peer and reason, and the buffer
// it carried goes back towards its owner, since nobody else will give it
// back. The error still reaches the caller, wrapping ErrDropped and the
// transport's error, for the few that act on it (a call waits for no reply
// to a call that never left); the loop goes on when a Handler returns it.

// ErrDropped marks a send that failed: the message was dropped, counted,
// and any buffer it carried given back.
var ErrDropped = errors.New("sys: message dropped")

// Send failure reasons, the reason label of
// newtsim_server_send_failures_total.
const (
	ReasonDead    = "dead"     // the destination died or was restarted
	ReasonNoRoute = "no-route" // no channel to it, or not a peer
	ReasonFull    = "full"     // its channel (and the outbox) had no room
	ReasonClosed  = "closed"   // the transport was closed
	ReasonOther   = "other"
)

// reasonOf classifies a transport's send error.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, ipc.ErrDeadEndpoint):
		return ReasonDead
	case errors.Is(err, ipc.ErrNoRoute):
		return ReasonNoRoute
	case errors.Is(err, ipc.ErrWouldBlock):
		return ReasonFull
	case errors.Is(err, ipc.ErrClosed):
		return ReasonClosed
	}
	return ReasonOther
}

func newSendFailures(r *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "server",
		Name: "send_failures_total", Help: "Messages dropped because their send failed, by peer and reason (dead, no-route, full, closed)."},
		[]string{"peer", "reason"})
	r.MustRegister(c)
	return c
}

// nameOf names the process in slot for a label: a peer, another process
// of the run, or the slot's number.
func (s *Server) nameOf(slot int) string {
	if n := s.PeerName(slot); n != "" {
		return n
	}
	if slot >= 0 && slot < ipc.MaxSlots && s.procs[slot] != "" {
		return s.procs[slot]
	}
	return fmt.Sprintf("slot-%d", slot)
}

// drop counts a message whose send failed with err, gives back the
// buffer it carried, and returns the error to report.
func (s *Server) drop(m *ipc.Message, err error) error {
	return s.dropFor(s.nameOf(m.Dst.Slot()), m, err)
}

// dropFor is drop for a message meant for the named peer.
func (s *Server) dropFor(peer string, m *ipc.Message, err error) error {
	reason := reasonOf(err)
	if s.sendFails != nil {
		s.sendFails.WithLabelValues(peer, reason).Inc()
	}
	if ref, ok := carried(m); ok {
		s.forget(ref)
		s.giveBack(ref)
	}
	return fmt.Errorf("%w: %s to %s (%s): %w", ErrDropped, m.Type, peer, reason, err)
}

// giveBack returns a dropped message's buffer: freed here if it is ours,
// else sent towards its owner. A buffer whose way back fails too is lost
// to its owner until the owner restarts (see docs/RECOVERY.md); that drop
// is counted like any other.
func (s *Server) giveBack(ref pool.Ref) {
	if ref == 0 {
		return
	}
	if s.Pool != nil && int(ref.Pool()) == s.Opts.Endpoint.Slot() {
		s.freeOwn(ref)
		return
	}
	s.Release(ref)
}

// carried returns the buffer a message carries, whose holder must give it
// back: a packet path message's, a socket call's data to send or poll set
// (which syscall reads and gives back at once), or a receive's reply data. A BufFree carries none in that sense: it is the
// giving back itself, and a lost one is not sent again.
func carried(m *ipc.Message) (pool.Ref, bool) {
	switch m.Type {
	case ipc.FrameRx, ipc.FrameTx, ipc.Datagram, ipc.Unreachable:
		var f packet.Frame
		f.Decode(m) // every packet path message keeps its buffer in the same word
		return f.Buf, f.Buf != 0
	case ipc.Socket:
		var c sockcall.Call
		c.Decode(m)
		return c.Buf, (c.Op == ipc.OpSendTo || c.Op == ipc.OpPollSet) && c.Buf != 0
	case ipc.SocketReply:
		var r sockcall.Reply
		r.Decode(m)
		return r.Buf, r.Op == ipc.OpRecvFrom && r.Result >= 0 && r.Buf != 0
	}
	return 0, false
}

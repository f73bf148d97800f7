package sys

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/ipc"
)

// What an application process's socket library needs beyond Call (see
// package apps/socket): calls to a named server, one-way messages, and
// waiting for a wake-up.

// CallTo sends a socket call to the named peer and waits for its reply,
// handling what else arrives meanwhile as Call does.
//
// A call never waits for a peer that cannot answer: when the peer is dead
// (the send fails, the kernel refuses it, or the kernel announces the
// death while the call waits) the error wraps ipc.ErrDeadEndpoint, and the
// socket library makes an errno of it. A send that fails first looks at
// what arrived meanwhile: a restarted peer's new endpoint gets the call.
func (s *Server) CallTo(peer string, m *ipc.Message) (ipc.Message, error) {
	s.callSeq++
	m.Seq = s.callSeq
	if err := s.SendTo(peer, m); err != nil {
		was := s.peers[peer]
		if !errors.Is(err, ipc.ErrDeadEndpoint) || !s.catchUp() || s.peers[peer] == was {
			return ipc.Message{}, err
		}
		if err := s.SendTo(peer, m); err != nil {
			return ipc.Message{}, err
		}
	}
	return s.awaitReply(peer, m.Dst, m.Seq)
}

// catchUp handles what waits in the inbox now, as background does, and
// reports whether there was anything.
func (s *Server) catchUp() bool {
	found := false
	var r ipc.Message
	for s.T.TryRecv(&r) == nil {
		if s.fresh(&r) {
			s.background(&r)
		}
		found = true
	}
	return found
}

// Notify sends m to the named peer and does not wait.
func (s *Server) Notify(peer string, m *ipc.Message) error { return s.SendTo(peer, m) }

// AwakeFile returns the awake word (runfiles.AwakeName) of the named
// server, the process itself or a peer, as the kernel handed it over:
// read-write for its own, read-only for a peer's. The descriptor stays
// the server's; map it, do not close it.
func (s *Server) AwakeFile(name string) (*os.File, error) {
	for slot, n := range s.procs {
		if n == name {
			if f := s.awake[slot]; f != nil {
				return f, nil
			}
			break
		}
	}
	return nil, fmt.Errorf("sys: no awake word of %s was handed over", name)
}

// WaitWake waits until a Wake message arrives, a process dies (a peer
// waited on may be gone: see Deaths) or the timeout passes (a negative
// timeout waits for ever), handling what else arrives meanwhile.
// The wait is the transport's own (a futex with a timeout on user-space
// channels): no alarm, no other system call.
func (s *Server) WaitWake(timeout time.Duration) error {
	if timeout == 0 {
		return nil
	}
	deadline := time.Now().Add(timeout)
	var r ipc.Message
	for {
		var err error
		if timeout < 0 {
			err = s.recv(&r)
		} else {
			left := time.Until(deadline)
			if left <= 0 {
				return nil
			}
			if s.takeHeld(&r) {
				err = nil
			} else {
				s.flush()
				s.ringDoorbells()
				err = s.T.RecvTimeout(&r, left)
			}
		}
		if errors.Is(err, ipc.ErrTimeout) {
			return nil
		}
		if err != nil {
			return err
		}
		if !s.fresh(&r) {
			continue
		}
		if r.Type == ipc.Wake {
			return nil
		}
		s.background(&r)
		if r.Type == ipc.EndpointDown && r.Src == ipc.Kernel {
			return nil // a peer died: the waiter looks at what it kept for it (Deaths)
		}
	}
}

// awaitReply receives until the reply with seq from dst, the named peer,
// arrives, or dst dies.
func (s *Server) awaitReply(peer string, dst ipc.Endpoint, seq uint32) (ipc.Message, error) {
	var r ipc.Message
	for {
		if err := s.recv(&r); err != nil {
			return r, err
		}
		switch {
		case r.Type == ipc.SocketReply && r.Seq == seq && r.Src == dst:
			return r, nil
		case r.Type == ipc.Error && r.Seq == seq && r.Src == ipc.Kernel:
			s.background(&r) // counted
			if e := ipc.AsKernelError(&r); e.Errno != ipc.EDEADSRCDST {
				return ipc.Message{}, fmt.Errorf("sys: call to %s: %w", peer, e)
			}
			return ipc.Message{}, fmt.Errorf("sys: call to %s: %w: %w", peer, ipc.AsKernelError(&r), ipc.ErrDeadEndpoint)
		}
		s.background(&r)
		if s.gone[dst.Slot()] == dst {
			return ipc.Message{}, fmt.Errorf("sys: %s (endpoint %s) died with the call unanswered: %w", peer, dst, ipc.ErrDeadEndpoint)
		}
	}
}

// background handles what an application receives while it waits for
// something else, as Serve would: buffers coming back, pings, shutdown,
// restarted peers. A Pong that cannot go back is the pinger's loss, not
// the waiting call's.
func (s *Server) background(r *ipc.Message) {
	if next, _ := s.common(r); next == stop {
		s.Log.Printf("exits: shut down by the kernel")
		os.Exit(0)
	}
}

// WriteResult writes what an application measured or found to path as
// JSON, replacing the file atomically (see package internal/atomicfile), so
// that a reader polling for the file never sees half of it.
func WriteResult(path string, v any) error {
	if err := atomicfile.WriteJSON(path, v); err != nil {
		return fmt.Errorf("sys: result: %w", err)
	}
	return nil
}

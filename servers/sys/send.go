package sys

import (
	"errors"
	"fmt"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/ipc/pool"
)

// ErrNoBuffer is Copy's error when the server's pool has no free buffer:
// nothing was sent.
var ErrNoBuffer = errors.New("sys: no buffer")

// Copy puts a copy of b in a buffer of the server's pool and returns a
// reference to the copied bytes: at most a buffer's worth, and at least
// one byte (a reference names one), so that an empty b still has a buffer
// to point to.
//
// A pool with no free buffer is back-pressure, not loss: Copy waits for
// one of its buffers to come back (see awaitBuffer), for at most
// BufferWait, before it gives up with ErrNoBuffer. A wait that ended
// without one is not repeated until the pool has had a free buffer again:
// until then Copy gives up at once (see dry). A server whose sends come
// from several goroutines (SendFromGoroutines) never waits: its loop
// receives beside it.
func (s *Server) Copy(b []byte) (pool.Ref, error) {
	return s.copyBuf(b, !s.lockSend)
}

func (s *Server) copyBuf(b []byte, wait bool) (pool.Ref, error) {
	ref, buf, err := s.Pool.Alloc()
	switch {
	case err == nil:
		s.dry = false
	case !wait || !errors.Is(err, pool.ErrExhausted):
	case s.dry:
		if s.bufSkipped != nil {
			s.bufSkipped.Inc()
		}
	default:
		ref, buf, err = s.awaitBuffer()
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoBuffer, err)
	}
	return s.Pool.Slice(ref, max(copy(buf, b), 1)), nil
}

// BufferWait bounds how long Copy waits for a buffer of the server's pool
// to come back. Buffers come back as their holders finish with them, so on
// a path that loses nothing the wait ends when the next BufFree arrives;
// the bound is for a holder that cannot answer (two servers each waiting
// for buffers the other holds in a message it has not read yet): past it
// the copy fails, and is dropped and counted as before.
//
// The bound is per drought, not per copy: once a wait has ended without a
// buffer, the server is dry, and its copies give up at once until one of
// its buffers has come back. Servers that wait in a ring (tcp for buffers
// held in ip's channel, ip for buffers held in pf's and tcp's, pf for
// buffers held in ip's: each holds, unread while it waits, the messages
// that would free the others' buffers) otherwise each waited BufferWait
// for every copy of a burst (a thousand SYN-ACKs sent again at once), and
// the three stopped for minutes (TestHostilePeers, under hping3's SYN
// flood).
const BufferWait = 50 * time.Millisecond

// awaitBuffer waits for a buffer of the server's own pool: it receives,
// frees or forwards the buffers coming back (BufFree), and holds every
// other message, unhandled, for the loop to take in order (see recv) once
// the handling that waits is over. Before each wait it sends what its
// outbox holds: those messages carry its buffers away towards where they
// are freed.
func (s *Server) awaitBuffer() (pool.Ref, []byte, error) {
	if s.bufWaits != nil {
		s.bufWaits.Inc()
	}
	deadline := time.Now().Add(BufferWait)
	for {
		s.flush()
		s.ringDoorbells()
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if s.out.pending > 0 {
			left = min(left, outboxRetry) // look at the outbox again soon
		}
		var m ipc.Message
		err := s.T.RecvTimeout(&m, left)
		if errors.Is(err, ipc.ErrTimeout) {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		if !s.fresh(&m) {
			continue
		}
		if m.Type != ipc.BufFree {
			s.held = append(s.held, m)
			continue
		}
		s.common(&m)
		if ref, buf, err := s.Pool.Alloc(); err == nil {
			return ref, buf, nil
		}
	}
	if s.bufTimeouts != nil {
		s.bufTimeouts.Inc()
	}
	ref, buf, err := s.Pool.Alloc()
	s.dry = err != nil
	return ref, buf, err
}

// SendCopy sends the named peer m, a packet path message (package
// ipc/packet), with a copy of b in a buffer of the server's pool as its
// buffer. The buffer is freed if the send fails, as every dropped
// message's is; ErrNoBuffer says there was none to copy into.
func (s *Server) SendCopy(peer string, m *ipc.Message, b []byte) error {
	return s.sendCopy(s.SendTo, true, peer, m, b)
}

// TrySendCopy is SendCopy for a device-like sender (see TrySendTo): a
// channel with no room now loses the copy (ipc.ErrWouldBlock).
// It never waits for a buffer either: a device with none drops the frame.
func (s *Server) TrySendCopy(peer string, m *ipc.Message, b []byte) error {
	return s.sendCopy(s.TrySendTo, false, peer, m, b)
}

func (s *Server) sendCopy(send func(string, *ipc.Message) error, wait bool, peer string, m *ipc.Message, b []byte) error {
	ref, err := s.copyBuf(b, wait && !s.lockSend)
	if err != nil {
		return err
	}
	packet.SetBuf(m, ref)
	return send(peer, m) // a failed send freed the copy
}

// MinAlarm is the shortest delay ArmAlarm asks the kernel for: a deadline
// nearer than that, or already past, is served that much later, so that a
// role never spins on alarms.
const MinAlarm = 100 * time.Microsecond

// ArmAlarm sets the process's kernel alarm (it has one: a new one replaces
// the last) to go off after d, or MinAlarm if d is shorter; an ipc.Alarm
// message comes then. It never waits for the kernel, and it is safe from
// any goroutine: a kernel call is one datagram.
func (s *Server) ArmAlarm(d time.Duration) error {
	var m ipc.Message
	kcall.SetAlarm{After: max(d, MinAlarm)}.Encode(&m)
	m.Dst = ipc.Kernel
	return s.K.Send(&m)
}

// Deadline keeps the kernel alarm armed for the earliest deadline of a
// role's engine. The kernel keeps one alarm per process, so a deadline
// later than the one armed waits for that alarm, when the role asks its
// engine again.
type Deadline struct {
	at time.Time // what the armed alarm is for; zero: none armed
}

// Expired notes that the armed alarm went off: call it on ipc.Alarm.
func (d *Deadline) Expired() { d.at = time.Time{} }

// Set arms the alarm for at, unless one at or before at is armed.
func (d *Deadline) Set(s *Server, now, at time.Time) error {
	if !d.at.IsZero() && !at.Before(d.at) {
		return nil
	}
	d.at = at
	return s.ArmAlarm(at.Sub(now))
}

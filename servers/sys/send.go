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
func (s *Server) Copy(b []byte) (pool.Ref, error) {
	ref, buf, err := s.Pool.Alloc()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoBuffer, err)
	}
	return s.Pool.Slice(ref, max(copy(buf, b), 1)), nil
}

// SendCopy sends the named peer m, a packet path message (package
// ipc/packet), with a copy of b in a buffer of the server's pool as its
// buffer. The buffer is freed if the send fails, as every dropped
// message's is; ErrNoBuffer says there was none to copy into.
func (s *Server) SendCopy(peer string, m *ipc.Message, b []byte) error {
	return s.sendCopy(s.SendTo, peer, m, b)
}

// TrySendCopy is SendCopy for a device-like sender (see TrySendTo): a
// channel with no room now loses the copy (ipc.ErrWouldBlock).
func (s *Server) TrySendCopy(peer string, m *ipc.Message, b []byte) error {
	return s.sendCopy(s.TrySendTo, peer, m, b)
}

func (s *Server) sendCopy(send func(string, *ipc.Message) error, peer string, m *ipc.Message, b []byte) error {
	ref, err := s.Copy(b)
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

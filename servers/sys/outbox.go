package sys

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/shm"
)

// A server's loop never waits on a full channel. Two servers that send to
// each other (tcp hands ip segments while ip hands tcp ACKs; every layer
// below does the same with frames) would each wait for the other to
// receive, for ever, once both channels filled. As NewtOS's asynchronous
// channels do, a message that does not fit waits in the sender's outbox,
// one queue per destination so that a busy peer holds up no other; the
// loop sends what it can before each receive, and receives while it waits.

// maxOutbox bounds one destination's queue; past it, messages are dropped
// and counted (a transport resends what it lost; a reply an application
// waits for never gets this far: an application has one call at a time),
// their buffers given back.
const maxOutbox = 8192

// While messages wait in the outbox and nothing arrives, the loop waits
// for a message (RecvTimeout: one that arrives wakes it at once) and tries
// the full channels again when the wait ends. A channel full for a moment
// (a peer busy with a burst) has room again within microseconds: the first
// wait is outboxRetry, long enough to give the peer the core. A channel
// that stays full (an application that never reads, a peer stopped) is
// tried after a wait twice as long each time, up to maxOutboxRetry: a wait
// never adds more than the time the channel has already been full (plus
// outboxRetry), and a destination that never takes costs the loop about
// what an idle loop costs (an idle receiver on shared memory looks at its
// rings every shm.RecvRecheck, as long). Measured with an application
// stopped with its rings full (docs/SECURITY.md), a bound of 5 ms (its
// waits not held, see longWait) still cost syscall and tcp 800 timeslices
// a second each, twenty times their idle count; 100 ms, their idle count. Each destination has its own
// wait: one stuck for good does not slow the retries of another, and a
// send that goes through starts its destination's over.
const (
	outboxRetry    = 20 * time.Microsecond
	maxOutboxRetry = 100 * time.Millisecond
)

type outbox struct {
	q        [ipc.MaxSlots][]ipc.Message
	retry    [ipc.MaxSlots]time.Duration // each queue's next wait; 0: outboxRetry
	pending  int
	deferred prometheus.Counter
	dropped  prometheus.Counter
}

func (o *outbox) register(r *prometheus.Registry) {
	o.deferred = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "server",
		Name: "deferred_sends_total", Help: "Messages that found the channel full and waited in the outbox."})
	o.dropped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "server",
		Name: "outbox_dropped_total", Help: "Messages dropped because their destination's outbox was full."})
	r.MustRegister(o.deferred, o.dropped)
}

// send sends m now if its channel has room and nothing is queued before
// it, and queues it otherwise.
func (s *Server) sendAsync(m *ipc.Message) error {
	o := &s.out
	slot := m.Dst.Slot() % ipc.MaxSlots
	if len(o.q[slot]) == 0 {
		err := s.trySend(m)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ipc.ErrWouldBlock) {
			return s.drop(m, err)
		}
	}
	if len(o.q[slot]) >= maxOutbox {
		if o.dropped != nil {
			o.dropped.Inc()
		}
		return s.drop(m, fmt.Errorf("sys: outbox full: %w", ipc.ErrWouldBlock))
	}
	if o.deferred != nil {
		o.deferred.Inc()
	}
	if len(o.q[slot]) == 0 {
		o.retry[slot] = 0
	}
	o.q[slot] = append(o.q[slot], *m)
	o.pending++
	return nil
}

// trySend is the transport's TrySend, under the send lock in a process
// that sends from several goroutines.
func (s *Server) trySend(m *ipc.Message) error {
	if !s.lockSend {
		return s.T.TrySend(m)
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.T.TrySend(m)
}

// flush sends what the channels now take, in order per destination. A
// message whose send fails otherwise (its destination died meanwhile) is
// dropped, as a direct send would have been.
func (s *Server) flush() {
	o := &s.out
	if o.pending == 0 {
		return
	}
	for slot := range o.q {
		q := o.q[slot]
		i := 0
		for i < len(q) {
			err := s.trySend(&q[i])
			if errors.Is(err, ipc.ErrWouldBlock) {
				break
			}
			if err != nil {
				s.drop(&q[i], err)
			}
			i++
		}
		if i > 0 {
			o.pending -= i
			o.q[slot] = append(q[:0], q[i:]...)
			o.retry[slot] = 0 // the channel takes again: retry soon
		}
	}
}

// wait is how long the loop waits for a message before it tries the full
// channels again: the shortest wait of the destinations with messages
// queued.
func (o *outbox) wait() time.Duration {
	d := maxOutboxRetry
	for slot := range o.q {
		if len(o.q[slot]) > 0 {
			d = min(d, max(o.retry[slot], outboxRetry))
		}
	}
	return d
}

// waited notes that a wait ended with nothing received: every destination
// with messages queued waits twice as long next time, up to
// maxOutboxRetry, unless the flush that follows finds room (flush).
func (o *outbox) waited() {
	for slot := range o.q {
		if len(o.q[slot]) > 0 {
			o.retry[slot] = min(2*max(o.retry[slot], outboxRetry), maxOutboxRetry)
		}
	}
}

// recv is the loop's receive: it flushes the outbox first and, while
// messages still wait there, polls for input instead of blocking. A
// message for another incarnation is dropped (see fresh).
func (s *Server) recv(m *ipc.Message) error {
	if s.takeHeld(m) {
		return nil
	}
	for {
		if err := s.recvAny(m); err != nil || s.fresh(m) {
			return err
		}
	}
}

// fresh reports whether m is for this incarnation, and counts it if not:
// a message addressed to a dead predecessor (left in a channel across the
// restart) is not its successor's, and a reply in it could pass for one
// to the successor's call.
func (s *Server) fresh(m *ipc.Message) bool {
	if m.Dst == s.T.Self() || m.Dst == ipc.None {
		return true
	}
	if s.stale != nil {
		s.stale.Inc()
	}
	return false
}

// recvAny takes the next message. Before it sleeps for one, it runs what
// waits for the loop to have nothing to do (Later's tasks, Idle) and rings
// the doorbells; while the outbox holds messages, it sleeps no longer than
// the outbox's wait, then flushes again (see outboxRetry).
func (s *Server) recvAny(m *ipc.Message) error {
	for {
		s.flush()
		if s.out.pending == 0 && s.Idle == nil && len(s.beforeSleep) == 0 && s.bells == nil {
			return s.T.Recv(m)
		}
		err := s.tryRecv(m)
		if !errors.Is(err, ipc.ErrWouldBlock) {
			return err
		}
		if s.out.pending == 0 || s.out.wait() >= longWait {
			if s.runBeforeSleep() {
				continue // it may have sent: flush and look again
			}
			if s.Idle != nil && s.Idle(s) {
				continue // it found work; look again before sleeping
			}
		}
		s.ringDoorbells()
		if s.out.pending == 0 {
			return s.T.Recv(m)
		}
		if err := s.waitOutbox(m); !errors.Is(err, ipc.ErrTimeout) {
			return err
		}
		s.out.waited()
	}
}

// longWait is the outbox's wait from which the loop waits as it sleeps
// for want of messages: such a wait comes after the channel has been full
// for about as long already (an application that never reads, a peer
// stopped), not for a moment. The tasks that wait for the loop to have
// nothing to do run first (while the channel is full for a moment, they
// wait: tcp's Idle pumps exposed sockets, whose segments would only join
// the outbox), and the wait sleeps through the scheduler: as long as a
// held sleep (shm.HeldSleep) or longer, holding the scheduler's place
// gains nothing, and costs the runtime's monitor thread dozens of
// wake-ups a wait.
const longWait = shm.HeldSleep

// sleepHolder is a transport whose sleeps can hold the process's place in
// the Go scheduler (package ipc/shm: HeldSleep).
type sleepHolder interface{ HoldSleeps(on bool) }

// waitOutbox waits for a message for as long as the outbox says, through
// the scheduler from longWait on.
func (s *Server) waitOutbox(m *ipc.Message) error {
	d := s.out.wait()
	h, ok := s.T.(sleepHolder)
	if !ok || d < longWait {
		return s.T.RecvTimeout(m, d)
	}
	h.HoldSleeps(false)
	defer h.HoldSleeps(true)
	return s.T.RecvTimeout(m, d)
}

// takeHeld gives the oldest message held while the loop waited for a
// buffer, if there is one.
func (s *Server) takeHeld(m *ipc.Message) bool {
	if len(s.held) == 0 {
		return false
	}
	*m = s.held[0]
	s.held = s.held[1:]
	if len(s.held) == 0 {
		s.held = nil
	}
	return true
}

// doorbells is a transport that can hold the wake-ups of its sends
// (package ipc/shm): while held, a send puts its message in the ring but
// wakes nobody, and RingDoorbells wakes, once, each receiver sent to since
// that sleeps. The loop holds them for a batch, so a burst of messages to
// one peer costs one wake-up (a futex system call and, on a shared core, a
// switch to the peer and back) instead of one each.
type doorbells interface {
	HoldDoorbells(on bool)
	RingDoorbells() error
}

// maxBatch bounds the messages the loop takes between two rings of the
// doorbells, so that a peer on another core is not kept waiting for
// the end of a long burst.
const maxBatch = 64

// tryRecv takes a waiting message, ringing the doorbells every maxBatch
// messages.
func (s *Server) tryRecv(m *ipc.Message) error {
	err := s.T.TryRecv(m)
	if err == nil && s.bells != nil {
		if s.batch++; s.batch >= maxBatch {
			s.ringDoorbells()
		}
	}
	return err
}

// ringDoorbells wakes the receivers the batch sent to that sleep.
func (s *Server) ringDoorbells() {
	if s.bells == nil {
		return
	}
	s.batch = 0
	if err := s.bells.RingDoorbells(); err != nil {
		s.Log.Printf("doorbells: %v", err)
	}
}

// runBeforeSleep runs the tasks Later queued, and says whether there were
// any.
func (s *Server) runBeforeSleep() bool {
	if len(s.beforeSleep) == 0 {
		return false
	}
	fs := s.beforeSleep
	s.beforeSleep = nil
	for _, f := range fs {
		f()
	}
	return true
}

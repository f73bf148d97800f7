package systest

import (
	"errors"
	"sync"
	"time"

	"github.com/newtsim/newtsim/ipc"
)

// ErrEmpty is what Recv gives when nothing is queued: a fake transport
// has nobody to wait for.
var ErrEmpty = errors.New("systest: nothing queued to receive")

// Transport is an in-memory ipc.Transport: Recv takes the messages queued
// with Queue, in order, and Send records what the server sent. It never
// blocks, and refuses only the sends a test asked it to (Refuse). It is safe for concurrent use, so a
// role's goroutines (a device's receive side) may send beside its loop.
type Transport struct {
	mu    sync.Mutex
	self  ipc.Endpoint
	in    []ipc.Message
	out   []ipc.Message
	fail  map[ipc.Endpoint]error // sends to these endpoints fail
	stats ipc.Stats
	// sleepShutdown makes the next Recv on an empty queue, where a real
	// transport would put the loop to sleep, give a Shutdown instead.
	sleepShutdown bool
	waits         []time.Duration // the timeouts of the waits that found nothing
	// pretend, when set, is what is left of a stretch of pretend time
	// (ShutdownAfterWaiting).
	pretend *stretch
}

// stretch is a stretch of pretend time a loop waits through.
type stretch struct {
	left  time.Duration // pretend time left
	polls int           // looks left
}

// pass has a receive that found nothing pass d of the stretch, and says
// whether the stretch is over. Call it with f.mu held.
func (f *Transport) pass(d time.Duration) bool {
	p := f.pretend
	if p == nil {
		return false
	}
	p.left -= d
	p.polls--
	if p.left > 0 && p.polls > 0 {
		return false
	}
	f.pretend, f.sleepShutdown = nil, false
	return true
}

// ShutdownWhenIdle makes the next Recv that finds nothing queued, the
// point where a real loop would sleep, give a Shutdown from the kernel, so
// a test can run a loop up to and through its going idle.
func (f *Transport) ShutdownWhenIdle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleepShutdown = true
}

var _ ipc.Transport = (*Transport)(nil)

// NewTransport is a transport for the process self.
func NewTransport(self ipc.Endpoint) *Transport { return &Transport{self: self} }

// Queue adds messages for Recv to return, after those already queued.
func (f *Transport) Queue(m ...ipc.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.in = append(f.in, m...)
}

// Queued is the number of messages not yet received.
func (f *Transport) Queued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.in)
}

// Take returns what was sent since the last Take, in order.
func (f *Transport) Take() []ipc.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.out
	f.out = nil
	return out
}

// Self returns the process's endpoint.
func (f *Transport) Self() ipc.Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.self
}

// SetSelf records a new endpoint, as after a restart.
func (f *Transport) SetSelf(e ipc.Endpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.self = e
}

// Refuse makes sends to dst fail with err, as a transport refuses a send
// to a dead endpoint (ipc.ErrDeadEndpoint), one it has no channel to
// (ipc.ErrNoRoute) or a full channel (ipc.ErrWouldBlock); a nil err
// clears it.
func (f *Transport) Refuse(dst ipc.Endpoint, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[ipc.Endpoint]error{}
	}
	if err == nil {
		delete(f.fail, dst)
		return
	}
	f.fail[dst] = err
}

// Send records m, from the process's endpoint, unless sends to its
// destination are refused.
func (f *Transport) Send(m *ipc.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m.Src = f.self
	if err := f.fail[m.Dst]; err != nil {
		return err
	}
	f.out = append(f.out, *m)
	f.stats.Sent[m.Dst.Slot()%ipc.MaxSlots].Add(1)
	return nil
}

// TrySend is Send: there is always room, unless Refuse says otherwise.
func (f *Transport) TrySend(m *ipc.Message) error { return f.Send(m) }

// Recv takes the next queued message, or gives ErrEmpty.
func (f *Transport) Recv(m *ipc.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.in) == 0 {
		if f.sleepShutdown {
			f.sleepShutdown, f.pretend = false, nil
			*m = ipc.Message{Src: ipc.Kernel, Dst: f.self, Type: ipc.Shutdown}
			return nil
		}
		return ErrEmpty
	}
	*m, f.in = f.in[0], f.in[1:]
	f.stats.Received[m.Src.Slot()%ipc.MaxSlots].Add(1)
	return nil
}

// TryRecv takes the next queued message, or gives ipc.ErrWouldBlock.
func (f *Transport) TryRecv(m *ipc.Message) error {
	return f.recvWithin(m, 0, ipc.ErrWouldBlock)
}

// RecvTimeout takes the next queued message, or gives ipc.ErrTimeout at
// once: the wait is pretend, recorded (Waits).
func (f *Transport) RecvTimeout(m *ipc.Message, d time.Duration) error {
	return f.recvWithin(m, d, ipc.ErrTimeout)
}

// recvWithin takes the next queued message; with none, it passes d of
// pretend time, recorded if d is not zero, and gives none, or the
// Shutdown that ends a stretch of pretend time.
func (f *Transport) recvWithin(m *ipc.Message, d time.Duration, none error) error {
	f.mu.Lock()
	if len(f.in) > 0 {
		f.mu.Unlock()
		return f.Recv(m)
	}
	defer f.mu.Unlock()
	if d > 0 {
		f.waits = append(f.waits, d)
	}
	if f.pass(d) {
		*m = ipc.Message{Src: ipc.Kernel, Dst: f.self, Type: ipc.Shutdown}
		return nil
	}
	return none
}

// ShutdownAfterWaiting makes the receives that find nothing queued pass
// pretend time: a RecvTimeout its whole timeout, a TryRecv none. Once they
// have passed d, or looked polls times, the receive gives a Shutdown from
// the kernel, and so does the next Recv that finds nothing: a test can run
// a loop that waits for something other than a message (its outbox's
// channels to have room) through a stretch of pretend time, and a loop
// that looks without waiting stops too.
func (f *Transport) ShutdownAfterWaiting(d time.Duration, polls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pretend = &stretch{left: d, polls: polls}
	f.sleepShutdown = true
}

// Waits returns the timeouts of the receives that waited (RecvTimeout) and
// found nothing, since the last Waits: the loop's sleeps.
func (f *Transport) Waits() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.waits
	f.waits = nil
	return w
}

// Stats returns the transport's counters.
func (f *Transport) Stats() *ipc.Stats { return &f.stats }

// Close does nothing.
func (f *Transport) Close() error { return nil }

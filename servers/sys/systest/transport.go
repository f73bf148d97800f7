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
			f.sleepShutdown = false
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
	if f.Queued() == 0 {
		return ipc.ErrWouldBlock
	}
	return f.Recv(m)
}

// RecvTimeout takes the next queued message, or gives ipc.ErrTimeout at
// once.
func (f *Transport) RecvTimeout(m *ipc.Message, _ time.Duration) error {
	if f.Queued() == 0 {
		return ipc.ErrTimeout
	}
	return f.Recv(m)
}

// Stats returns the transport's counters.
func (f *Transport) Stats() *ipc.Stats { return &f.stats }

// Close does nothing.
func (f *Transport) Close() error { return nil }

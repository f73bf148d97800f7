package sys

import (
	"errors"
	"time"

	"github.com/newtsim/newtsim/ipc"
)

// The tests inside package sys cannot use package systest, which imports
// sys; they have this small fake instead.

// encode returns m carrying body.
func encode(m ipc.Message, body interface{ Encode(*ipc.Message) }) ipc.Message {
	body.Encode(&m)
	return m
}

// fakeTransport is an in-memory ipc.Transport: Recv pops in, Send appends
// to out.
type fakeTransport struct {
	self    ipc.Endpoint
	in, out []ipc.Message
	stats   ipc.Stats
}

func (f *fakeTransport) Self() ipc.Endpoint { return f.self }
func (f *fakeTransport) Send(m *ipc.Message) error {
	m.Src = f.self
	f.out = append(f.out, *m)
	return nil
}
func (f *fakeTransport) TrySend(m *ipc.Message) error { return f.Send(m) }
func (f *fakeTransport) Recv(m *ipc.Message) error {
	if len(f.in) == 0 {
		return errors.New("fake: nothing left")
	}
	*m, f.in = f.in[0], f.in[1:]
	return nil
}
func (f *fakeTransport) TryRecv(m *ipc.Message) error { return f.Recv(m) }
func (f *fakeTransport) RecvTimeout(m *ipc.Message, _ time.Duration) error {
	return f.Recv(m)
}
func (f *fakeTransport) Stats() *ipc.Stats { return &f.stats }
func (f *fakeTransport) Close() error      { return nil }

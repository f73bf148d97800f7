package sys

import (
	"errors"
	"io"
	"log"
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/boot"
	"github.com/newtsim/newtsim/ipc/kcall"
)

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

func TestServeLoop(t *testing.T) {
	self := ipc.MakeEndpoint(2, 1)
	ip := ipc.MakeEndpoint(4, 1)
	ip2 := ipc.MakeEndpoint(4, 2)
	ft := &fakeTransport{self: self, in: []ipc.Message{
		{Src: ip, Dst: self, Type: ipc.Ping, Seq: 9, Arg: [6]uint64{1, 2}},
		encode(ipc.Message{Src: ipc.Kernel, Dst: self}, kcall.EndpointUpdate{Slot: 4, Endpoint: ip2}),
		encode(ipc.Message{Src: ipc.Kernel, Dst: self}, kcall.Alarm{Cookie: 77}),
		{Src: ipc.Kernel, Dst: self, Type: ipc.Shutdown},
		{Src: ip2, Dst: self, Type: ipc.Ping}, // after Shutdown: never read
	}}
	s := &Server{Opts: boot.Options{Name: "tcp", Peers: map[string]int{"ip": 4}}, T: ft,
		peers: map[string]ipc.Endpoint{"ip": ip}, Log: log.New(io.Discard, "", 0)}
	s.names[4] = "ip"
	var handled []ipc.Type
	h := HandlerFunc(func(_ *Server, m *ipc.Message) error {
		handled = append(handled, m.Type)
		return nil
	})
	if err := s.Serve(h); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if len(ft.out) != 1 || ft.out[0].Type != ipc.Pong || ft.out[0].Dst != ip || ft.out[0].Seq != 9 || ft.out[0].Arg[1] != 2 {
		t.Fatalf("replies %+v, want one Pong to ip with seq 9 and the ping's arguments", ft.out)
	}
	if got, _ := s.Peer("ip"); got != ip2 {
		t.Fatalf("peer ip = %s after the update, want %s", got, ip2)
	}
	if len(handled) != 2 || handled[0] != ipc.EndpointUpdate || handled[1] != ipc.Alarm {
		t.Fatalf("handler saw %v, want endpoint-update and alarm", handled)
	}
	if len(ft.in) != 1 {
		t.Fatal("Serve read past Shutdown")
	}
}

func TestUpdateForOtherSlotIgnored(t *testing.T) {
	self := ipc.MakeEndpoint(2, 1)
	ip := ipc.MakeEndpoint(4, 1)
	ft := &fakeTransport{self: self, in: []ipc.Message{
		// An update whose endpoint names another slot than it claims.
		encode(ipc.Message{Src: ipc.Kernel, Dst: self}, kcall.EndpointUpdate{Slot: 4, Endpoint: ipc.MakeEndpoint(5, 3)}),
		{Src: ipc.Kernel, Dst: self, Type: ipc.Shutdown},
	}}
	s := &Server{T: ft, peers: map[string]ipc.Endpoint{"ip": ip}, Log: log.New(io.Discard, "", 0)}
	s.names[4] = "ip"
	if err := s.Serve(HandlerFunc(func(*Server, *ipc.Message) error { return nil })); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Peer("ip"); got != ip {
		t.Fatalf("peer ip = %s, want it unchanged", got)
	}
}

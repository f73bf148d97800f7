package sys

import (
	"errors"
	"io"
	"log"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/ipc/kmsg"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/ipc/pool"
)

// kernelEnd gives s a kernel connection and returns a function that reads
// the next message s sent the kernel.
func kernelEnd(t *testing.T, s *Server) func() ipc.Message {
	t.Helper()
	k, p, err := kmsg.Pair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(k); unix.Close(p) })
	s.K = kmsg.New(p, s.Opts.Endpoint)
	return func() ipc.Message {
		t.Helper()
		var b [ipc.MessageSize]byte
		n, err := unix.Read(k, b[:])
		if err != nil {
			t.Fatal(err)
		}
		var m ipc.Message
		if err := m.Unmarshal(b[:n]); err != nil {
			t.Fatal(err)
		}
		return m
	}
}

func TestArmAlarm(t *testing.T) {
	s := &Server{}
	s.Opts.Endpoint = ipc.MakeEndpoint(3, 1)
	next := kernelEnd(t, s)
	tests := []struct {
		d, want time.Duration
	}{
		{5 * time.Millisecond, 5 * time.Millisecond},
		{time.Microsecond, MinAlarm},
		{-time.Second, MinAlarm}, // a deadline already past
	}
	for _, tt := range tests {
		if err := s.ArmAlarm(tt.d); err != nil {
			t.Fatal(err)
		}
		m := next()
		var a kcall.SetAlarm
		a.Decode(&m)
		if m.Type != ipc.SetAlarm || m.Dst != ipc.Kernel || a.After != tt.want {
			t.Errorf("ArmAlarm(%v) sent %v (after %v), want a SetAlarm after %v", tt.d, &m, a.After, tt.want)
		}
	}
}

func TestDeadline(t *testing.T) {
	s := &Server{}
	s.Opts.Endpoint = ipc.MakeEndpoint(3, 1)
	next := kernelEnd(t, s)
	now := time.Now()
	var d Deadline
	steps := []struct {
		at   time.Duration // from now; 0: the alarm went off
		arms time.Duration // the alarm Set asks for; 0: none
	}{
		{10 * time.Millisecond, 10 * time.Millisecond},
		{20 * time.Millisecond, 0}, // later than the armed one: it waits
		{10 * time.Millisecond, 0}, // the same
		{5 * time.Millisecond, 5 * time.Millisecond},
		{0, 0},
		{20 * time.Millisecond, 20 * time.Millisecond}, // nothing armed now
	}
	for i, st := range steps {
		if st.at == 0 {
			d.Expired()
			continue
		}
		if err := d.Set(s, now, now.Add(st.at)); err != nil {
			t.Fatal(err)
		}
		if st.arms == 0 {
			continue
		}
		m := next()
		var a kcall.SetAlarm
		a.Decode(&m)
		if a.After != st.arms {
			t.Fatalf("step %d: armed after %v, want %v", i, a.After, st.arms)
		}
	}
	// Nothing else was sent: the next message is one we send now.
	s.ArmAlarm(time.Hour)
	m := next()
	var a kcall.SetAlarm
	if a.Decode(&m); a.After != time.Hour {
		t.Fatalf("an alarm no step asked for: %v", &m)
	}
}

// testPool makes a pool the server owns.
func testPool(t *testing.T, s *Server) {
	t.Helper()
	p, err := pool.Create(pool.Config{Path: filepath.Join(t.TempDir(), "pool"), ID: uint8(s.Opts.Endpoint.Slot()),
		Owner: s.Opts.Endpoint, Count: 2, BufSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	s.Pool = p
}

// failTransport refuses every send.
type failTransport struct{ fakeTransport }

func (f *failTransport) Send(*ipc.Message) error    { return ipc.ErrDeadEndpoint }
func (f *failTransport) TrySend(*ipc.Message) error { return ipc.ErrDeadEndpoint }

func TestSendCopy(t *testing.T) {
	self, ip := ipc.MakeEndpoint(3, 1), ipc.MakeEndpoint(4, 1)
	ft := &fakeTransport{self: self}
	s := &Server{T: ft, peers: map[string]ipc.Endpoint{"ip": ip}, Log: log.New(io.Discard, "", 0)}
	s.Opts.Endpoint = self
	s.lockSend = true // straight to the transport
	testPool(t, s)
	var m ipc.Message
	packet.Datagram{Off: 20}.Encode(&m)
	if err := s.SendCopy("ip", &m, []byte("segment")); err != nil {
		t.Fatal(err)
	}
	if len(ft.out) != 1 || ft.out[0].Dst != ip {
		t.Fatalf("sent %v, want one message to ip", ft.out)
	}
	var d packet.Datagram
	d.Decode(&ft.out[0])
	b, err := s.Pool.Bytes(d.Buf, self)
	if err != nil || string(b) != "segment" || d.Off != 20 {
		t.Fatalf("the copy: %q, offset %d (%v)", b, d.Off, err)
	}

	// A send that fails frees the copy: both buffers stay usable.
	s.T = &failTransport{}
	for range 3 {
		if err := s.SendCopy("ip", &m, []byte("x")); !errors.Is(err, ipc.ErrDeadEndpoint) {
			t.Fatalf("SendCopy to a dead peer: %v", err)
		}
	}
	if got := s.Pool.Stats().Allocated; got != 1 {
		t.Fatalf("%d buffers allocated, want the first copy's only", got)
	}
	s.Pool.Free(d.Buf)
}

func TestSendCopyNoBuffer(t *testing.T) {
	self := ipc.MakeEndpoint(3, 1)
	s := &Server{T: &fakeTransport{self: self}, peers: map[string]ipc.Endpoint{"ip": ipc.MakeEndpoint(4, 1)}}
	s.Opts.Endpoint = self
	s.lockSend = true
	testPool(t, s)
	var m ipc.Message
	packet.Frame{Type: ipc.FrameTx}.Encode(&m)
	for range 2 {
		if err := s.SendCopy("ip", &m, []byte("frame")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SendCopy("ip", &m, []byte("frame")); !errors.Is(err, ErrNoBuffer) {
		t.Fatalf("with the pool empty: %v, want ErrNoBuffer", err)
	}
}

// An application waiting for a reply handles the common messages as the
// loop does.
func TestBackgroundAsServe(t *testing.T) {
	self, ip, ip2 := ipc.MakeEndpoint(2, 1), ipc.MakeEndpoint(4, 1), ipc.MakeEndpoint(4, 2)
	ft := &fakeTransport{self: self}
	s := &Server{T: ft, peers: map[string]ipc.Endpoint{"ip": ip}, Log: log.New(io.Discard, "", 0)}
	s.names[4] = "ip"
	s.lockSend = true
	for _, m := range []ipc.Message{
		{Src: ip, Dst: self, Type: ipc.Ping, Seq: 5, Arg: [ipc.NumArgs]uint64{1, 2}},
		encode(ipc.Message{Src: ipc.Kernel, Dst: self}, kcall.EndpointUpdate{Slot: 4, Endpoint: ip2}),
		encode(ipc.Message{Src: ipc.Kernel, Dst: self}, kcall.Alarm{Cookie: 1}), // not for an application: ignored
	} {
		s.background(&m)
	}
	if len(ft.out) != 1 || ft.out[0].Type != ipc.Pong || ft.out[0].Seq != 5 || ft.out[0].Arg != [ipc.NumArgs]uint64{1, 2} {
		t.Fatalf("sent %v, want one Pong with the ping's seq and arguments", ft.out)
	}
	if got, _ := s.Peer("ip"); got != ip2 {
		t.Fatalf("peer ip = %s, want %s", got, ip2)
	}
}

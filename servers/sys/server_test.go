package sys_test

import (
	"errors"
	"testing"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// recorder is a role that records the types of the messages the loop hands
// it.
type recorder struct{ handled []ipc.Type }

func (r *recorder) Handle(_ *sys.Server, m *ipc.Message) error {
	r.handled = append(r.handled, m.Type)
	return nil
}

func newTCP(t *testing.T) (*systest.Harness, *recorder) {
	r := &recorder{}
	h := systest.New(t, systest.Config{Name: "tcp", Procs: map[string]int{"tcp": 2, "ip": 4}, Peers: []string{"ip"}},
		func(*sys.Server) (sys.Handler, error) { return r, nil })
	return h, r
}

func TestServeLoop(t *testing.T) {
	h, r := newTCP(t)
	ip, self := h.Endpoint("ip"), h.Endpoint("tcp")
	ip2 := ipc.MakeEndpoint(4, 2)
	from := func(src ipc.Endpoint, m ipc.Message) ipc.Message {
		m.Src, m.Dst = src, self
		return m
	}
	h.T.Queue(
		from(ip, systest.Ping(9, 1, 2)),
		from(ipc.Kernel, systest.EndpointUpdate(4, ip2)),
		from(ipc.Kernel, systest.Alarm()),
		from(ipc.Kernel, systest.Shutdown()),
		from(ip2, systest.Ping(10)), // after Shutdown: never read
	)
	if err := h.S.Serve(h.Handler); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	want := from(ip, systest.Pong(9, 1, 2))
	want.Src, want.Dst = self, ip
	if out := h.Sent(); len(out) != 1 || out[0] != want {
		t.Fatalf("replies %+v, want one Pong to ip with seq 9 and the ping's arguments", out)
	}
	if got, _ := h.S.Peer("ip"); got != ip2 {
		t.Fatalf("peer ip = %s after the update, want %s", got, ip2)
	}
	if len(r.handled) != 2 || r.handled[0] != ipc.EndpointUpdate || r.handled[1] != ipc.Alarm {
		t.Fatalf("handler saw %v, want endpoint-update and alarm", r.handled)
	}
	if h.T.Queued() != 1 {
		t.Fatal("Serve read past Shutdown")
	}
}

func TestUpdateForOtherSlotIgnored(t *testing.T) {
	h, _ := newTCP(t)
	ip := h.Endpoint("ip")
	// An update whose endpoint names another slot than it claims.
	h.Deliver("kernel", systest.EndpointUpdate(4, ipc.MakeEndpoint(5, 3)))
	if got, _ := h.S.Peer("ip"); got != ip {
		t.Fatalf("peer ip = %s, want it unchanged", got)
	}
}

// newIP is an ip server of a small run: nic's frames reach it through pf,
// a peer, and udp is a peer too.
func newIP(t *testing.T) *systest.Harness {
	return systest.New(t, systest.Config{Name: "ip", Procs: map[string]int{"nic": 1, "pf": 3, "ip": 4, "udp": 5},
		Peers: []string{"pf", "udp"}, Routes: map[string]string{"nic": "pf"}},
		func(*sys.Server) (sys.Handler, error) { return &recorder{}, nil })
}

func TestNewLooksUpPeers(t *testing.T) {
	h := newIP(t)
	for _, n := range []string{"pf", "udp"} {
		if got, ok := h.S.Peer(n); !ok || got != h.Endpoint(n) {
			t.Errorf("peer %s = %v, %v; want %v", n, got, ok, h.Endpoint(n))
		}
	}
	if _, ok := h.S.Peer("nic"); ok {
		t.Error("nic is a peer, want only pf and udp")
	}
}

func TestRelease(t *testing.T) {
	h := newIP(t)
	own, _, err := h.S.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ref  pool.Ref
		to   string // where the buffer goes back; "": freed here
		fail bool
	}{
		{"its own", own, "", false},
		{"a peer's", h.Buffer("udp", []byte("x")), "udp", false},
		{"one hop towards its owner", h.Buffer("nic", []byte("x")), "pf", false},
		{"of no process", pool.MakeRef(40, 0, 1), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.S.Release(tt.ref)
			if (err != nil) != tt.fail {
				t.Fatalf("Release(%v) = %v, want failure %v", tt.ref, err, tt.fail)
			}
			out := h.Sent()
			if tt.to == "" {
				if len(out) != 0 {
					t.Fatalf("sent %v, want nothing", out)
				}
				return
			}
			if len(out) != 1 || out[0].Type != ipc.BufFree || out[0].Dst != h.Endpoint(tt.to) || systest.Ref(out[0]) != tt.ref {
				t.Fatalf("sent %v, want the buffer back to %s", out, tt.to)
			}
		})
	}
	if n := h.InUse("ip"); n != 0 {
		t.Errorf("%d of ip's own buffers in use, want none", n)
	}
}

func TestBufferChecksSender(t *testing.T) {
	h := newIP(t)
	ref := h.Buffer("nic", []byte("frame"))
	m := systest.FrameRx(ref)
	for _, tt := range []struct {
		from ipc.Endpoint
		ok   bool
	}{{h.Endpoint("pf"), true}, {ipc.MakeEndpoint(30, 1), false}} {
		m.Src = tt.from
		b, err := h.S.Buffer(&m, ref)
		if (err == nil) != tt.ok || (tt.ok && string(b) != "frame") {
			t.Errorf("Buffer from %v = %q, %v; want ok %v", tt.from, b, err, tt.ok)
		}
	}
}

// forwarder is a role that sends every message it gets on to ip,
// unchanged, and returns what the send said.
type forwarder struct{}

func (forwarder) Handle(s *sys.Server, m *ipc.Message) error {
	f := *m
	return s.SendTo("ip", &f)
}

// A send that fails is a drop: counted by peer and reason, the buffer it
// carried given back, and the loop goes on.
func TestFailedSendIsADrop(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		reason string
		owner  string // whose buffer the message carries
		back   string // where the buffer goes back; "": freed here
	}{
		{"to a dead peer, its own buffer", ipc.ErrDeadEndpoint, sys.ReasonDead, "tcp", ""},
		{"to a dead peer, another's buffer", ipc.ErrDeadEndpoint, sys.ReasonDead, "nic", "pf"},
		{"no route", ipc.ErrNoRoute, sys.ReasonNoRoute, "tcp", ""},
		{"a full channel", ipc.ErrWouldBlock, sys.ReasonFull, "tcp", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := systest.New(t, systest.Config{Name: "tcp", Procs: map[string]int{"nic": 1, "pf": 3, "ip": 4, "tcp": 2},
				Peers: []string{"ip", "pf"}, Routes: map[string]string{"nic": "pf"}},
				func(*sys.Server) (sys.Handler, error) { return forwarder{}, nil })
			if tt.err == ipc.ErrWouldBlock {
				h.S.SendFromGoroutines() // straight to the transport, no outbox to wait in
			}
			h.T.Refuse(h.Endpoint("ip"), tt.err)
			ref := h.Buffer(tt.owner, []byte("a frame"))
			h.Deliver("pf", systest.FrameRx(ref), systest.FrameRx(h.Buffer(tt.owner, []byte("another"))))
			if got := h.Metric("newtsim_server_send_failures_total", "peer", "ip", "reason", tt.reason); got != 2 {
				t.Errorf("send failures to ip for %s = %v, want 2", tt.reason, got)
			}
			out := h.Sent()
			if tt.back == "" {
				if len(out) != 0 || h.InUse(tt.owner) != 0 {
					t.Fatalf("sent %v with %d buffers in use, want the buffers freed here", out, h.InUse(tt.owner))
				}
				return
			}
			if len(out) != 2 || out[0].Type != ipc.BufFree || out[0].Dst != h.Endpoint(tt.back) || systest.Ref(out[0]) != ref {
				t.Fatalf("sent %v, want both buffers back towards %s", out, tt.back)
			}
		})
	}
}

// A message for a process that is not a peer is dropped the same way.
func TestSendToNoPeerIsADrop(t *testing.T) {
	h, _ := newTCP(t)
	ref := h.Buffer("tcp", []byte("x"))
	m := systest.FrameTx(ref)
	if err := h.S.SendTo("udp", &m); !errors.Is(err, sys.ErrDropped) || !errors.Is(err, ipc.ErrNoRoute) {
		t.Fatalf("SendTo a process that is no peer: %v, want a drop for want of a route", err)
	}
	if h.InUse("tcp") != 0 || h.Metric("newtsim_server_send_failures_total", "peer", "udp", "reason", sys.ReasonNoRoute) != 1 {
		t.Fatal("the drop was not counted, or its buffer not freed")
	}
}

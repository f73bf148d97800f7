package sys_test

import (
	"testing"

	"github.com/newtsim/newtsim/ipc"
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

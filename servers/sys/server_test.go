package sys_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/packet"
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

// newApp is an application process of a small run, linked to syscall and
// tcp.
func newApp(t *testing.T) *systest.Harness {
	return systest.New(t, systest.Config{Name: "app", Procs: map[string]int{"tcp": 6, "syscall": 7, "app": 8},
		Peers: []string{"syscall", "tcp"}}, func(*sys.Server) (sys.Handler, error) { return &recorder{}, nil })
}

// from sets who sent m to the application.
func from(h *systest.Harness, name string, m ipc.Message) ipc.Message {
	m.Src, m.Dst = h.Endpoint(name), h.Endpoint("app")
	return m
}

// A call does not wait for ever on a server that died: the kernel's
// announcement ends it with an error an errno is made of.
func TestCallEndsWhenThePeerDies(t *testing.T) {
	h := newApp(t)
	sc := h.Endpoint("syscall")
	h.T.Queue(
		from(h, "tcp", systest.Reply(ipc.OpPoll, 0, 1, 0)),                 // not from syscall: not the reply
		from(h, "kernel", systest.EndpointDown(7, ipc.MakeEndpoint(7, 9))), // another incarnation
		from(h, "kernel", systest.EndpointDown(7, sc)),
	)
	m := systest.Poll(3, 1)
	_, err := h.S.Call(&m)
	if !errors.Is(err, ipc.ErrDeadEndpoint) {
		t.Fatalf("Call with syscall dead: %v, want ErrDeadEndpoint", err)
	}
	if h.T.Queued() != 0 {
		t.Fatal("the call ended before the announcement")
	}
}

// A call whose send finds the peer dead picks up the restarted peer's
// endpoint if the kernel announced it, and goes there.
func TestCallFindsTheRestartedPeer(t *testing.T) {
	h := newApp(t)
	old, sc := h.Endpoint("syscall"), ipc.MakeEndpoint(7, 2)
	h.T.Refuse(old, ipc.ErrDeadEndpoint)
	h.T.Queue(
		from(h, "kernel", systest.EndpointDown(7, old)),
		from(h, "kernel", systest.EndpointUpdate(7, sc)),
	)
	h.S.T = &answering{Transport: h.T, from: sc}
	m := systest.Poll(3, 1)
	r, err := h.S.Call(&m)
	if err != nil || r.Src != sc || r.Seq != m.Seq {
		t.Fatalf("Call = %v, %v; want the new syscall's reply", &r, err)
	}
	if got := h.Metric("newtsim_server_send_failures_total", "peer", "syscall", "reason", sys.ReasonDead); got != 1 {
		t.Errorf("send failures to syscall = %v, want 1 (the first try)", got)
	}
}

// answering is a transport whose peer from answers every message sent to
// it with a SocketReply of the same seq.
type answering struct {
	*systest.Transport
	from ipc.Endpoint
}

func (a *answering) TrySend(m *ipc.Message) error {
	if err := a.Transport.TrySend(m); err != nil || m.Dst != a.from {
		return err
	}
	r := systest.Reply(ipc.OpPoll, m.Seq, 1, 0)
	r.Src, r.Dst = a.from, m.Src
	a.Queue(r)
	return nil
}

// An incarnation's calls do not start where its predecessor's did.
func TestCallSeqStartsAtTheGeneration(t *testing.T) {
	h := newApp(t)
	h.S.T = &answering{Transport: h.T, from: h.Endpoint("syscall")}
	m := systest.Poll(3, 1)
	if _, err := h.S.Call(&m); err != nil || m.Seq != 1<<16+1 {
		t.Fatalf("first call of generation 1: seq %d (%v), want %d", m.Seq, err, 1<<16+1)
	}
}

// Only the kernel announces deaths and restarts.
func TestForgedAnnouncementsIgnored(t *testing.T) {
	h := newApp(t)
	sc := h.Endpoint("syscall")
	h.Deliver("tcp", systest.EndpointDown(7, sc), systest.EndpointUpdate(7, ipc.MakeEndpoint(7, 5)))
	if got, _ := h.S.Peer("syscall"); got != sc || h.S.Gone(sc) || h.S.Deaths("syscall") != 0 {
		t.Fatalf("syscall is %s (gone %v, deaths %d) after tcp's forgeries, want them ignored", got, h.S.Gone(sc), h.S.Deaths("syscall"))
	}
	h.Kill("syscall")
	if !h.S.Gone(sc) || h.S.Deaths("syscall") != 1 {
		t.Fatal("the kernel's announcement was not noted")
	}
}

// A wait for a wake-up ends when a process dies: what the waiter keeps
// for it may be gone.
func TestWaitWakeEndsOnADeath(t *testing.T) {
	h := newApp(t)
	h.T.Queue(from(h, "kernel", systest.EndpointDown(6, h.Endpoint("tcp"))), from(h, "tcp", systest.Ping(1)))
	if err := h.S.WaitWake(-1); err != nil {
		t.Fatal(err)
	}
	if h.T.Queued() != 1 || h.S.Deaths("tcp") != 1 {
		t.Fatalf("%d messages left, %d deaths of tcp: want the wait over at the announcement", h.T.Queued(), h.S.Deaths("tcp"))
	}
}

// A message addressed to an earlier incarnation of the server, left in a
// channel across its restart, is dropped and counted, not handled: a reply
// in it could pass for one to the new incarnation's call.
func TestStaleMessagesDropped(t *testing.T) {
	h, r := newTCP(t)
	self := h.Endpoint("tcp")
	old := ipc.MakeEndpoint(self.Slot(), self.Generation()+5)
	stale := systest.Alarm()
	stale.Src, stale.Dst = ipc.Kernel, old
	h.T.Queue(stale)
	h.Deliver("kernel", systest.Alarm())
	if len(r.handled) != 1 || h.Metric("newtsim_server_stale_messages_total") != 1 {
		t.Fatalf("handled %v, %v stale: want the stale alarm dropped and counted", r.handled, h.Metric("newtsim_server_stale_messages_total"))
	}
}

// A restarted server quarantines its pool: every buffer counts as held,
// and comes back as its peers give them back, until each peer has answered
// two rounds of fences; then what nobody gave back is free.
func TestRestartedPoolQuarantined(t *testing.T) {
	h := systest.New(t, systest.Config{Name: "nic", Procs: map[string]int{"nic": 1, "driver": 2}, Peers: []string{"driver"},
		Generation: 2}, func(*sys.Server) (sys.Handler, error) { return &recorder{}, nil })
	if n := h.InUse("nic"); n != systest.Buffers {
		t.Fatalf("%d buffers in use after the restart, want all %d held", n, systest.Buffers)
	}
	if _, _, err := h.S.Alloc(); err == nil {
		t.Fatal("a buffer handed out during the quarantine")
	}
	answer := func(round int) {
		t.Helper()
		out := h.SentTo("driver")
		if len(out) != 1 || out[0].Type != ipc.Ping {
			t.Fatalf("round %d: sent %v, want a fence to the driver", round, out)
		}
		pong := out[0]
		pong.Type = ipc.Pong
		h.Deliver("driver", pong)
	}
	// The driver gives one back: it is free at once.
	held := pool.MakeRef(1, uint32(5*h.Pool("nic").BufSize()), 60)
	h.Deliver("driver", msgBufFree(held))
	if n := h.InUse("nic"); n != systest.Buffers-1 {
		t.Fatalf("%d buffers in use after a BufFree, want %d", n, systest.Buffers-1)
	}
	answer(1)
	if n := h.InUse("nic"); n != systest.Buffers-1 {
		t.Fatalf("%d buffers in use after the first round, want the quarantine on", n)
	}
	answer(2)
	if n := h.InUse("nic"); n != 0 || h.Metric("newtsim_pool_quarantined_buffers") != 0 {
		t.Fatalf("%d buffers in use after the second round, want none", n)
	}
	if out := h.Sent(); len(out) != 0 {
		t.Fatalf("sent %v after the quarantine, want nothing", out)
	}
}

// msgBufFree gives ref back.
func msgBufFree(ref pool.Ref) ipc.Message {
	var m ipc.Message
	packet.BufFree{Buf: ref}.Encode(&m)
	return m
}

// TestTypeTable: the loop holds what arrives to the type table
// (ipc.MaySend) before its role sees it, as the kernel does on the kernel
// transport: on shared memory the receiver is the only check.
func TestTypeTable(t *testing.T) {
	procs := map[string]int{"syscall": 1, "tcp": 2, "ip": 4, "app": 5}
	tests := []struct {
		to, from string
		msg      ipc.Message
		reason   ipc.Refusal // "": handed to the role
	}{
		{"tcp", "app", systest.Shutdown(), ipc.RefuseKernelOnly},
		{"tcp", "app", systest.Alarm(), ipc.RefuseKernelOnly},
		{"tcp", "ip", systest.EndpointDown(5, ipc.MakeEndpoint(5, 1)), ipc.RefuseKernelOnly},
		{"tcp", "app", systest.EndpointUpdate(4, ipc.MakeEndpoint(4, 9)), ipc.RefuseKernelOnly},
		{"tcp", "app", ipc.Message{Type: ipc.Notification}, ipc.RefuseKernelOnly},
		{"tcp", "app", ipc.Message{Type: ipc.Ack}, ipc.RefuseKernelOnly},
		{"tcp", "app", systest.Datagram(0, 0), ipc.RefuseWrongSender},
		{"tcp", "syscall", systest.Datagram(0, 0), ipc.RefuseWrongSender},
		{"tcp", "app", systest.ICMPError(netip.AddrPort{}, netip.AddrPort{}, 0, 3, 3, 0), ipc.RefuseWrongSender},
		{"syscall", "app", systest.Reply(ipc.OpOpen, 1, 3, ipc.MakeEndpoint(5, 1)), ipc.RefuseWrongSender},
		{"syscall", "ip", systest.Reply(ipc.OpOpen, 1, 3, ipc.MakeEndpoint(5, 1)), ipc.RefuseWrongSender},
		{"ip", "app", systest.FrameRx(0), ipc.RefuseWrongSender},
		{"ip", "app", systest.Unreachable(0), ipc.RefuseWrongSender},
		{"tcp", "ip", systest.Datagram(0, 0), ""},
		{"syscall", "tcp", systest.Reply(ipc.OpOpen, 1, 3, ipc.MakeEndpoint(5, 1)), ""},
		{"tcp", "kernel", systest.Alarm(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.msg.Type.String()+" from "+tt.from+" to "+tt.to, func(t *testing.T) {
			r := &recorder{}
			var peers []string
			for n := range procs {
				if n != tt.to {
					peers = append(peers, n)
				}
			}
			h := systest.New(t, systest.Config{Name: tt.to, Procs: procs, Peers: peers},
				func(*sys.Server) (sys.Handler, error) { return r, nil })
			h.Deliver(tt.from, tt.msg)
			if tt.reason == "" {
				if len(r.handled) != 1 || r.handled[0] != tt.msg.Type {
					t.Fatalf("handled %v, want the %s", r.handled, tt.msg.Type)
				}
				return
			}
			if len(r.handled) != 0 {
				t.Fatalf("handled %v, want it refused", r.handled)
			}
			if got := h.Metric("newtsim_server_refused_messages_total", "reason", string(tt.reason)); got != 1 {
				t.Fatalf("refused %v as %s, want 1", got, tt.reason)
			}
		})
	}
}

// TestBufFreeOnlyFromHolder: a buffer comes back only from the process it
// was handed to; a BufFree from any other is refused and counted, and the
// buffer stays in flight (freeing it would let it be reused under the
// holder).
func TestBufFreeOnlyFromHolder(t *testing.T) {
	h := newIP(t)
	ref, _, err := h.S.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	m := systest.FrameTx(ref)
	if err := h.S.SendTo("pf", &m); err != nil {
		t.Fatal(err)
	}
	h.Sent()
	h.Deliver("udp", msgBufFree(ref)) // never given to udp
	if n := h.InUse("ip"); n != 1 {
		t.Fatalf("%d of ip's buffers in use after udp's BufFree, want 1 (still at pf)", n)
	}
	if got := h.Metric("newtsim_server_refused_messages_total", "reason", string(ipc.RefuseNotHolder)); got != 1 {
		t.Fatalf("refused %v BufFrees, want 1", got)
	}
	h.Deliver("pf", msgBufFree(ref))
	if n := h.InUse("ip"); n != 0 {
		t.Fatalf("%d of ip's buffers in use after pf gave it back, want 0", n)
	}
	h.Deliver("pf", msgBufFree(ref)) // twice: the record went with the first
	if got := h.Metric("newtsim_server_refused_messages_total", "reason", string(ipc.RefuseNotHolder)); got != 2 {
		t.Fatalf("refused %v BufFrees, want 2 (a double free)", got)
	}
}

// TestBufFreeAfterSyscallPassedItOn: an application's send goes to
// syscall, which passes the buffer on to the transport that owns the
// socket, and the transport frees it: that BufFree comes back from a
// process the application never handed the buffer to, and must count (the
// message backend's every send; refused, the application's pool runs dry
// and its sends fail with ENOBUFS). Another application still cannot free
// it.
func TestBufFreeAfterSyscallPassedItOn(t *testing.T) {
	h := systest.New(t, systest.Config{Name: "web", Procs: map[string]int{"syscall": 1, "tcp": 2, "web": 5, "evil": 6},
		Peers: []string{"syscall", "tcp", "evil"}, Roles: map[string]string{"web": "httpd", "evil": "httpd"}},
		func(*sys.Server) (sys.Handler, error) { return &recorder{}, nil })
	ref, _, err := h.S.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	m := systest.SendTo(3, netip.AddrPort{}, ref, 0)
	if err := h.S.SendTo("syscall", &m); err != nil {
		t.Fatal(err)
	}
	h.Sent()
	h.Deliver("evil", systest.BufFree(ref))
	if n := h.InUse("web"); n != 1 {
		t.Fatalf("%d buffers in use after another application's BufFree, want 1", n)
	}
	h.Deliver("tcp", systest.BufFree(ref))
	if n := h.InUse("web"); n != 0 {
		t.Fatalf("%d buffers in use after the transport freed the send, want 0", n)
	}
}

// TestBufFreeOfReceivedDataFromTheCaller: a transport answers a receive
// through syscall with its data in a buffer of its pool; syscall passes the
// reply on to the application, which gives the buffer back straight to
// the transport where it is linked to it (the conformance topology): that
// BufFree comes from a process the transport never handed the buffer to,
// and must count (refused, the transport's pool ran dry and every receive
// failed with ENOBUFS: TestConformanceMessage). Another application still
// cannot free it.
func TestBufFreeOfReceivedDataFromTheCaller(t *testing.T) {
	h := systest.New(t, systest.Config{Name: "tcp", Procs: map[string]int{"syscall": 1, "tcp": 2, "app": 5, "evil": 6},
		Peers: []string{"syscall", "app", "evil"}, Roles: map[string]string{"app": "httpd", "evil": "httpd"}},
		func(*sys.Server) (sys.Handler, error) { return &recorder{}, nil })
	ref, _, err := h.S.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	r := systest.Reply(ipc.OpRecvFrom, 1, 10, h.Endpoint("app"))
	r.Arg[3] = uint64(ref)
	if err := h.S.SendTo("syscall", &r); err != nil {
		t.Fatal(err)
	}
	h.Sent()
	h.Deliver("evil", systest.BufFree(ref))
	if n := h.InUse("tcp"); n != 1 {
		t.Fatalf("%d buffers in use after another application's BufFree, want 1", n)
	}
	h.Deliver("app", systest.BufFree(ref))
	if n := h.InUse("tcp"); n != 0 {
		t.Fatalf("%d buffers in use after the application the data was for freed it, want 0", n)
	}
}

// TestDeadAppsBuffersReclaimed: an application that dies holding buffers
// it was handed does not keep them for ever: when the kernel announces its
// death, the server that handed them on takes them back.
func TestDeadAppsBuffersReclaimed(t *testing.T) {
	h := systest.New(t, systest.Config{Name: "syscall", Procs: map[string]int{"syscall": 1, "tcp": 2, "app": 5},
		Peers: []string{"tcp", "app"}}, func(*sys.Server) (sys.Handler, error) { return &recorder{}, nil })
	var refs []pool.Ref
	for i := 0; i < 3; i++ {
		ref, _, err := h.S.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
		r := systest.Reply(ipc.OpRecvFrom, uint32(i), 10, h.Endpoint("app"))
		r.Arg[3] = uint64(ref)
		if err := h.S.SendTo("app", &r); err != nil {
			t.Fatal(err)
		}
	}
	h.Sent()
	if n := h.InUse("syscall"); n != 3 {
		t.Fatalf("%d buffers in use, want the 3 handed to app", n)
	}
	h.Kill("app")
	if n := h.InUse("syscall"); n != 0 {
		t.Fatalf("%d buffers in use after app died, want 0", n)
	}
}

// TestReleaseNeverWaits: a process that sends from goroutines (a nic, the
// client host at the far end of its wire) returns a buffer through its
// outbox when the owner's channel is full, and the BufFree goes once there
// is room. (Before, its Release was a send that waited for room, or, here
// where the channel refuses, dropped the BufFree and lost the buffer to its
// owner: two such processes returning each other's buffers deadlocked.)
func TestReleaseNeverWaits(t *testing.T) {
	h := systest.New(t, systest.Config{Name: "nic", Procs: map[string]int{"driver": 6, "nic": 7, "client": 9},
		Peers: []string{"driver", "client"}, Roles: map[string]string{"client": "clienthost"}},
		func(*sys.Server) (sys.Handler, error) { return &recorder{}, nil })
	h.S.SendFromGoroutines()
	ref := h.Buffer("client", []byte("a frame off the wire"))
	client := h.Endpoint("client")
	h.T.Refuse(client, ipc.ErrWouldBlock)
	if err := h.S.Release(ref); err != nil {
		t.Fatalf("Release with the owner's channel full: %v", err)
	}
	if got := h.SentTo("client"); len(got) != 0 {
		t.Fatalf("sent %v to a full channel", got)
	}
	if got := h.Metric("newtsim_server_deferred_sends_total"); got != 1 {
		t.Fatalf("deferred sends %v, want the BufFree waiting in the outbox", got)
	}
	h.T.Refuse(client, nil)
	h.Idle() // the loop sends what waits before it would sleep
	got := h.SentTo("client")
	if len(got) != 1 || got[0].Type != ipc.BufFree {
		t.Fatalf("sent %v to client once there was room, want the BufFree", got)
	}
}

// TestBufferWaitOncePerDrought: a copy that finds the pool empty waits for
// a buffer to come back; once a wait has ended without one, copies give up
// at once until a buffer has come back. (Before, every copy waited
// BufferWait: tcp, ip and pf, each waiting for buffers the others held
// unread, stopped for minutes under a SYN flood.)
func TestBufferWaitOncePerDrought(t *testing.T) {
	h := newIP(t)
	copyOne := func() error {
		var m ipc.Message
		packet.Frame{Type: ipc.FrameTx}.Encode(&m)
		return h.S.SendCopy("pf", &m, []byte("frame"))
	}
	for range systest.Buffers {
		if err := copyOne(); err != nil {
			t.Fatal(err)
		}
	}
	held := h.SentTo("pf")
	steps := []struct {
		what              string
		fails             bool
		timeouts, skipped float64
	}{
		{"the first copy with the pool empty waits, in vain", true, 1, 0},
		{"the next gives up at once", true, 1, 1},
		{"and the next", true, 1, 2},
		{"a buffer came back: the copy takes it", false, 1, 2},
		{"the pool empty again, a copy waits again", true, 2, 2},
	}
	for i, st := range steps {
		if i == 3 {
			h.Deliver("pf", msgBufFree(systest.Ref(held[0])))
		}
		err := copyOne()
		if got := errors.Is(err, sys.ErrNoBuffer); got != st.fails {
			t.Fatalf("%s: copy failed with no buffer %v (%v), want %v", st.what, got, err, st.fails)
		}
		timeouts := h.Metric("newtsim_server_buffer_wait_timeouts_total")
		skipped := h.Metric("newtsim_server_buffer_waits_skipped_total")
		if timeouts != st.timeouts || skipped != st.skipped {
			t.Fatalf("%s: %v waits timed out and %v skipped, want %v and %v", st.what, timeouts, skipped, st.timeouts, st.skipped)
		}
	}
}

// TestOutboxWaitBacksOff: while a destination's channel stays full (an
// application that never reads), the loop waits for a message between
// retries, first outboxRetry (20 us) as before, then twice as long each
// time up to a bound; a send that goes through starts over, and another
// destination's full channel is retried at its own pace. (Before, the loop
// slept 20 µs, or as soon after as the Go runtime's timer fired, between
// looks for as long as the channel stayed full, for the life of the
// application, and never waited for a message: this test's thousand looks
// took it a second or more.)
func TestOutboxWaitBacksOff(t *testing.T) {
	h := newIP(t)
	udp, pf := h.Endpoint("udp"), h.Endpoint("pf")
	send := func(peer string) {
		t.Helper()
		m := ipc.Message{Type: ipc.Ping}
		if err := h.S.SendTo(peer, &m); err != nil {
			t.Fatalf("send to %s: %v", peer, err)
		}
	}
	const second, looks = time.Second, 1000
	h.T.Refuse(udp, ipc.ErrWouldBlock)
	send("udp")
	waits := h.IdleFor(second, looks)
	if len(waits) == 0 {
		t.Fatalf("the loop looked %d times for a message without waiting for one", looks)
	}
	var total time.Duration
	for i, w := range waits {
		total += w
		if i == 0 && w != 20*time.Microsecond {
			t.Fatalf("first wait %v, want 20µs: a channel full for a moment is retried as soon as before", w)
		}
		if i > 0 && (w < waits[i-1] || w > 2*waits[i-1]) {
			t.Fatalf("wait %d: %v after %v, want it to grow, at most doubling", i, w, waits[i-1])
		}
	}
	bound := waits[len(waits)-1]
	if total < second || bound > 100*time.Millisecond {
		t.Fatalf("the loop waited %v in %d waits, the last %v: want a second, in waits of at most 100ms", total, len(waits), bound)
	}
	// The 13 waits that double from 20µs to 82ms, then 9 of 100ms: about
	// as often as an idle receiver on shared memory looks at its rings.
	if len(waits) > 25 {
		t.Fatalf("%d waits in a second of a full channel, want at most 25", len(waits))
	}

	// Another destination's full channel is retried at its own pace.
	h.T.Refuse(pf, ipc.ErrWouldBlock)
	send("pf")
	if waits := h.IdleFor(100*time.Microsecond, looks); len(waits) == 0 || waits[0] != 20*time.Microsecond {
		t.Fatalf("waits %v with pf's channel just full beside udp's full for a second, want the first of 20µs", waits)
	}
	h.T.Refuse(pf, nil)
	if waits := h.IdleFor(200*time.Millisecond, looks); len(waits) == 0 || waits[0] != bound {
		t.Fatalf("waits %v once pf takes again, want udp's, %v", waits, bound)
	}
	if got := h.SentTo("pf"); len(got) != 1 {
		t.Fatalf("sent %v to pf once it had room, want its message", got)
	}

	// A send that goes through starts the destination's waits over.
	h.T.Refuse(udp, nil)
	h.Idle()
	if got := h.SentTo("udp"); len(got) != 1 {
		t.Fatalf("sent %v to udp once it had room, want its message", got)
	}
	h.T.Refuse(udp, ipc.ErrWouldBlock)
	send("udp")
	if waits := h.IdleFor(50*time.Microsecond, looks); len(waits) == 0 || waits[0] != 20*time.Microsecond {
		t.Fatalf("waits %v for a channel full again after a send went through, want the first of 20µs", waits)
	}
}

// TestLaterRunsWhileOutboxWaits: the tasks that wait for the loop to have
// nothing to do run though a destination's channel stays full, once it has
// been full for a few milliseconds. (Before, they waited for the outbox to
// empty: tcp's exported state stayed stale, and its exposed sockets
// unserved, for as long as an application did not read.)
func TestLaterRunsWhileOutboxWaits(t *testing.T) {
	h := newIP(t)
	h.T.Refuse(h.Endpoint("udp"), ipc.ErrWouldBlock)
	m := ipc.Message{Type: ipc.Ping}
	if err := h.S.SendTo("udp", &m); err != nil {
		t.Fatal(err)
	}
	ran := false
	h.S.Later(func() { ran = true })
	h.IdleFor(10*time.Millisecond, 1000)
	if !ran {
		t.Fatal("a task queued with Later did not run while the loop waited for a full channel")
	}
}

// TestHeldByCounts: the server counts, by process, the buffers of its own
// pool each holds, on every way a record comes and goes: a receive's data
// handed to an application straight or through syscall (counted for the
// application), a BufFree from the holder (and none from another
// process), a send that failed, and the holder's death. Another pool's
// buffers passed along do not count.
func TestHeldByCounts(t *testing.T) {
	h := systest.New(t, systest.Config{Name: "tcp", Procs: map[string]int{"syscall": 1, "tcp": 2, "app": 5, "other": 6},
		Peers: []string{"syscall", "app", "other"}, Roles: map[string]string{"app": "httpd", "other": "httpd"}},
		func(*sys.Server) (sys.Handler, error) { return &recorder{}, nil })
	app, other, syscall := h.Endpoint("app"), h.Endpoint("other"), h.Endpoint("syscall")
	want := func(when string, counts map[ipc.Endpoint]int) {
		t.Helper()
		for ep, n := range counts {
			if got := h.S.HeldBy(ep.Slot()); got != n {
				t.Fatalf("%s: HeldBy(%s) = %d, want %d", when, h.Name(ep), got, n)
			}
		}
	}
	hand := func(to string, caller ipc.Endpoint, ref pool.Ref) {
		t.Helper()
		r := systest.Reply(ipc.OpRecvFrom, 1, 10, caller)
		r.Arg[3] = uint64(ref)
		if err := h.S.SendTo(to, &r); err != nil {
			t.Fatal(err)
		}
		h.Sent()
	}
	alloc := func() pool.Ref {
		t.Helper()
		ref, _, err := h.S.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	viaSyscall := []pool.Ref{alloc(), alloc()}
	for _, ref := range viaSyscall {
		hand("syscall", app, ref)
	}
	direct := alloc()
	hand("other", other, direct)
	hand("other", other, h.Buffer("app", []byte("another pool's")))
	want("handed on", map[ipc.Endpoint]int{app: 2, other: 1, syscall: 0})

	h.Deliver("other", systest.BufFree(viaSyscall[0])) // not other's to give back
	want("another's BufFree", map[ipc.Endpoint]int{app: 2, other: 1})
	h.Deliver("app", systest.BufFree(viaSyscall[0]))
	h.Deliver("syscall", systest.BufFree(viaSyscall[1])) // syscall gives back for a dead app
	want("given back", map[ipc.Endpoint]int{app: 0, other: 1})

	h.T.Refuse(app, ipc.ErrDeadEndpoint)
	r := systest.Reply(ipc.OpRecvFrom, 2, 10, app)
	r.Arg[3] = uint64(alloc())
	if err := h.S.SendTo("app", &r); err == nil {
		t.Fatal("a send to a refusing channel went")
	}
	want("a failed send", map[ipc.Endpoint]int{app: 0, other: 1})

	h.Kill("other")
	want("its holder died", map[ipc.Endpoint]int{app: 0, other: 0})
	if n := h.InUse("tcp"); n != 0 {
		t.Fatalf("%d of tcp's buffers in use at the end, want 0", n)
	}
}

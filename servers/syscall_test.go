package servers

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// openVia has app open a socket of sockType through syscall, the transport
// answering with socket sock, and returns app's descriptor.
func openVia(t *testing.T, h *systest.Harness, app string, sockType int, transport string, sock uint64) uint64 {
	t.Helper()
	call := systest.Open(sockType)
	call.Seq = 41
	h.Deliver(app, call)
	fwd := h.SentTo(transport)
	if len(fwd) != 1 || systest.Op(fwd[0]) != ipc.OpOpen || systest.Caller(fwd[0]) != h.Endpoint(app) || fwd[0].Seq != 41 {
		t.Fatalf("sent %v, want the open forwarded to %s for %s", fwd, transport, app)
	}
	h.Deliver(transport, systest.Reply(ipc.OpOpen, 41, int64(sock), h.Endpoint(app)))
	back := h.SentTo(app)
	if len(back) != 1 || back[0].Type != ipc.SocketReply || back[0].Seq != 41 || systest.Result(back[0]) < 0 ||
		systest.Caller(back[0]) != 0 {
		t.Fatalf("sent %v, want the open's reply to %s with a descriptor", back, app)
	}
	return uint64(systest.Result(back[0]))
}

func TestSyscall(t *testing.T) {
	h := newRole(t, "syscall", Syscall)
	udpFD := openVia(t, h, "app", unix.SOCK_DGRAM, "udp", 5)
	tcpFD := openVia(t, h, "app", unix.SOCK_STREAM, "tcp", 8)
	if udpFD == tcpFD {
		t.Fatalf("two sockets share descriptor %d", udpFD)
	}
	dst := at(peerIP, 53)
	tests := []struct {
		name  string
		from  string
		call  ipc.Message
		to    string     // where the call goes: a transport, or back to from
		sock  uint64     // the transport's socket it names, when forwarded
		errno unix.Errno // the refusal, when answered at once
	}{
		{"udp's socket", "app", systest.Connect(udpFD, dst, 0), "udp", 5, 0},
		{"tcp's socket", "app", systest.Poll(tcpFD, unix.POLLIN), "tcp", 8, 0},
		{"another application's socket", "other", systest.Connect(udpFD, dst, 0), "other", 0, unix.EBADF},
		{"no such descriptor", "app", systest.Bind(99, dst), "app", 0, unix.EBADF},
		{"an unknown socket type", "app", systest.Open(unix.SOCK_RAW), "app", 0, unix.EPROTONOSUPPORT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.call.Seq = 7
			h.Deliver(tt.from, tt.call)
			out := h.SentTo(tt.to)
			if len(out) != 1 || out[0].Seq != 7 {
				t.Fatalf("sent %v, want one message to %s with the call's seq", out, tt.to)
			}
			m := out[0]
			if tt.errno != 0 {
				if m.Type != ipc.SocketReply || systest.Errno(m) != tt.errno {
					t.Fatalf("answered %v, want %v", m, tt.errno)
				}
				return
			}
			if m.Type != ipc.Socket || systest.Op(m) != systest.Op(tt.call) || systest.Sock(m) != tt.sock ||
				systest.Caller(m) != h.Endpoint(tt.from) {
				t.Fatalf("forwarded %v, want %v on socket %d for %s", m, systest.Op(tt.call), tt.sock, tt.from)
			}
		})
	}
}

func TestSyscallClose(t *testing.T) {
	h := newRole(t, "syscall", Syscall)
	fd := openVia(t, h, "app", unix.SOCK_DGRAM, "udp", 5)
	h.Deliver("app", systest.Close(fd))
	if out := h.SentTo("udp"); len(out) != 1 || systest.Op(out[0]) != ipc.OpClose || systest.Sock(out[0]) != 5 {
		t.Fatalf("sent %v, want the close forwarded to udp", out)
	}
	// The descriptor is gone whatever udp answers.
	h.Deliver("app", systest.Poll(fd, unix.POLLIN))
	if out := h.SentTo("app"); len(out) != 1 || systest.Errno(out[0]) != unix.EBADF {
		t.Fatalf("sent %v, want EBADF for a closed descriptor", out)
	}
}

func TestSyscallAccept(t *testing.T) {
	h := newRole(t, "syscall", Syscall)
	lfd := openVia(t, h, "app", unix.SOCK_STREAM, "tcp", 8)
	call := systest.Accept(lfd, 0)
	call.Seq = 3
	h.Deliver("app", call)
	h.Sent()
	// tcp answers with a new socket: the application gets a new
	// descriptor for it, the peer's address as tcp gave it.
	h.Deliver("tcp", systest.Reply(ipc.OpAccept, 3, 9, h.Endpoint("app")))
	out := h.SentTo("app")
	if len(out) != 1 || systest.Result(out[0]) < 0 || uint64(systest.Result(out[0])) == lfd {
		t.Fatalf("sent %v, want a new descriptor", out)
	}
	nfd := uint64(systest.Result(out[0]))
	h.Deliver("app", systest.RecvFrom(nfd, 100, 0))
	if out := h.SentTo("tcp"); len(out) != 1 || systest.Sock(out[0]) != 9 {
		t.Fatalf("sent %v, want the receive forwarded on socket 9", out)
	}
	// A failed open or accept makes no descriptor.
	h.Deliver("tcp", systest.Reply(ipc.OpAccept, 4, -int64(unix.EAGAIN), h.Endpoint("app")))
	if out := h.SentTo("app"); len(out) != 1 || systest.Errno(out[0]) != unix.EAGAIN {
		t.Fatalf("sent %v, want EAGAIN passed on", out)
	}
}

// An application that dies loses its descriptors; calls it left with a
// transport are not answered (to nobody).
func TestSyscallApplicationDies(t *testing.T) {
	h := newRole(t, "syscall", Syscall)
	fd := openVia(t, h, "app", unix.SOCK_STREAM, "tcp", 8)
	call := systest.Accept(fd, 0)
	call.Seq = 5
	h.Deliver("app", call)
	h.Sent()
	app := h.Endpoint("app")
	h.Kill("app")
	h.Restart("app")
	h.Deliver("tcp", systest.Reply(ipc.OpAccept, 5, 9, app)) // the dead application's accept
	if out := h.Sent(); len(out) != 0 {
		t.Fatalf("sent %v, want nothing for the dead application", out)
	}
	h.Deliver("app", systest.Poll(fd, unix.POLLIN))
	if out := h.SentTo("app"); len(out) != 1 || systest.Errno(out[0]) != unix.EBADF {
		t.Fatalf("sent %v, want EBADF: the new incarnation has no descriptors", out)
	}
}

// When a transport dies its descriptors are reset sockets: the call it
// did not answer fails with ECONNRESET, polls find them ready with an
// error, close succeeds; the other transport's descriptors work on.
func TestSyscallTransportDies(t *testing.T) {
	h := newRole(t, "syscall", Syscall)
	tfd := openVia(t, h, "app", unix.SOCK_STREAM, "tcp", 8)
	ufd := openVia(t, h, "app", unix.SOCK_DGRAM, "udp", 5)
	call := systest.RecvFrom(tfd, 100, 0)
	call.Seq = 6
	h.Deliver("app", call)
	h.Sent()
	h.Kill("tcp")
	if out := h.SentTo("app"); len(out) != 1 || out[0].Seq != 6 || systest.Errno(out[0]) != unix.ECONNRESET {
		t.Fatalf("sent %v, want the waiting receive to fail with ECONNRESET", out)
	}
	tests := []struct {
		name   string
		call   ipc.Message
		to     string
		result int64
	}{
		{"a call on tcp's socket", systest.SendTo(tfd, netip.AddrPort{}, 0, 0), "app", -int64(unix.ECONNRESET)},
		{"poll", systest.Poll(tfd, unix.POLLIN), "app", unix.POLLIN | unix.POLLERR | unix.POLLHUP},
		{"a call on udp's socket", systest.Poll(ufd, unix.POLLIN), "udp", 0},
		{"close", systest.Close(tfd), "app", 0},
		{"after the close", systest.Poll(tfd, unix.POLLIN), "app", -int64(unix.EBADF)},
	}
	for _, tt := range tests {
		h.Deliver("app", tt.call)
		out := h.SentTo(tt.to)
		if len(out) != 1 || (tt.to == "app" && systest.Result(out[0]) != tt.result) {
			t.Fatalf("%s: sent %v, want one message to %s (result %d)", tt.name, out, tt.to, tt.result)
		}
	}
}

// A restarted syscall's descriptors do not start where its predecessor's
// did: one an application kept cannot name a new socket.
func TestSyscallDescriptorsCarryTheGeneration(t *testing.T) {
	peers, routes := hostRoutes("syscall")
	h := systest.New(t, systest.Config{Name: "syscall", Procs: hostSlots, Peers: peers, Routes: routes, Generation: 2}, Syscall)
	h.Sent() // a restarted server's fences (see package sys)
	if fd := openVia(t, h, "app", unix.SOCK_DGRAM, "udp", 5); fd != 3+fdEpoch {
		t.Fatalf("first descriptor of generation 2: %d, want %d", fd, 3+fdEpoch)
	}
	h.Deliver("app", systest.Poll(3, unix.POLLIN))
	if out := h.SentTo("app"); len(out) != 1 || systest.Errno(out[0]) != unix.EBADF {
		t.Fatalf("sent %v, want EBADF for the first generation's descriptor 3", out)
	}
}

// TestRestartedSyscallRefusesOldDescriptors: what an application sees
// after syscall restarts (docs/RECOVERY.md): every call on a descriptor of
// the first generation fails with EBADF without reaching a transport, and
// a new socket opens at once, under a new number.
func TestRestartedSyscallRefusesOldDescriptors(t *testing.T) {
	peers, routes := hostRoutes("syscall")
	h := systest.New(t, systest.Config{Name: "syscall", Procs: hostSlots, Peers: peers, Routes: routes, Generation: 2}, Syscall)
	h.Sent() // a restarted server's fences (see package sys)
	for _, tt := range []struct {
		name string
		call ipc.Message
	}{
		{"send", systest.SendTo(3, at(peerIP, 53), 0, 0)},
		{"receive", systest.RecvFrom(4, 100, 0)},
		{"connect", systest.Connect(3, at(peerIP, 80), 0)},
		{"accept", systest.Accept(3, 0)},
		{"listen", systest.Listen(3, 8)},
		{"close", systest.Close(5)},
	} {
		h.Deliver("app", tt.call)
		out := h.Sent()
		if len(out) != 1 || out[0].Dst != h.Endpoint("app") || systest.Errno(out[0]) != unix.EBADF {
			t.Errorf("%s on an old descriptor: sent %v, want EBADF to app and nothing to a transport", tt.name, out)
		}
	}
	if fd := openVia(t, h, "app", unix.SOCK_STREAM, "tcp", 9); fd < 3+fdEpoch {
		t.Errorf("new descriptor %d, want one of generation 2 (from %d)", fd, 3+fdEpoch)
	}
}

// TestSyscallPassesWakeOn: a transport's Wake for a poll that armed its
// socket goes on to the application it names, and only a transport's.
func TestSyscallPassesWakeOn(t *testing.T) {
	tests := []struct {
		name, from string
		want       int
	}{
		{"from tcp", "tcp", 1},
		{"from udp", "udp", 1},
		{"from an application", "app", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newRole(t, "syscall", Syscall)
			var m ipc.Message
			sockcall.Wake{Sock: 9, Caller: h.Endpoint("app")}.Encode(&m)
			h.Deliver(tt.from, m)
			n := 0
			for _, o := range h.Sent() {
				if o.Type == ipc.Wake && o.Dst == h.Endpoint("app") {
					n++
				}
			}
			if n != tt.want {
				t.Fatalf("%d Wakes to the application, want %d", n, tt.want)
			}
		})
	}
}

// TestSyscallDescriptorQuota: an application has at most
// MaxDescriptorsPerApp descriptors in syscall's table, its opens and
// accepts not yet answered counted; past it an open or an accept fails
// with EMFILE at once, counted, and does not reach the transport (the
// connection stays in the listener's backlog, as Linux leaves it); a
// close, a failed accept or the application's death makes room, and
// another application is not concerned. (Before, accepted connections
// made descriptors without bound.)
func TestSyscallDescriptorQuota(t *testing.T) {
	h := newRole(t, "syscall", Syscall)
	lfd := openVia(t, h, "app", unix.SOCK_STREAM, "tcp", 1)
	// The listener's connections, accepted until syscall refuses.
	accept := func(seq uint32) []ipc.Message {
		t.Helper()
		call := systest.Accept(lfd, 0)
		call.Seq = seq
		h.Deliver("app", call)
		return h.Sent()
	}
	var fds []uint64
	for seq := uint32(100); ; seq++ {
		out := accept(seq)
		if len(out) == 1 && out[0].Dst == h.Endpoint("app") {
			if systest.Errno(out[0]) != unix.EMFILE {
				t.Fatalf("accept %d answered %v, want EMFILE", len(fds), out)
			}
			break
		}
		if len(out) != 1 || out[0].Dst != h.Endpoint("tcp") || systest.Op(out[0]) != ipc.OpAccept {
			t.Fatalf("accept %d: sent %v, want it forwarded to tcp", len(fds), out)
		}
		if len(fds) > MaxDescriptorsPerApp {
			t.Fatalf("%d descriptors accepted, want at most %d", len(fds)+1, MaxDescriptorsPerApp)
		}
		h.Deliver("tcp", systest.Reply(ipc.OpAccept, seq, int64(seq), h.Endpoint("app")))
		back := h.SentTo("app")
		if len(back) != 1 || systest.Result(back[0]) < 0 {
			t.Fatalf("accept %d: sent %v, want a descriptor", len(fds), back)
		}
		fds = append(fds, uint64(systest.Result(back[0])))
	}
	if n := len(fds) + 1; n != MaxDescriptorsPerApp {
		t.Fatalf("refused at %d descriptors, want %d", n, MaxDescriptorsPerApp)
	}
	refused := func() float64 {
		return h.Metric("newtsim_syscall_quota_refusals_total", "reason", "descriptors")
	}
	if got := refused(); got != 1 {
		t.Fatalf("%v refusals counted, want 1", got)
	}
	h.Deliver("app", systest.Open(unix.SOCK_DGRAM))
	if out := h.SentTo("app"); len(out) != 1 || systest.Errno(out[0]) != unix.EMFILE {
		t.Fatalf("an open past the bound: sent %v, want EMFILE", out)
	}
	if fd := openVia(t, h, "other", unix.SOCK_DGRAM, "udp", 5); fd == 0 {
		t.Fatal("another application got no descriptor")
	}

	// A close makes room for one; an accept in flight holds it.
	h.Deliver("app", systest.Close(fds[0]))
	h.Sent()
	if out := accept(9000); len(out) != 1 || out[0].Dst != h.Endpoint("tcp") {
		t.Fatalf("an accept after a close: sent %v, want it forwarded to tcp", out)
	}
	if out := accept(9001); len(out) != 1 || systest.Errno(out[0]) != unix.EMFILE {
		t.Fatalf("an accept beside one in flight at the bound: sent %v, want EMFILE", out)
	}
	// The one in flight fails: its room is free again.
	h.Deliver("tcp", systest.Reply(ipc.OpAccept, 9000, -int64(unix.EAGAIN), h.Endpoint("app")))
	h.Sent()
	if out := accept(9002); len(out) != 1 || out[0].Dst != h.Endpoint("tcp") {
		t.Fatalf("an accept after one failed: sent %v, want it forwarded to tcp", out)
	}
	if got := refused(); got != 3 {
		t.Fatalf("%v refusals counted, want 3", got)
	}

	// A new incarnation starts with none.
	h.Kill("app")
	h.Restart("app")
	if fd := openVia(t, h, "app", unix.SOCK_STREAM, "tcp", 2); fd == 0 {
		t.Fatal("the application's new incarnation got no descriptor")
	}
}

package servers

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/servers/sys/systest"
	"github.com/newtsim/newtsim/servers/tcp"
)

func TestParking(t *testing.T) {
	h := newRole(t, "udp", UDP)
	p := newParking[int](quotas{})
	call := func(sock uint64, seq uint32) *request {
		m := ipc.Message{Src: h.Endpoint("app"), Seq: seq}
		sockcall.Call{Op: ipc.OpRecvFrom, Sock: sock}.Encode(&m)
		q := newRequest(&m)
		return &q
	}
	a, b, c := call(1, 1), call(1, 2), call(2, 3)
	if a.parked {
		t.Fatal("a new call is marked parked")
	}
	p.park(h.S, 1, a)
	p.park(h.S, 1, b)
	p.park(h.S, 2, c)
	if n := p.apps[h.Endpoint("app")]; n != 3 {
		t.Fatalf("%d calls of app counted, want 3", n)
	}
	if q, ok := p.next(1); !ok || q.m.Seq != 1 || !q.parked || q.Sock != 1 {
		t.Fatalf("next(1) = %+v, %v: want the first call, marked parked", q, ok)
	}
	if w := p.take(1); len(w) != 1 || w[0].m.Seq != 2 {
		t.Fatalf("take(1) = %+v, want the second call", w)
	}
	if _, ok := p.next(1); ok || len(p.calls) != 1 {
		t.Fatalf("socket 1 still has calls: %v", p.calls)
	}
	if w := p.take(2); len(w) != 1 || w[0].m.Seq != 3 {
		t.Fatalf("take(2) = %+v", w)
	}
	if len(p.calls) != 0 || len(p.apps) != 0 {
		t.Fatalf("parking not empty: %v, %v", p.calls, p.apps)
	}
}

// transports are the two transport servers, for the tests that hold for
// both.
var transports = []struct {
	name     string
	start    sys.Starter
	sockType int
}{{"udp", UDP, unix.SOCK_DGRAM}, {"tcp", TCP, unix.SOCK_STREAM}}

// via is app's call as syscall forwards it to a transport, on socket sock.
func via(h *systest.Harness, app string, call ipc.Message, sock uint64) ipc.Message {
	return systest.Forwarded(call, sock, h.Endpoint(app))
}

// quotaRefusals is what the transport h counted refused for reason.
func quotaRefusals(h *systest.Harness, transport, reason string) float64 {
	return h.Metric("newtsim_"+transport+"_quota_refusals_total", "reason", reason)
}

// TestSocketQuota: an application opens sockets until refused: past
// MaxSocketsPerApp, EMFILE, counted; another application still opens.
// (udp had no quota: it opened on.)
func TestSocketQuota(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h := newRole(t, tr.name, tr.start)
			opens := make([]ipc.Message, 0, MaxSocketsPerApp)
			for range MaxSocketsPerApp {
				opens = append(opens, via(h, "app", systest.Open(tr.sockType), 0))
			}
			h.Deliver("syscall", opens...)
			for _, r := range h.SentTo("syscall") {
				if systest.Result(r) < 0 {
					t.Fatalf("open refused before the quota: %v", r)
				}
			}
			oneReply(t, callVia(t, h, systest.Open(tr.sockType), 0), unix.EMFILE)
			h.Deliver("syscall", via(h, "other", systest.Open(tr.sockType), 0))
			if out := h.SentTo("syscall"); len(out) != 1 || systest.Result(out[0]) < 0 {
				t.Fatalf("other's open: %v, want a socket", out)
			}
			if got := quotaRefusals(h, tr.name, quotaSockets); got != 1 {
				t.Fatalf("socket refusals counted %v, want 1", got)
			}
		})
	}
}

// TestParkedQuota: an application parks blocking calls until refused: past
// MaxParkedPerApp a new one fails with ENOBUFS, counted; another
// application still parks, and once app's calls are answered app parks
// again. (The old code parked without bound.)
func TestParkedQuota(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h := newRole(t, tr.name, tr.start)
			open := func(app string) uint64 {
				h.Deliver("syscall", via(h, app, systest.Open(tr.sockType), 0))
				out := h.SentTo("syscall")
				if len(out) != 1 || systest.Result(out[0]) < 0 {
					t.Fatalf("open: %v", out)
				}
				sock := uint64(systest.Result(out[0]))
				h.Deliver("syscall", via(h, app, systest.Bind(0, at(hostIP, 0)), sock))
				if tr.sockType == unix.SOCK_STREAM {
					h.Deliver("syscall", via(h, app, systest.Listen(0, 8), sock))
				}
				h.Sent()
				return sock
			}
			// wait is a call that blocks on sock: an accept on tcp's
			// listener, a receive on udp.
			wait := func(app string, sock uint64) ipc.Message {
				if tr.sockType == unix.SOCK_STREAM {
					return via(h, app, systest.Accept(0, 0), sock)
				}
				return via(h, app, systest.RecvFrom(0, 100, 0), sock)
			}
			sock := open("app")
			calls := make([]ipc.Message, 0, MaxParkedPerApp)
			for range MaxParkedPerApp {
				calls = append(calls, wait("app", sock))
			}
			h.Deliver("syscall", calls...)
			if out := h.Sent(); len(out) != 0 {
				t.Fatalf("sent %v, want every call parked", out)
			}
			h.Deliver("syscall", wait("app", sock))
			if out := h.SentTo("syscall"); len(out) != 1 || systest.Errno(out[0]) != unix.ENOBUFS {
				t.Fatalf("sent %v, want ENOBUFS", out)
			}
			if got := quotaRefusals(h, tr.name, quotaParked); got != 1 {
				t.Fatalf("parked refusals counted %v, want 1", got)
			}
			if tr.sockType == unix.SOCK_STREAM { // a blocking connect is refused before its SYN
				h.Deliver("syscall", via(h, "app", systest.Open(tr.sockType), 0))
				c := uint64(systest.Result(h.SentTo("syscall")[0]))
				h.Deliver("syscall", via(h, "app", systest.Connect(0, at(peerIP, 80), 0), c))
				if out := h.Sent(); len(out) != 1 || out[0].Dst != h.Endpoint("syscall") || systest.Errno(out[0]) != unix.ENOBUFS {
					t.Fatalf("blocking connect: sent %v, want ENOBUFS and no SYN", out)
				}
			}
			other := open("other")
			h.Deliver("syscall", wait("other", other))
			if out := h.Sent(); len(out) != 0 {
				t.Fatalf("other's call: sent %v, want it parked", out)
			}
			h.Deliver("syscall", via(h, "app", systest.Close(0), sock)) // answers app's parked calls
			if out := h.SentTo("syscall"); len(out) != MaxParkedPerApp+1 {
				t.Fatalf("close answered %d calls, want %d and the close", len(out), MaxParkedPerApp)
			}
			sock = open("app")
			h.Deliver("syscall", wait("app", sock))
			if out := h.Sent(); len(out) != 0 {
				t.Fatalf("sent %v, want app's call parked again", out)
			}
		})
	}
}

// TestTCPBufferQuota: an application grows its sockets' buffers until
// refused: past MaxBufferBytesPerApp, ENOBUFS, counted; shrinking is
// always let through, and another application still grows its own.
// (The old code let each socket have 16 MB each way, without bound.)
func TestTCPBufferQuota(t *testing.T) {
	h := newRole(t, "tcp", TCP)
	opens := make([]ipc.Message, 0, MaxSocketsPerApp)
	for range MaxSocketsPerApp {
		opens = append(opens, via(h, "app", systest.Open(unix.SOCK_STREAM), 0))
	}
	h.Deliver("syscall", opens...)
	var socks []uint64
	for _, r := range h.SentTo("syscall") {
		socks = append(socks, uint64(systest.Result(r)))
	}
	size := 2 * tcp.DefaultMaxBufferOption // what 16 MB gives
	total, refused := MaxSocketsPerApp*2*tcp.DefaultBuffer, 0
	for _, sock := range socks {
		for _, opt := range []int{unix.SO_SNDBUF, unix.SO_RCVBUF} {
			h.Deliver("syscall", via(h, "app", systest.SetOpt(0, unix.SOL_SOCKET, opt, 16<<20), sock))
			out := h.SentTo("syscall")
			want := unix.Errno(0)
			if total-tcp.DefaultBuffer+size > MaxBufferBytesPerApp {
				want = unix.ENOBUFS
				refused++
			} else {
				total += size - tcp.DefaultBuffer
			}
			if len(out) != 1 || systest.Errno(out[0]) != want {
				t.Fatalf("setsockopt %d on socket %#x: %v, want errno %d (app's buffers %d bytes)", opt, sock, out, want, total)
			}
		}
	}
	if refused == 0 {
		t.Fatal("nothing refused")
	}
	if got := quotaRefusals(h, "tcp", quotaBuffers); got != float64(refused) {
		t.Fatalf("buffer refusals counted %v, want %d", got, refused)
	}
	last := socks[len(socks)-1]
	oneReply(t, callVia(t, h, systest.SetOpt(0, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096), last), 0) // smaller
	if v := systest.Result(oneReply(t, callVia(t, h, systest.GetOpt(0, unix.SOL_SOCKET, unix.SO_RCVBUF), last), 0)); v != 8192 {
		t.Fatalf("SO_RCVBUF %d after 4096, want 8192", v)
	}
	h.Deliver("syscall", via(h, "other", systest.Open(unix.SOCK_STREAM), 0))
	o := uint64(systest.Result(h.SentTo("syscall")[0]))
	h.Deliver("syscall", via(h, "other", systest.SetOpt(0, unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<20), o))
	if out := h.SentTo("syscall"); len(out) != 1 || systest.Result(out[0]) != 0 {
		t.Fatalf("other's setsockopt: %v, want 0", out)
	}
}

// A restarted transport's socket ids carry its incarnation: an id its
// predecessor handed out names no new socket; a call on it is answered as
// on a reset socket, and an id no incarnation handed out is EBADF.
func TestSocketIDsCarryTheEpoch(t *testing.T) {
	for _, tr := range []struct {
		name     string
		start    sys.Starter
		sockType int
	}{{"udp", UDP, unix.SOCK_DGRAM}, {"tcp", TCP, unix.SOCK_STREAM}} {
		t.Run(tr.name, func(t *testing.T) {
			peers, routes := hostRoutes(tr.name)
			h := systest.New(t, systest.Config{Name: tr.name, Procs: hostSlots, Peers: peers, Routes: routes, Generation: 3}, tr.start)
			h.Sent() // a restarted server's fences (see package sys)
			sock := uint64(systest.Result(oneReply(t, callVia(t, h, systest.Open(tr.sockType), 0), 0)))
			if sock>>32 != 3 {
				t.Fatalf("socket id %#x, want the epoch 3 in its high half", sock)
			}
			old := 2<<32 | sock&0xffffffff // the same engine socket, a generation ago
			tests := []struct {
				name   string
				call   ipc.Message
				result int64
			}{
				{"the new socket", systest.GetOpt(sock, unix.SOL_SOCKET, unix.SO_ERROR), 0},
				{"the old one's poll", systest.Poll(old, unix.POLLIN), unix.POLLIN | unix.POLLERR | unix.POLLHUP},
				{"the old one's bind", systest.Bind(old, at(hostIP, 9)), -int64(unix.ECONNRESET)},
				{"the old one's close", systest.Close(old), 0},
				{"a later epoch", systest.Poll(4<<32|sock&0xffffffff, unix.POLLIN), -int64(unix.EBADF)},
				{"no epoch", systest.Poll(sock&0xffffffff, unix.POLLIN), -int64(unix.EBADF)},
			}
			for _, tt := range tests {
				out := callVia(t, h, tt.call, systest.Sock(tt.call))
				if len(out) != 1 || systest.Result(out[0]) != tt.result {
					t.Errorf("%s: replies %v, want result %d", tt.name, out, tt.result)
				}
			}
		})
	}
}

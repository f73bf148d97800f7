package servers

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

func TestParking(t *testing.T) {
	p := parking[int]{}
	call := func(sock uint64, seq uint32) *request {
		m := ipc.Message{Src: ipc.MakeEndpoint(5, 1), Seq: seq}
		sockcall.Call{Op: ipc.OpRecvFrom, Sock: sock}.Encode(&m)
		q := newRequest(&m)
		return &q
	}
	a, b, c := call(1, 1), call(1, 2), call(2, 3)
	if a.parked {
		t.Fatal("a new call is marked parked")
	}
	p.park(1, a)
	p.park(1, b)
	p.park(2, c)
	if q, ok := p.next(1); !ok || q.m.Seq != 1 || !q.parked || q.Sock != 1 {
		t.Fatalf("next(1) = %+v, %v: want the first call, marked parked", q, ok)
	}
	if w := p.take(1); len(w) != 1 || w[0].m.Seq != 2 {
		t.Fatalf("take(1) = %+v, want the second call", w)
	}
	if _, ok := p.next(1); ok || len(p) != 1 {
		t.Fatalf("socket 1 still has calls: %v", p)
	}
	if w := p.take(2); len(w) != 1 || w[0].m.Seq != 3 {
		t.Fatalf("take(2) = %+v", w)
	}
	if len(p) != 0 {
		t.Fatalf("parking not empty: %v", p)
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

package servers

import (
	"testing"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/sockcall"
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

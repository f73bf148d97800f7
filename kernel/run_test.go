package kernel

import (
	"errors"
	"io"
	"log"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kmsg"
)

// testKern is a kernel shell with two processes whose other ends the test
// holds: a (slot 1) may send to b (slot 2).
func testKern(t *testing.T) (k *kern, a, b *kmsg.Conn) {
	t.Helper()
	k = &kern{c: Config{Log: log.New(io.Discard, "", 0)}, core: NewCore(), exits: make(chan exitEvent, 1)}
	var err error
	if k.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(k.epfd) })
	k.procs = make([]*proc, 3)
	conns := make([]*kmsg.Conn, 3)
	for slot := 1; slot <= 2; slot++ {
		name := string(rune('a' + slot - 1))
		if err := k.core.Add(name, slot); err != nil {
			t.Fatal(err)
		}
		ep := k.core.Started(slot)
		kend, pend, err := kmsg.Pair()
		if err != nil {
			t.Fatal(err)
		}
		unix.SetNonblock(kend, true)
		unix.SetNonblock(pend, true)
		unix.EpollCtl(k.epfd, unix.EPOLL_CTL_ADD, kend, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(slot)})
		k.procs[slot] = &proc{spec: Proc{Name: name}, slot: slot, entry: k.core.Entry(slot), fd: kend}
		conns[slot] = kmsg.New(pend, ep)
		t.Cleanup(func() { unix.Close(kend); conns[slot].Close() })
	}
	k.core.Allow(1, 2)
	return k, conns[1], conns[2]
}

// TestBackpressure: a floods b, which reads nothing. The kernel's queue for
// b stays bounded, a stops being read (so its own sends block), and once b
// reads, a resumes and every message arrives once, in order.
func TestBackpressure(t *testing.T) {
	k, a, b := testKern(t)
	bEP := k.procs[2].entry.EP
	sent := 0
	flood := func() {
		for {
			err := a.TrySend(&ipc.Message{Dst: bEP, Type: ipc.Ping, Seq: uint32(sent)})
			if errors.Is(err, ipc.ErrWouldBlock) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sent++
		}
	}
	now := time.Now()
	for round := 0; round < 1000 && !k.procs[1].paused; round++ {
		flood()
		k.receive(1, now)
	}
	if !k.procs[1].paused {
		t.Fatalf("a was never paused; %d messages wait for b", len(k.procs[2].pending))
	}
	if n := len(k.procs[2].pending); n > MaxPending || n < MaxPending/2 {
		t.Fatalf("%d messages wait for b; want about MaxPending (%d)", n, MaxPending)
	}
	flood() // a's socket fills: its sends now block
	if err := a.TrySend(&ipc.Message{Dst: bEP, Type: ipc.Ping}); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatalf("a can still send: %v", err)
	}

	// b reads everything; the kernel flushes and reads a again.
	got := 0
	var m ipc.Message
	for rounds := 0; got < sent && rounds < 100000; rounds++ {
		for b.TryRecv(&m) == nil {
			if m.Seq != uint32(got) || m.Src != a.Self() {
				t.Fatalf("message %d: got seq %d from %s", got, m.Seq, m.Src)
			}
			got++
		}
		k.flush(k.procs[2])
		if !k.procs[1].paused {
			k.receive(1, now)
		}
	}
	if got != sent {
		t.Fatalf("b got %d of %d messages", got, sent)
	}
	if k.procs[1].paused {
		t.Fatal("a still paused after b drained")
	}
	if k.core.Refused[ReasonDead]+k.core.Refused[ReasonForbidden] != 0 {
		t.Fatalf("refusals: %v", k.core.Refused)
	}
	t.Logf("%d messages went through with the queue bounded at %d", sent, MaxPending)
}

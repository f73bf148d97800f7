package kernel

import (
	"errors"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
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

// standbyEnv names the file a fake standby (this test binary, started by
// keepStandby) writes what it was handed to: its boot arguments, or EOF.
const standbyEnv = "NEWTSIM_KERNEL_TEST_STANDBY"

func TestMain(m *testing.M) {
	if out := os.Getenv(standbyEnv); out != "" {
		argv, err := kmsg.ReceiveBoot(kmsg.FD)
		got := strings.Join(argv, " ")
		if errors.Is(err, io.EOF) {
			got = "EOF"
		} else if err != nil {
			got = err.Error()
		}
		os.WriteFile(out, []byte(got), 0o644)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestStandby: the kernel keeps a process started ahead of need; a restart
// hands it the server's boot arguments and makes it the slot's process,
// whose exit is then that slot's; the next standby starts StandbyDelay
// later; when the kernel stops, the unused standby reads end of file and
// its exit belongs to no slot.
func TestStandby(t *testing.T) {
	k, _, _ := testKern(t)
	k.exits = make(chan exitEvent, 4)
	var err error
	if k.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(k.evfd)
	k.c.Exe, k.c.Run = os.Args[0], "test"
	dir := t.TempDir()
	exit := func() exitEvent {
		t.Helper()
		select {
		case ev := <-k.exits:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no exit event")
		}
		panic("unreachable")
	}

	// The start runs beside the loop: the loop takes the standby once it
	// is done.
	started := func(at time.Time) *standby {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); k.spare == nil && time.Now().Before(end); {
			k.keepStandby(at)
			time.Sleep(time.Millisecond)
		}
		return k.spare
	}
	now := time.Now()
	t.Setenv(standbyEnv, filepath.Join(dir, "first"))
	k.keepStandby(now)
	if k.spare != nil || k.spawning {
		t.Fatal("a standby started before one was due")
	}
	k.spareDue = now
	sb := started(now)
	if sb == nil {
		t.Fatal("no standby started")
	}
	p := k.procs[2] // b died: its connection is gone
	unix.EpollCtl(k.epfd, unix.EPOLL_CTL_DEL, p.fd, nil)
	p.fd, p.cmd = -1, nil
	if !k.takeStandby(p, []string{"--name", "b", "--", "x y"}, now) {
		t.Fatal("the standby was not taken")
	}
	defer unix.Close(p.fd)
	if p.cmd != sb.cmd || p.fd != sb.fd || k.spare != nil {
		t.Fatalf("slot 2 runs %v on %d, spare %v; want the standby's", p.cmd, p.fd, k.spare)
	}
	if !k.spareDue.Equal(now.Add(StandbyDelay)) {
		t.Errorf("next standby due in %v, want %v", k.spareDue.Sub(now), StandbyDelay)
	}
	ev := exit()
	if got := k.procOf(ev); got != p {
		t.Errorf("the exit of the standby made b belongs to %v, want b", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "first")); string(b) != "--name b -- x y" {
		t.Errorf("the standby was handed %q", b)
	}

	t.Setenv(standbyEnv, filepath.Join(dir, "second"))
	k.keepStandby(now.Add(StandbyDelay - time.Millisecond))
	if k.spare != nil || k.spawning {
		t.Fatal("the next standby started early")
	}
	if started(now.Add(StandbyDelay)) == nil {
		t.Fatal("no next standby")
	}
	k.dropStandby(false)
	ev = exit()
	if got := k.procOf(ev); got != nil || ev.slot != 0 {
		t.Errorf("the unused standby's exit belongs to %v (slot %d)", got, ev.slot)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "second")); string(b) != "EOF" {
		t.Errorf("the unused standby read %q, want EOF", b)
	}
	if k.takeStandby(p, nil, now) {
		t.Error("a dropped standby was taken")
	}
}

// TestQueueBound: what the kernel itself sends a process that never reads
// (alarms, notifications) is held up to MaxQueue, then dropped and counted:
// a process that floods alarm requests and reads nothing costs the kernel
// bounded memory.
func TestQueueBound(t *testing.T) {
	k, _, _ := testKern(t)
	bEP := k.procs[2].entry.EP
	const extra = 100
	for i := 0; i < MaxQueue+extra+10000; i++ {
		m := ipc.Message{Src: ipc.Kernel, Dst: bEP, Type: ipc.Alarm, Seq: uint32(i)}
		k.deliver(&Out{To: 2, Msg: m})
	}
	if n := len(k.procs[2].pending); n > MaxQueue {
		t.Fatalf("%d messages held for a process that does not read, want at most %d", n, MaxQueue)
	}
	if k.core.Refused[ReasonQueueFull] == 0 {
		t.Fatalf("refusals %v, want queue-full counted", k.core.Refused)
	}
}

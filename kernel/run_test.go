package kernel

import (
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/ipc/kmsg"
	"github.com/newtsim/newtsim/ipc/memfd"
	"github.com/newtsim/newtsim/ipc/runfiles"
	"github.com/newtsim/newtsim/ipc/shm"
)

// testKern is a kernel shell with two processes whose other ends the test
// holds: a (slot 1) may send to b (slot 2). Both are applications unless
// the test sets their class.
func testKern(t *testing.T) (k *kern, a, b *kmsg.Conn) {
	t.Helper()
	k, conns := testKernN(t, 2)
	k.core.Allow(1, 2)
	return k, conns[1], conns[2]
}

// testKernN is a kernel shell with n processes, named a, b, c... in slots
// 1 to n; conns[slot] is the test's end of each one's connection. No
// process may send to another until the test allows it.
func testKernN(t testing.TB, n int) (k *kern, conns []*kmsg.Conn) {
	t.Helper()
	k = &kern{c: Config{Log: log.New(io.Discard, "", 0)}, core: NewCore(), exits: make(chan exitEvent, 1)}
	var err error
	if k.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(k.epfd) })
	k.procs = make([]*proc, n+1)
	conns = make([]*kmsg.Conn, n+1)
	for slot := 1; slot <= n; slot++ {
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
	return k, conns
}

// flood sends Pings from slot src (conn c) to dst until c's socket is full,
// has the kernel read src, and repeats until n messages went or src is
// paused; it returns how many went.
func flood(t *testing.T, k *kern, c *kmsg.Conn, src, dst, n int) int {
	t.Helper()
	ep := k.procs[dst].entry.EP
	sent := 0
	for round := 0; sent < n && round < 100000 && !k.procs[src].paused; round++ {
		for sent < n {
			err := c.TrySend(&ipc.Message{Dst: ep, Type: ipc.Ping, Seq: uint32(sent)})
			if errors.Is(err, ipc.ErrWouldBlock) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			sent++
		}
		readAll(k, src)
	}
	return sent
}

// heldFrom counts the messages from src the kernel holds for p.
func heldFrom(p *proc, src ipc.Endpoint) int {
	n := 0
	for _, o := range p.pending {
		if o.Msg.Src == src {
			n++
		}
	}
	return n
}

// readAll has the kernel read what slot's connection holds (until it
// pauses the process).
func readAll(k *kern, slot int) {
	for i := 0; i < 100 && !k.procs[slot].paused; i++ {
		k.receive(slot, time.Now())
	}
}

// TestBackpressure: a floods b, a server, which reads nothing for now. The kernel's queue for
// b stays bounded, a stops being read (so its own sends block), and once b
// reads, a resumes and every message arrives once, in order.
func TestBackpressure(t *testing.T) {
	k, a, b := testKern(t)
	k.core.SetClass(2, ipc.ClassTransport) // a server: slow, but it reads
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

// TestPairFull: tcp (a server) sends to an application d that never reads,
// past the pair bound, then to e. The kernel keeps reading tcp: what goes
// past the bound for d is refused and counted (pair-full), e gets its
// message, and tcp's alarm request passes and its alarm comes. (The old
// kernel stopped reading tcp once d's queue reached MaxPending: e got
// nothing, and tcp's sends, alarm requests included, blocked.)
func TestPairFull(t *testing.T) {
	k, c := testKernN(t, 3)
	const tcp, d, e = 1, 2, 3
	k.core.SetClass(tcp, ipc.ClassTransport)
	k.core.Allow(tcp, d)
	k.core.Allow(tcp, e)
	const extra = 5000
	sent := flood(t, k, c[tcp], tcp, d, MaxPending+extra)
	if k.procs[tcp].paused || sent != MaxPending+extra {
		t.Fatalf("tcp paused after %d messages to an application that does not read", sent)
	}
	if n := len(k.procs[d].pending); n > MaxPending {
		t.Fatalf("%d messages held for d, want at most MaxPending (%d)", n, MaxPending)
	}
	// d's socket took some before the kernel queued; the rest was refused.
	if got := k.core.Refused[ReasonPairFull]; got == 0 || got > extra {
		t.Fatalf("pair-full refusals %d, want between 1 and %d", got, extra)
	}

	if err := c[tcp].TrySend(&ipc.Message{Dst: k.procs[e].entry.EP, Type: ipc.Ping, Seq: 7}); err != nil {
		t.Fatalf("tcp's send to e: %v", err)
	}
	var m ipc.Message
	kcall.SetAlarm{After: time.Millisecond}.Encode(&m)
	m.Dst = ipc.Kernel
	if err := c[tcp].TrySend(&m); err != nil {
		t.Fatalf("tcp's alarm request: %v", err)
	}
	now := time.Now()
	readAll(k, tcp)
	k.deliverAll(k.core.Expire(now.Add(time.Second)))
	if err := c[e].TryRecv(&m); err != nil || m.Type != ipc.Ping || m.Seq != 7 {
		t.Fatalf("e got %v (%v), want tcp's ping", &m, err)
	}
	for {
		if err := c[tcp].TryRecv(&m); err != nil {
			t.Fatalf("no alarm for tcp: %v", err)
		}
		if m.Type == ipc.Alarm {
			break
		}
	}

	// Once d reads, the pair has room again: tcp's next message to d is
	// held, not refused.
	for c[d].TryRecv(&m) == nil {
	}
	k.flush(k.procs[d])
	refused := k.core.Refused[ReasonPairFull]
	if flood(t, k, c[tcp], tcp, d, 1) != 1 || k.core.Refused[ReasonPairFull] != refused {
		t.Fatalf("after d drained, tcp's message to d was refused (pair-full %d, was %d)", k.core.Refused[ReasonPairFull], refused)
	}
}

// TestPairPausesOnlyItsSource: a floods b, a server that reads nothing for
// now, until the kernel stops reading a; c, which sent b nothing before,
// is still read and its message to b is held, not refused. (The old kernel
// paused every source that sent b a message once b's queue was full.)
func TestPairPausesOnlyItsSource(t *testing.T) {
	k, conns := testKernN(t, 3)
	const a, b, c = 1, 2, 3
	k.core.SetClass(b, ipc.ClassTransport)
	k.core.Allow(a, b)
	k.core.Allow(c, b)
	flood(t, k, conns[a], a, b, 1<<20)
	if !k.procs[a].paused {
		t.Fatal("a was never paused")
	}
	if n := flood(t, k, conns[c], c, b, 10); n != 10 || k.procs[c].paused {
		t.Fatalf("c paused after %d messages to b", n)
	}
	if held := heldFrom(k.procs[b], conns[c].Self()); held != 10 {
		t.Fatalf("b holds %d of c's messages, want 10", held)
	}
	if n := k.core.Refused[ReasonQueueFull] + k.core.Refused[ReasonPairFull]; n != 0 {
		t.Fatalf("refusals %v, want none", k.core.Refused)
	}
}

// TestNotificationWaitsCoalesced: while a Notification waits in the
// kernel behind other messages, further Notifies ride on it: b gets one,
// naming every source. (The old kernel took the bits when it queued the
// Notification, so each Notify queued another.) An application's forged
// Notification is refused (kernel-only) and takes no bits.
func TestNotificationWaitsCoalesced(t *testing.T) {
	k, conns := testKernN(t, 3)
	const a, b, c = 1, 2, 3
	k.core.SetClass(b, ipc.ClassTransport)
	k.core.Allow(a, b)
	k.core.Allow(c, b)
	sent := flood(t, k, conns[a], a, b, MaxPending/2) // b's socket fills; the rest waits
	if len(k.procs[b].pending) == 0 {
		t.Fatal("nothing waits for b")
	}
	bEP := k.procs[b].entry.EP
	for _, s := range []int{a, c} {
		if err := conns[s].TrySend(&ipc.Message{Dst: bEP, Type: ipc.Notify}); err != nil {
			t.Fatal(err)
		}
		readAll(k, s)
	}
	if err := conns[c].TrySend(&ipc.Message{Dst: bEP, Type: ipc.Notification}); err != nil {
		t.Fatal(err)
	}
	readAll(k, c)
	if k.core.Refused[ReasonKernelOnly] != 1 {
		t.Fatalf("refusals %v, want the forged Notification refused", k.core.Refused)
	}
	notes := 0
	for _, o := range k.procs[b].pending {
		if o.Msg.Type == ipc.Notification {
			notes++
		}
	}
	if notes != 1 {
		t.Fatalf("%d Notifications wait for b, want 1", notes)
	}
	var got []kcall.Notification
	var m ipc.Message
	for n, rounds := 0, 0; n < sent+1 && rounds < 100000; rounds++ {
		for conns[b].TryRecv(&m) == nil {
			n++
			if m.Type == ipc.Notification {
				var nt kcall.Notification
				nt.Decode(&m)
				got = append(got, nt)
			}
		}
		k.flush(k.procs[b])
	}
	if want := uint64(1<<a | 1<<c); len(got) != 1 || got[0].Sources != want {
		t.Fatalf("b got notifications %+v, want one naming sources %#x", got, want)
	}
}

// TestOwnMessagesPauseNobody: what the kernel itself holds for an
// application that reads nothing (its refusals and alarms; TestHostileApp's
// attacker) pauses no server that then sends it a reply: the reply waits
// in the pair's queue and the server is still read. (The old kernel paused
// every source of a message to a destination holding MaxPending, whoever
// filled it: tcp and syscall stopped for everybody while the attacker
// lived, and another application's connect hung, then failed.)
func TestOwnMessagesPauseNobody(t *testing.T) {
	k, c := testKernN(t, 2)
	const tcp, evil = 1, 2
	k.core.SetClass(tcp, ipc.ClassTransport)
	k.core.Allow(tcp, evil)
	evilEP := k.procs[evil].entry.EP
	for i := 0; i < 2*MaxPending; i++ {
		m := ipc.Message{Src: ipc.Kernel, Dst: evilEP, Type: ipc.Alarm, Seq: uint32(i)}
		k.deliver(&Out{To: evil, Msg: m})
	}
	if n := flood(t, k, c[tcp], tcp, evil, 3); n != 3 || k.procs[tcp].paused {
		t.Fatalf("tcp paused after %d replies to an application that reads nothing", n)
	}
	if held := heldFrom(k.procs[evil], c[tcp].Self()); held != 3 {
		t.Fatalf("%d of tcp's messages held for evil, want 3", held)
	}
}

// TestHandOver: the kernel makes every inbox and pool as a sealed memfd
// and hands each process exactly the files it may map on its connection:
// its own inbox's rings read-only and its page read-write, in the inbox of
// each process it may send to its own ring read-write and the page
// read-only, and nothing of another sender's ring or of ring 0 (on the old
// layout, a sender got every inbox it sent to whole, read-write: the other
// senders' rings and ring 0 in it); its own pool read-write and every
// other read-only, and a tcp's awake word read-write to it and read-only
// to those that send to it, and the owners table read-only to all. What
// it got read-only it can neither map for writing nor make writable.
func TestHandOver(t *testing.T) {
	k, _ := testKernN(t, 3)
	k.core.Allow(1, 2) // a and c may send to b; b to nobody
	k.core.Allow(3, 2)
	k.c.Run, k.c.Spec.Slots = "0a1b2c3d", 4
	k.procs[2].spec.Role = "tcp" // b has an awake word
	if err := k.makeInboxes(); err != nil {
		t.Fatal(err)
	}
	if err := k.makePools(); err != nil {
		t.Fatal(err)
	}
	if err := k.makeAwake(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.cleanup)
	for _, p := range k.procs[1:] {
		kend, pend, err := kmsg.Pair()
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(kend)
		defer unix.Close(pend)
		if err := k.files(p).Send(kend); err != nil {
			t.Fatal(err)
		}
		fs, err := runfiles.Receive(pend)
		if err != nil {
			t.Fatal(err)
		}
		defer fs.Close()
		wantRings := map[int][]int{1: {0}, 2: {0, 1, 3}, 3: {0}}[p.slot]
		wantPeers := map[int][]int{1: {2}, 2: nil, 3: {2}}[p.slot]
		if got := slices.Sorted(maps.Keys(fs.Inbox.Rings)); !slices.Equal(got, wantRings) || fs.Inbox.Page == nil {
			t.Fatalf("%s got the rings of %v in its inbox (page %v), want %v", p.spec.Name, got, fs.Inbox.Page != nil, wantRings)
		}
		if got := slices.Sorted(maps.Keys(fs.Peers)); !slices.Equal(got, wantPeers) || len(fs.Pools) != 3 {
			t.Fatalf("%s got rings in the inboxes of %v and %d pools, want %v and 3", p.spec.Name, got, len(fs.Pools), wantPeers)
		}
		// b's awake word: b writes it, a and c (which send to b) read it.
		if f := fs.Awake[2]; len(fs.Awake) != 1 || f == nil {
			t.Fatalf("%s got awake words %v, want b's", p.spec.Name, fs.Awake)
		}
		mode := func(what string, f *os.File, rw bool) {
			t.Helper()
			fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fl&unix.O_ACCMODE, map[bool]int{true: unix.O_RDWR, false: unix.O_RDONLY}[rw]; got != want {
				t.Errorf("%s: %s opened with mode %d, want %d", p.spec.Name, what, got, want)
			}
			if rw {
				return
			}
			m, err := unix.Mmap(int(f.Fd()), 0, 64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if !errors.Is(err, unix.EACCES) {
				t.Errorf("%s: %s mapped for writing: %v, want EACCES", p.spec.Name, what, err)
			}
			if err == nil {
				unix.Munmap(m)
			}
		}
		named := func(f *os.File, want string) {
			t.Helper()
			l, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
			if got := strings.TrimSuffix(strings.TrimPrefix(l, "/memfd:"), " (deleted)"); err != nil || got != want {
				t.Errorf("%s: got %s, want %s", p.spec.Name, got, want)
			}
		}
		for slot, f := range fs.Inbox.Rings {
			mode(fmt.Sprintf("its ring from slot %d", slot), f, false)
		}
		mode("its page", fs.Inbox.Page, true)
		named(fs.Inbox.Page, runfiles.InboxName(k.c.Run, p.spec.Name))
		for slot, pf := range fs.Peers {
			q := k.procs[slot].spec.Name
			mode("its ring to "+q, pf.Ring, true)
			named(pf.Ring, runfiles.RingName(k.c.Run, q, p.spec.Name))
			mode("the page of "+q, pf.Page, false)
			named(pf.Page, runfiles.InboxName(k.c.Run, q))
		}
		for slot, f := range fs.Pools {
			mode(fmt.Sprintf("the pool of slot %d", slot), f, slot == p.slot)
		}
		for slot, f := range fs.Awake {
			mode(fmt.Sprintf("the awake word of slot %d", slot), f, slot == p.slot)
		}
		if fs.Owners == nil {
			t.Fatalf("%s got no owners table", p.spec.Name)
		}
		mode("the owners table", fs.Owners, false)
		all := slices.Concat(slices.Collect(maps.Values(fs.Inbox.Rings)), slices.Collect(maps.Values(fs.Pools)),
			slices.Collect(maps.Values(fs.Awake)), []*os.File{fs.Inbox.Page})
		for _, pf := range fs.Peers {
			all = append(all, pf.Ring, pf.Page)
		}
		for _, f := range all {
			if err := memfd.CheckSealed(f); err != nil {
				t.Errorf("%s: %v", p.spec.Name, err)
			}
		}
	}
	if files, _ := filepath.Glob(shm.Path(k.c.Run, "*")); len(files) != 0 {
		t.Errorf("run files under names: %v", files)
	}
}

// serveKern runs k's connections in the background, as its loop does,
// until the returned stop is called.
func serveKern(k *kern) (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		events := make([]unix.EpollEvent, 8)
		for {
			select {
			case <-quit:
				return
			default:
			}
			n, _ := unix.EpollWait(k.epfd, events, 10)
			for _, ev := range events[:max(n, 0)] {
				if ev.Events&unix.EPOLLIN != 0 {
					k.receive(int(ev.Fd), time.Now())
				}
				if ev.Events&unix.EPOLLOUT != 0 {
					k.flush(k.procs[ev.Fd])
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// TestDepositCollect: tcp deposits a descriptor for an application over
// its real connection, the application collects the same file; one
// deposited for an application that then dies is closed by the kernel
// (the pipe it is the write end of reads end of file). The old kernel
// read connections with recvfrom, which closes descriptors it finds.
func TestDepositCollect(t *testing.T) {
	k, conns := testKernN(t, 2)
	const app, tcp = 1, 2
	k.core.SetClass(tcp, ipc.ClassTransport)
	k.core.Allow(app, tcp)
	k.core.Allow(tcp, app)
	k.c.StateDir, k.metrics = t.TempDir(), &prom.Server{} // reap writes the status file
	appEP := k.procs[app].entry.EP
	pipe := func() (r, w *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		return r, w
	}

	stop := serveKern(k)
	r1, w1 := pipe()
	var m ipc.Message
	kcall.Deposit{App: appEP, ID: 7}.Encode(&m)
	if _, _, err := conns[tcp].CallFile(&m, w1); err != nil {
		t.Fatalf("deposit: %v", err)
	}
	w1.Close()
	kcall.Collect{From: k.procs[tcp].entry.EP, ID: 7}.Encode(&m)
	_, f, err := conns[app].CallFile(&m, nil)
	if err != nil || f == nil {
		t.Fatalf("collect = %v, %v; want the descriptor", f, err)
	}
	if _, err := f.WriteString("through the kernel"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got := make([]byte, 64)
	if n, _ := r1.Read(got); string(got[:n]) != "through the kernel" {
		t.Fatalf("the pipe read %q", got[:n])
	}

	// One left for the application when it dies.
	r2, w2 := pipe()
	kcall.Deposit{App: appEP, ID: 8}.Encode(&m)
	if _, _, err := conns[tcp].CallFile(&m, w2); err != nil {
		t.Fatalf("deposit: %v", err)
	}
	w2.Close()
	stop()
	if k.core.Deposits(app) != 1 {
		t.Fatalf("the kernel keeps %d descriptors for the application, want 1", k.core.Deposits(app))
	}
	cmd := &exec.Cmd{}
	k.procs[app].cmd = cmd
	k.exits <- exitEvent{slot: app, cmd: cmd}
	k.reap(time.Now())
	r2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r2.Read(got); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after the application died the pipe read %d, %v; want end of file (the kernel closed its copy)", n, err)
	}
}

// BenchmarkRegionHandOver: what handing a new exposed region to its
// application costs (docs/EXPOSED.md), side by side: "kernel", the
// region a sealed memfd deposited with the kernel and collected from it
// over real connections (two kernel calls, each a round trip through the
// kernel's loop, here a goroutine); "named", the old way, a file in
// /dev/shm made, sized and given to the application's group by tcp,
// opened and unlinked by the application. Neither maps the region (both
// ways map it alike).
func BenchmarkRegionHandOver(b *testing.B) {
	const size = 144 << 10
	b.Run("kernel", func(b *testing.B) {
		k, conns := testKernN(b, 2)
		const app, tcp = 1, 2
		k.core.SetClass(tcp, ipc.ClassTransport)
		k.core.Allow(tcp, app)
		appEP, tcpEP := k.procs[app].entry.EP, k.procs[tcp].entry.EP
		stop := serveKern(k)
		defer stop()
		for i := range b.N {
			f, err := memfd.Create("region", size)
			if err != nil {
				b.Fatal(err)
			}
			var m ipc.Message
			kcall.Deposit{App: appEP, ID: uint64(i)}.Encode(&m)
			if _, _, err := conns[tcp].CallFile(&m, f); err != nil {
				b.Fatal(err)
			}
			f.Close()
			kcall.Collect{From: tcpEP, ID: uint64(i)}.Encode(&m)
			_, g, err := conns[app].CallFile(&m, nil)
			if err != nil {
				b.Fatal(err)
			}
			g.Close()
		}
	})
	b.Run("named", func(b *testing.B) {
		p := shm.Path(fmt.Sprintf("bench-%d", os.Getpid()), "region")
		for range b.N {
			f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			if err := f.Truncate(size); err != nil {
				b.Fatal(err)
			}
			if err := f.Chown(os.Getuid(), os.Getgid()); err != nil {
				b.Fatal(err)
			}
			if err := f.Chmod(0o660); err != nil {
				b.Fatal(err)
			}
			f.Close()
			g, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				b.Fatal(err)
			}
			os.Remove(p)
			g.Close()
		}
	})
}

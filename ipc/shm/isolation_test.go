package shm

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/futex"
	"github.com/newtsim/newtsim/ipc/memfd"
)

// What a process can write of an inbox, beyond its own ring's messages
// (TestHostileWrites): nothing that another side reads to steer it. Each
// ring is a file of its own, and what a process may only read it is handed
// read-only.

// faults reports whether a store of v into b[off:] faults: b is a
// read-only mapping.
func faults(b []byte, off int) (faulted bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			faulted = true
		}
	}()
	b[off] = 0xa5
	return false
}

// writable reports whether f can be mapped shared for writing, and
// whether a read-only mapping of it can be made writable (mprotect).
func writable(t *testing.T, f *os.File) (mmap, mprotect error) {
	t.Helper()
	if m, err := unix.Mmap(int(f.Fd()), 0, lineSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
		unix.Munmap(m)
	} else {
		mmap = err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, lineSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	return mmap, unix.Mprotect(m, unix.PROT_READ|unix.PROT_WRITE)
}

// TestReadOnlyToThem: the receiver cannot write into its rings (another
// sender's, the kernel's ring 0), and a sender cannot write into the
// receiver's page (its wake word, the tails): their mappings are
// read-only, a store faults, and the descriptors the kernel hands over can
// be neither mapped for writing nor made writable (EACCES). On the old
// layout every sender mapped the whole inbox read-write.
func TestReadOnlyToThem(t *testing.T) {
	const other = 3
	ti := newInbox(t, 4, ipc.KernelSlot, txSlot, other)
	rx, tx := openPair(t, ti, ipc.WaitPolicy{})
	rxMaps, txMaps := rx.Mappings(), tx.Mappings()
	if len(rxMaps.ReadOnly) != 3 || len(rxMaps.Rings) != 0 || rxMaps.Page == nil {
		t.Fatalf("the receiver maps %d rings read-only, %d read-write, page %v; want 3, 0, its own",
			len(rxMaps.ReadOnly), len(rxMaps.Rings), rxMaps.Page != nil)
	}
	if len(txMaps.ReadOnly) != 1 || len(txMaps.Rings) != 1 || txMaps.Page != nil {
		t.Fatalf("the sender maps %d files read-only, %d rings read-write, page %v; want 1, 1, none",
			len(txMaps.ReadOnly), len(txMaps.Rings), txMaps.Page != nil)
	}
	for i, b := range rxMaps.ReadOnly {
		if !faults(b, ringHeader) || !faults(b, 0) {
			t.Errorf("the receiver wrote into its ring %d", i)
		}
	}
	if !faults(txMaps.ReadOnly[0], 0) || !faults(txMaps.ReadOnly[0], lineSize*(1+other)) {
		t.Error("the sender wrote into the receiver's page")
	}
	for name, f := range map[string]*os.File{"ring 0": ti.ro.Rings[ipc.KernelSlot], "another sender's ring": ti.ro.Rings[other],
		"the sender's own ring, as the receiver gets it": ti.ro.Rings[txSlot], "the page, as a sender gets it": ti.ro.Page} {
		mm, mp := writable(t, f)
		if !errors.Is(mm, unix.EACCES) || !errors.Is(mp, unix.EACCES) {
			t.Errorf("%s: mmap for writing: %v, mprotect: %v; want EACCES", name, mm, mp)
		}
	}
	// The words that are each side's own: writable by it.
	if faults(txMaps.Rings[0], lineSize) || faults(rxMaps.Page, 0) {
		t.Error("a side cannot write its own words")
	}
}

// TestSleepWordsOwnSide: each side sets its own sleep word before it
// sleeps and moves it on when it wakes; the other side, which only reads
// it, wakes each sleep once (a futex wake needs no write access). On the
// old layout the waker cleared the sleeper's word with a compare-and-swap.
func TestSleepWordsOwnSide(t *testing.T) {
	ti := newInbox(t, 2)
	rx, tx := openPair(t, ti, ipc.WaitPolicy{})
	wake := rx.in.wake
	got := make(chan error, 1)
	go func() {
		var m ipc.Message
		err := rx.Recv(&m)
		if err == nil {
			err = checkSeq(&m, 1)
		}
		got <- err
	}()
	for wake.Load()&1 == 0 {
		time.Sleep(time.Millisecond)
	}
	asleep := wake.Load()
	m := seqMsg(1)
	if err := tx.Send(&m); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if w := wake.Load(); w&1 != 0 || w <= asleep {
		t.Errorf("the receiver's wake word is %d after its sleep at %d: want it moved on, even", w, asleep)
	}
	if tx.stats.Wakeups.Load() != 1 {
		t.Errorf("%d wake-ups, want 1", tx.stats.Wakeups.Load())
	}

	// The producer on a full ring.
	r := &tx.out[rxSlot].r
	for i := range 2 {
		m := seqMsg(uint64(i))
		if err := tx.TrySend(&m); err != nil {
			t.Fatal(err)
		}
	}
	sent := make(chan error, 1)
	go func() {
		m := seqMsg(2)
		sent <- tx.Send(&m)
	}()
	for r.prodWait.Load()&1 == 0 {
		time.Sleep(time.Millisecond)
	}
	slept := r.prodWait.Load()
	for i := range 3 {
		var m ipc.Message
		if err := rx.Recv(&m); err != nil || checkSeq(&m, uint64(i)) != nil {
			t.Fatalf("message %d: %v %v", i, err, &m)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if w := r.prodWait.Load(); w&1 != 0 || w <= slept {
		t.Errorf("the producer's sleep word is %d after its sleep at %d: want it moved on, even", w, slept)
	}
	if rx.in.rings[0].woken != slept {
		t.Errorf("the consumer woke sleep %d, want %d", rx.in.rings[0].woken, slept)
	}
}

// TestRestartedAsleep: a process that died asleep leaves its sleep word
// odd; its successor, mapping the same files, starts awake, so that
// senders do not take it for asleep.
func TestRestartedAsleep(t *testing.T) {
	ti := newInbox(t, 4)
	rx, tx := openPair(t, ti, ipc.WaitPolicy{})
	rx.in.asleep()
	tx.out[rxSlot].r.prodWait.Store(7)
	rx.Close()
	tx.Close()
	rx, tx = openPair(t, ti, ipc.WaitPolicy{})
	if w := rx.in.wake.Load(); w&1 != 0 {
		t.Errorf("the restarted receiver's wake word is %d", w)
	}
	if w := tx.out[rxSlot].r.prodWait.Load(); w != 8 {
		t.Errorf("the restarted producer's sleep word is %d, want 8", w)
	}
	m := seqMsg(1)
	if err := tx.Send(&m); err != nil || rx.TryRecv(&m) != nil || checkSeq(&m, 1) != nil {
		t.Fatalf("after the restart: %v %v", err, &m)
	}
}

// TestRingsOwnFiles: every ring is a file of its own: what a producer
// writes into its whole ring (head, sleep word, slots) reaches no other
// ring, and the tails lines of the page are by sender slot, one each.
func TestRingsOwnFiles(t *testing.T) {
	const other = 3
	ti := newInbox(t, 4, ipc.KernelSlot, txSlot, other)
	rx, tx := openPair(t, ti, ipc.WaitPolicy{})
	kern, err := Open(Config{Self: ipc.Kernel, Peers: map[int]PeerFiles{rxSlot: ti.sender(ipc.KernelSlot)}})
	if err != nil {
		t.Fatal(err)
	}
	defer kern.Close()
	m := ipc.Message{Dst: rxEP, Type: ipc.Notification, Seq: 9}
	if err := kern.Send(&m); err != nil {
		t.Fatal(err)
	}
	b := tx.Mappings().Rings[0]
	for i := range b {
		b[i] = 0xff
	}
	if err := rx.TryRecv(&m); err != nil || m.Src != ipc.Kernel || m.Seq != 9 {
		t.Fatalf("ring 0 after the sender wrote its whole ring: %v %v", err, &m)
	}
	if err := rx.TryRecv(&m); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatalf("took %v (%v) from a ring of garbage", &m, err)
	}
	for _, s := range []int{ipc.KernelSlot, txSlot, other} {
		r := &rx.in.rings[rx.in.RingOf(s)]
		if want := &rx.in.page.Mem[lineSize*(1+s)]; (*byte)(unsafe.Pointer(r.tail)) != want {
			t.Errorf("the tail of sender %d's ring is not on line %d", s, 1+s)
		}
	}
}

// TestSealedInbox: a run's inbox files (NewInbox) cannot be truncated or
// grown by anyone holding them, so a mapping of them never faults, and
// they have no name in /dev/shm.
func TestSealedInbox(t *testing.T) {
	ti := newInbox(t, 4, ipc.KernelSlot, txSlot)
	rx, tx := openPair(t, ti, ipc.WaitPolicy{})
	for _, f := range []*os.File{ti.rw.Page, ti.rw.Rings[txSlot], ti.rw.Rings[ipc.KernelSlot]} {
		for _, size := range []int64{0, 64, 1 << 20} {
			if err := f.Truncate(size); !errors.Is(err, unix.EPERM) {
				t.Errorf("truncate %s to %d: %v, want EPERM", f.Name(), size, err)
			}
		}
	}
	m := seqMsg(5)
	if err := tx.Send(&m); err != nil {
		t.Fatal(err)
	}
	if err := rx.TryRecv(&m); err != nil || checkSeq(&m, 5) != nil {
		t.Fatalf("after the truncates: %v %v", err, &m)
	}
	if st, err := os.Stat(Dir); err == nil && st.IsDir() {
		if _, err := os.Stat(filepath.Join(Dir, "newtsim-test.inbox")); !os.IsNotExist(err) {
			t.Errorf("the inbox has a name in %s: %v", Dir, err)
		}
	}
}

// TestOwnersTable: a sender checks the receiver's incarnation in the
// run's owners table (the kernel's, mapped read-only by the sender): the
// kernel's table says when the receiver is dead.
func TestOwnersTable(t *testing.T) {
	ti := newInbox(t, 4)
	kern, f, err := NewOwners("newtsim-test.owners")
	if err != nil {
		t.Fatal(err)
	}
	defer kern.Close()
	defer f.Close()
	kern.Set(rxSlot, rxEP)
	ro, err := memfd.ReadOnly(f)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	owners, err := MapOwners(ro)
	if err != nil {
		t.Fatal(err)
	}
	defer owners.Close()
	if !faults(owners.mem, 4*rxSlot) {
		t.Fatal("a sender wrote into the owners table")
	}
	rx, err := Open(Config{Self: rxEP, Inbox: ti.receiver()})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := Open(Config{Self: txEP, Peers: map[int]PeerFiles{rxSlot: ti.sender(txSlot)}, Owners: owners})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	m := seqMsg(1)
	if err := tx.Send(&m); err != nil {
		t.Fatal(err)
	}
	if err := rx.TryRecv(&m); err != nil || checkSeq(&m, 1) != nil {
		t.Fatalf("got %v %v, want message 1", err, &m)
	}
	kern.Set(rxSlot, ipc.MakeEndpoint(rxSlot, 0)) // the kernel buries it
	m = seqMsg(3)
	if err := tx.Send(&m); !errors.Is(err, ipc.ErrDeadEndpoint) {
		t.Fatalf("send to a receiver the table says is dead: %v, want ErrDeadEndpoint", err)
	}
}

// TestWakeBeforeSleep: a wake-up that comes between a sleeper's last look
// and its sleep is not lost, though the waker cannot write the sleeper's
// word to say so: the sleeper sleeps on the word the waker stores before
// it wakes (the receiver on its rings' next marks, the producer on the
// tail), so the sleep ends at once. Sleeping on its own sleep word, as the
// first version of this layout did, it slept out its whole timeout.
func TestWakeBeforeSleep(t *testing.T) {
	const long = 20 * time.Second // a lost wake-up would sleep this long
	rx, tx := openPair(t, newInbox(t, 2), ipc.WaitPolicy{})
	var m ipc.Message
	if err := rx.TryRecv(&m); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatal(err)
	}
	rx.in.asleep() // the receiver's last look found nothing...
	m = seqMsg(1)
	if err := tx.Send(&m); err != nil { // ...and the sender wakes nobody yet asleep
		t.Fatal(err)
	}
	if tx.stats.Wakeups.Load() != 1 {
		t.Fatalf("%d wake-ups, want 1", tx.stats.Wakeups.Load())
	}
	start := time.Now()
	if err := rx.sleep(long, false); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > long/4 {
		t.Fatalf("the receiver slept %v through a message sent before it slept", d)
	}
	rx.in.awake()
	if err := rx.TryRecv(&m); err != nil || checkSeq(&m, 1) != nil {
		t.Fatalf("%v %v", err, &m)
	}
	// Later still: the message comes after the receiver has taken the
	// values of the marks it sleeps on.
	rx.in.asleep()
	if !rx.in.sleepSet() {
		t.Fatal("a message in an empty ring")
	}
	m = seqMsg(2)
	if err := tx.Send(&m); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := rx.in.next.Wait(long, false); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > long/4 {
		t.Fatalf("the receiver slept %v through a message sent before it slept", d)
	}
	rx.in.awake()
	if err := rx.TryRecv(&m); err != nil || checkSeq(&m, 2) != nil {
		t.Fatalf("%v %v", err, &m)
	}

	// The producer on a full ring, the consumer's take between its last
	// look and its sleep.
	o := tx.out[rxSlot]
	for i := range 2 {
		m := seqMsg(uint64(i))
		if err := tx.TrySend(&m); err != nil {
			t.Fatal(err)
		}
	}
	o.r.sleeps++
	o.r.prodWait.Store(o.r.sleeps)
	m = seqMsg(3)
	if o.r.tryPut(&m) {
		t.Fatal("a put on a full ring")
	}
	if err := rx.TryRecv(&m); err != nil || checkSeq(&m, 0) != nil {
		t.Fatalf("%v %v", err, &m)
	}
	start = time.Now()
	if err := futex.Wait(o.r.tailWord(), uint32(o.r.tailSeen), long); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > long/4 {
		t.Fatalf("the producer slept %v through room made before it slept", d)
	}
}

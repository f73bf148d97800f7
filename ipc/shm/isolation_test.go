package shm

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/memfd"
	"golang.org/x/sys/unix"
)

// What a peer that shares an inbox file can write, beyond its own ring's
// messages (TestHostileWrites): the words that steer the other side. Each
// case fails on a ring that trusts them.

// TestSenderWordOutOfRange: a ring's sender word beyond ipc.MaxSlots is
// refused when the inbox is mapped (it indexed the receiver's per-sender
// counters out of range, a panic on every restart), and the kernel's Repair
// writes it back so that the owner starts again.
func TestSenderWordOutOfRange(t *testing.T) {
	path := newInbox(t, 4)
	kern, err := OpenInbox(path) // the kernel's mapping, made before the scribble
	if err != nil {
		t.Fatal(err)
	}
	defer kern.Close()
	reg, err := OpenRegion(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	binary.LittleEndian.PutUint32(reg.Mem[headerSize+2*lineSize:], 40000)
	if _, err := Open(Config{Self: rxEP, Inbox: file(t, path)}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with sender word 40000: %v, want ErrCorrupt", err)
	}
	kern.Repair()
	rx, tx := openPair(t, path, ipc.WaitPolicy{})
	m := seqMsg(1)
	if err := tx.Send(&m); err != nil {
		t.Fatal(err)
	}
	if err := rx.TryRecv(&m); err != nil || checkSeq(&m, 1) != nil {
		t.Fatalf("after Repair: %v %v", err, &m)
	}
}

// TestWakeWordCleared: a peer that clears the receiver's wake word while it
// sleeps (so that no sender wakes it) delays a message by at most
// RecvRecheck, never for ever.
func TestWakeWordCleared(t *testing.T) {
	rx, tx := openPair(t, newInbox(t, 4), ipc.WaitPolicy{})
	got := make(chan error, 1)
	go func() {
		var m ipc.Message
		err := rx.Recv(&m)
		if err == nil {
			err = checkSeq(&m, 7)
		}
		got <- err
	}()
	in := tx.out[rxSlot].in
	for in.wake.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond) // asleep in the futex by now
	in.wake.Store(0)                 // the hostile peer's write
	m := seqMsg(7)
	if err := tx.Send(&m); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * RecvRecheck):
		t.Fatal("the receiver slept through a message after its wake word was cleared")
	}
}

// TestTailMoved: a peer that moves another sender's tail so that its ring
// looks full (or the consumer would look for the wrong message) wedges
// nothing: the consumer takes by its own tail and puts the shared one back
// before it sleeps (or, polling, every 256 empty looks), and the sender's
// bounded sleep sees the room again.
func TestTailMoved(t *testing.T) {
	for _, tt := range []struct {
		name string
		wait ipc.WaitPolicy
	}{{"block", ipc.WaitPolicy{}}, {"poll", ipc.WaitPolicy{Spin: ipc.SpinForever}}} {
		t.Run(tt.name, func(t *testing.T) { tailMoved(t, tt.wait) })
	}
}

func tailMoved(t *testing.T, wait ipc.WaitPolicy) {
	rx, tx := openPair(t, newInbox(t, 4), wait)
	r := tx.out[rxSlot].r
	r.tail.Store(^uint64(3)) // head 0 minus 4: full, and not the consumer's number
	sent := make(chan error, 1)
	go func() {
		m := seqMsg(3)
		sent <- tx.Send(&m)
	}()
	var m ipc.Message
	if err := rx.RecvTimeout(&m, 5*time.Second); err != nil || checkSeq(&m, 3) != nil {
		t.Fatalf("after the tail moved: %v %v", err, &m)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// TestOwnerWordOverwritten: the receiver stamps what it takes with its own
// endpoint, not the shared owner word, which any peer can overwrite: a
// forged owner cannot make it take its messages for another incarnation's
// (and drop them as stale).
func TestOwnerWordOverwritten(t *testing.T) {
	rx, tx := openPair(t, newInbox(t, 4), ipc.WaitPolicy{})
	m := seqMsg(1)
	if err := tx.Send(&m); err != nil {
		t.Fatal(err)
	}
	tx.out[rxSlot].in.SetOwner(ipc.MakeEndpoint(rxSlot, 77))
	if err := rx.TryRecv(&m); err != nil || m.Dst != rxEP {
		t.Fatalf("got %v %v, want a message for %s", err, &m, rxEP)
	}
}

// TestSealedInbox: a run's inbox (NewInbox) cannot be truncated or grown
// by anyone holding it, so a mapping of it never faults; a named inbox
// file (as every run's inbox was) can be, and its receiver then faults.
func TestSealedInbox(t *testing.T) {
	l := Layout{Senders: []int{ipc.KernelSlot, txSlot}, Slots: 4}
	kern, f, err := NewInbox("newtsim-test.inbox", rxEP, l)
	if err != nil {
		t.Fatal(err)
	}
	defer kern.Close()
	defer f.Close()
	rx, err := Open(Config{Self: rxEP, Inbox: f})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := Open(Config{Self: txEP, Peers: map[int]*os.File{rxSlot: f}})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for _, size := range []int64{0, 64, int64(l.Size()) * 2} {
		if err := f.Truncate(size); !errors.Is(err, unix.EPERM) {
			t.Errorf("truncate to %d: %v, want EPERM", size, err)
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

	// The named file, as before: anyone who opens it truncates it.
	path := newInbox(t, 4)
	if err := os.Truncate(path, 64); err != nil {
		t.Fatalf("truncate a named inbox: %v", err)
	}
	if _, err := OpenInbox(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open truncated: %v, want ErrCorrupt", err)
	}
}

// TestOwnersTable: with the run's owners table (the kernel's, mapped
// read-only by the sender), a peer that overwrites the owner word in an
// inbox's header no longer makes the receiver look dead to its other
// senders (without the table, the old way, it does: ErrDeadEndpoint until
// the kernel writes the word back); the kernel's table still says when
// the receiver is dead.
func TestOwnersTable(t *testing.T) {
	path := newInbox(t, 4)
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
	rx, err := Open(Config{Self: rxEP, Inbox: file(t, path)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := Open(Config{Self: txEP, Peers: map[int]*os.File{rxSlot: file(t, path)}, Owners: owners})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	untabled, err := Open(Config{Self: txEP, Peers: map[int]*os.File{rxSlot: file(t, path)}})
	if err != nil {
		t.Fatal(err)
	}
	defer untabled.Close()

	reg, err := OpenRegion(path) // a peer's view of the whole inbox
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	binary.LittleEndian.PutUint32(reg.Mem[offOwner:], uint32(ipc.MakeEndpoint(rxSlot, 77)))
	m := seqMsg(1)
	if err := tx.Send(&m); err != nil {
		t.Fatalf("send with the owners table after a peer overwrote the header: %v", err)
	}
	m = seqMsg(2)
	if err := untabled.Send(&m); !errors.Is(err, ipc.ErrDeadEndpoint) {
		t.Fatalf("send by the header's word after the overwrite: %v, want ErrDeadEndpoint", err)
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

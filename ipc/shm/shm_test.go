package shm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/memfd"
)

const (
	rxSlot = 1 // the receiving process in these tests
	txSlot = 2 // the sending process
)

var (
	rxEP = ipc.MakeEndpoint(rxSlot, 1)
	txEP = ipc.MakeEndpoint(txSlot, 1)
)

// testInbox is an inbox for rxEP as the kernel makes it, with a ring for
// each sender (txSlot's by default) and an owners table naming rxEP.
type testInbox struct {
	kern   *Inbox     // the kernel's mapping, for Discard
	rw     InboxFiles // the files, read-write
	ro     InboxFiles // read-only descriptors of them
	owners *Owners    // the kernel's owners table
}

func newInbox(tb testing.TB, slots int, senders ...int) *testInbox {
	tb.Helper()
	if len(senders) == 0 {
		senders = []int{txSlot}
	}
	kern, rw, err := NewInbox("newtsim-test.inbox", func(s int) string { return fmt.Sprintf("newtsim-test.%d.ring", s) },
		Layout{Senders: senders, Slots: slots})
	if err != nil {
		tb.Fatal(err)
	}
	ro, err := rw.ReadOnly()
	if err != nil {
		tb.Fatal(err)
	}
	owners, of, err := NewOwners("newtsim-test.owners")
	if err != nil {
		tb.Fatal(err)
	}
	of.Close()
	owners.Set(rxSlot, rxEP)
	tb.Cleanup(func() { kern.Close(); rw.Close(); ro.Close(); owners.Close() })
	return &testInbox{kern: kern, rw: rw, ro: ro, owners: owners}
}

// receiver is what the kernel hands the receiver: its rings read-only,
// its page read-write.
func (ti *testInbox) receiver() InboxFiles {
	return InboxFiles{Rings: ti.ro.Rings, Page: ti.rw.Page}
}

// sender is what the kernel hands the sender in slot: its ring
// read-write, the receiver's page read-only.
func (ti *testInbox) sender(slot int) PeerFiles {
	return PeerFiles{Ring: ti.rw.Rings[slot], Page: ti.ro.Page}
}

func openPair(t *testing.T, ti *testInbox, wait ipc.WaitPolicy) (rx, tx *Transport) {
	t.Helper()
	rx, err := Open(Config{Self: rxEP, Inbox: ti.receiver(), Wait: wait})
	if err != nil {
		t.Fatal(err)
	}
	tx, err = Open(Config{Self: txEP, Peers: map[int]PeerFiles{rxSlot: ti.sender(txSlot)}, Wait: wait, Owners: ti.owners})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close(); tx.Close() })
	return rx, tx
}

func seqMsg(i uint64) ipc.Message {
	return ipc.Message{Dst: rxEP, Type: ipc.Ping, Seq: uint32(i), Arg: [6]uint64{i, ^i, i * 31, 0, 0, i ^ 0x5555}}
}

func checkSeq(m *ipc.Message, want uint64) error {
	exp := seqMsg(want)
	if m.Arg != exp.Arg || m.Seq != exp.Seq || m.Src != txEP {
		return fmt.Errorf("message %d: got seq %d arg0 %d src %s", want, m.Seq, m.Arg[0], m.Src)
	}
	return nil
}

// TestInProcess runs producer and consumer as goroutines over one mapping,
// so the race detector sees both sides.
func TestInProcess(t *testing.T) {
	tests := []struct {
		name string
		wait ipc.WaitPolicy
	}{
		{"block", ipc.WaitPolicy{}},
		{"spin", ipc.WaitPolicy{Spin: 50 * time.Microsecond}},
		{"poll", ipc.WaitPolicy{Spin: ipc.SpinForever}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rx, tx := openPair(t, newInbox(t, 8), tt.wait)
			const n = 50000
			errc := make(chan error, 1)
			go func() {
				for i := uint64(0); i < n; i++ {
					m := seqMsg(i)
					if err := tx.Send(&m); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			var m ipc.Message
			for i := uint64(0); i < n; i++ {
				if err := rx.Recv(&m); err != nil {
					t.Fatal(err)
				}
				if err := checkSeq(&m, i); err != nil {
					t.Fatal(err)
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if err := rx.TryRecv(&m); !errors.Is(err, ipc.ErrWouldBlock) {
				t.Fatalf("TryRecv on an empty inbox: %v, want ErrWouldBlock", err)
			}
			if got := rx.Stats().Received[txSlot].Load(); got != n {
				t.Fatalf("received counter %d, want %d", got, n)
			}
		})
	}
}

func TestTrySendFull(t *testing.T) {
	rx, tx := openPair(t, newInbox(t, 4), ipc.WaitPolicy{})
	for i := uint64(0); i < 4; i++ {
		m := seqMsg(i)
		if err := tx.TrySend(&m); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	m := seqMsg(4)
	if err := tx.TrySend(&m); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatalf("TrySend on a full ring: %v, want ErrWouldBlock", err)
	}
	var got ipc.Message
	if err := rx.Recv(&got); err != nil || checkSeq(&got, 0) != nil {
		t.Fatalf("first message: %v %v", err, &got)
	}
	if err := tx.TrySend(&m); err != nil {
		t.Fatalf("TrySend after room was made: %v", err)
	}
}

func TestDeadEndpoint(t *testing.T) {
	ti := newInbox(t, 4)
	_, tx := openPair(t, ti, ipc.WaitPolicy{})
	ti.owners.Set(rxSlot, ipc.MakeEndpoint(rxSlot, 2)) // the receiver was restarted
	m := seqMsg(0)
	if err := tx.Send(&m); !errors.Is(err, ipc.ErrDeadEndpoint) {
		t.Fatalf("send to old incarnation: %v, want ErrDeadEndpoint", err)
	}
	m.Dst = ipc.MakeEndpoint(rxSlot, 2)
	if err := tx.Send(&m); err != nil {
		t.Fatalf("send to new incarnation: %v", err)
	}
}

// Messages left for a dead receiver are discarded before its successor
// starts: none reaches the new incarnation.
func TestDiscard(t *testing.T) {
	ti := newInbox(t, 4)
	rx, tx := openPair(t, ti, ipc.WaitPolicy{})
	for i := range 3 {
		m := seqMsg(uint64(i))
		if err := tx.Send(&m); err != nil {
			t.Fatal(err)
		}
	}
	rx.Close()                                         // the receiver dies
	ti.owners.Set(rxSlot, ipc.MakeEndpoint(rxSlot, 0)) // dead: no new sends
	if n := ti.kern.Discard(); n != 3 {
		t.Fatalf("discarded %d messages, want 3", n)
	}
	ti.owners.Set(rxSlot, ipc.MakeEndpoint(rxSlot, 2))
	rx, err := Open(Config{Self: ipc.MakeEndpoint(rxSlot, 2), Inbox: ti.receiver()}) // its successor
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	var m ipc.Message
	if err := rx.TryRecv(&m); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatalf("the successor received %v (%v), want nothing", &m, err)
	}
	m = seqMsg(3)
	m.Dst = ipc.MakeEndpoint(rxSlot, 2)
	if err := tx.Send(&m); err != nil {
		t.Fatal(err)
	}
	if err := rx.TryRecv(&m); err != nil || checkSeq(&m, 3) != nil {
		t.Fatalf("after the discard: %v, %v; want the new message", &m, err)
	}
}

func TestNoRoute(t *testing.T) {
	_, tx := openPair(t, newInbox(t, 4), ipc.WaitPolicy{})
	m := ipc.Message{Dst: ipc.MakeEndpoint(9, 1), Type: ipc.Ping}
	if err := tx.Send(&m); !errors.Is(err, ipc.ErrNoRoute) {
		t.Fatalf("send without a ring: %v, want ErrNoRoute", err)
	}
}

// TestHostileWrites scribbles on the mapping as a malicious sender could,
// and checks the receiver refuses and counts rather than crashing, looping or
// taking a message that is not complete.
func TestHostileWrites(t *testing.T) {
	rx, tx := openPair(t, newInbox(t, 4), ipc.WaitPolicy{})
	r := &tx.out[rxSlot].r
	var m ipc.Message

	// Garbage in every slot, with marks that are not the next number: the
	// ring still reads as empty.
	for i := uint64(0); i < 4; i++ {
		s := r.slot(i)
		*s = ipc.Message{Src: txEP, Type: 999, Arg: [6]uint64{^i}}
		mark(s).Store(seqOf(i + 4)) // a later lap's number
	}
	// A head far ahead of the tail: the consumer does not read it.
	r.head.Store(1 << 40)
	if err := rx.TryRecv(&m); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatalf("garbage ring: got %v (%v), want ErrWouldBlock", err, &m)
	}
	r.head.Store(0)
	for i := uint64(0); i < 4; i++ {
		*r.slot(i) = ipc.Message{}
	}

	// A message claiming another source: refused; the next good one arrives.
	forged := seqMsg(1)
	forged.Src = ipc.MakeEndpoint(7, 1)
	if !r.tryPut(&forged) {
		t.Fatal("ring full")
	}
	good := seqMsg(2)
	if err := tx.Send(&good); err != nil {
		t.Fatal(err)
	}
	if err := rx.TryRecv(&m); err != nil || checkSeq(&m, 2) != nil {
		t.Fatalf("after a forged message: %v %v", err, &m)
	}
	if m.Dst != rxEP {
		t.Fatalf("Dst = %s, want the inbox owner %s", m.Dst, rxEP)
	}
	if got := rx.Stats().Refused.Load(); got != 1 {
		t.Fatalf("refused = %d, want 1", got)
	}
}

// TestOpenRejectsBadFiles: a file handed over as a ring or a page that
// does not have the size of one is refused.
func TestOpenRejectsBadFiles(t *testing.T) {
	ti := newInbox(t, 4)
	sized := func(n int64) *os.File {
		f, err := memfd.Create("newtsim-test.bad", n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	tests := []struct {
		name string
		ring int64
		page int64
	}{
		{"ring-header-only", ringHeader, PageSize},
		{"ring-one-slot", int64(RingSize(1)), PageSize},
		{"ring-three-slots", int64(RingSize(3)), PageSize},
		{"ring-odd-bytes", int64(RingSize(4)) + 8, PageSize},
		{"page-short", int64(RingSize(4)), PageSize - 64},
		{"page-long", int64(RingSize(4)), PageSize + 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring, page := sized(tt.ring), sized(tt.page)
			if _, err := Open(Config{Self: rxEP, Inbox: InboxFiles{Rings: map[int]*os.File{txSlot: ring}, Page: page}}); !errors.Is(err, ErrCorrupt) {
				t.Errorf("receiver: %v, want ErrCorrupt", err)
			}
			if _, err := Open(Config{Self: txEP, Peers: map[int]PeerFiles{rxSlot: {Ring: ring, Page: page}}}); !errors.Is(err, ErrCorrupt) {
				t.Errorf("sender: %v, want ErrCorrupt", err)
			}
		})
	}
	if _, err := Open(Config{Self: txEP, Peers: map[int]PeerFiles{rxSlot: ti.sender(txSlot), 99: ti.sender(txSlot)}}); err == nil {
		t.Error("a peer slot out of range was accepted")
	}
}

// FuzzRing: whatever a producer writes into its ring, receiving from it
// does not crash, and takes only messages with the ring's sender.
func FuzzRing(f *testing.F) {
	f.Add(make([]byte, RingSize(4)))
	f.Fuzz(func(t *testing.T, data []byte) {
		ti := newInbox(t, 4)
		rx, err := Open(Config{Self: rxEP, Inbox: ti.receiver()})
		if err != nil {
			t.Fatal(err)
		}
		defer rx.Close()
		tx, err := Open(Config{Self: txEP, Peers: map[int]PeerFiles{rxSlot: ti.sender(txSlot)}})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		copy(tx.out[rxSlot].r.reg.Mem, data)
		var m ipc.Message
		for i := 0; i < 8 && rx.TryRecv(&m) == nil; i++ {
			if m.Src.Slot() != txSlot || m.Dst != rxEP {
				t.Fatalf("took %v from the ring of slot %d", &m, txSlot)
			}
		}
	})
}

// Cross-process tests: the test binary runs itself as the sending process.
// The race detector cannot see across processes, so these check the data
// instead: every message arrives once, in order, intact.

const envChild = "NEWTSIM_SHM_TEST_CHILD"

func TestCrossProcess(t *testing.T) {
	n := 2_000_000
	if testing.Short() {
		n = 200_000
	}
	tests := []struct {
		name string
		wait string
	}{
		{"block", "block"},
		{"spin", "20us"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := newInbox(t, 16)
			wait, _ := ipc.ParseWaitPolicy(tt.wait)
			rx, err := Open(Config{Self: rxEP, Inbox: ti.receiver(), Wait: wait})
			if err != nil {
				t.Fatal(err)
			}
			defer rx.Close()
			cmd := exec.Command(os.Args[0])
			// The sender's files, as the kernel hands them over: its
			// ring read-write (fd 3), the receiver's page read-only (fd 4).
			pf := ti.sender(txSlot)
			cmd.ExtraFiles = []*os.File{pf.Ring, pf.Page}
			cmd.Env = append(os.Environ(), envChild+"=1", "NEWTSIM_N="+strconv.Itoa(n), "NEWTSIM_WAIT="+tt.wait)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var m ipc.Message
			empties := 0
			for i := uint64(0); i < uint64(n); i++ {
				if err := rx.TryRecv(&m); errors.Is(err, ipc.ErrWouldBlock) {
					empties++
					if err := rx.Recv(&m); err != nil {
						t.Fatal(err)
					}
				} else if err != nil {
					t.Fatal(err)
				}
				if err := checkSeq(&m, i); err != nil {
					t.Fatal(err)
				}
				if i%50000 == 0 {
					time.Sleep(2 * time.Millisecond) // let the ring fill
				}
			}
			buf := make([]byte, 256)
			k, _ := out.Read(buf)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("sender: %v", err)
			}
			var fulls int
			fmt.Sscanf(string(buf[:k]), "fulls=%d", &fulls)
			t.Logf("%d messages; receiver found the ring empty %d times, sender found it full %d times; sleeps %d",
				n, empties, fulls, rx.Stats().Sleeps.Load())
			if err := rx.TryRecv(&m); !errors.Is(err, ipc.ErrWouldBlock) {
				t.Fatalf("extra message after %d: %v (%v)", n, &m, err)
			}
			if empties < 10 || fulls < 10 {
				t.Fatalf("the ring went empty %d and full %d times; want both many times", empties, fulls)
			}
		})
	}
}

// TestMain runs the binary as TestCrossProcess's sending process when asked.
func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		if err := childSender(); err != nil {
			fmt.Fprintln(os.Stderr, "sender:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func childSender() error {
	n, _ := strconv.Atoi(os.Getenv("NEWTSIM_N"))
	wait, _ := ipc.ParseWaitPolicy(os.Getenv("NEWTSIM_WAIT"))
	pf := PeerFiles{Ring: os.NewFile(3, "ring"), Page: os.NewFile(4, "page")}
	tx, err := Open(Config{Self: txEP, Peers: map[int]PeerFiles{rxSlot: pf}, Wait: wait})
	if err != nil {
		return err
	}
	fulls := 0
	for i := uint64(0); i < uint64(n); i++ {
		m := seqMsg(i)
		if err := tx.TrySend(&m); errors.Is(err, ipc.ErrWouldBlock) {
			fulls++
			m = seqMsg(i)
			if err := tx.Send(&m); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if i%70001 == 0 {
			time.Sleep(time.Millisecond) // let the ring drain
		}
	}
	fmt.Printf("fulls=%d\n", fulls)
	return nil
}

func TestRunOf(t *testing.T) {
	tests := []struct {
		name string
		run  string
		ok   bool
	}{
		{"newtsim-0a1b2c3d-tcp.inbox", "0a1b2c3d", true},
		{"newtsim-test-1234-5-pool", "", false},
		{"newtsim-bench123-local.inbox", "", false},
		{"newtsim-0A1B2C3D-tcp.inbox", "", false},
		{"newtsim-0a1b2c3d", "", false},
		{"other-0a1b2c3d-x", "", false},
	}
	for _, tt := range tests {
		run, ok := RunOf(tt.name)
		if run != tt.run || ok != tt.ok {
			t.Errorf("RunOf(%q) = %q, %v; want %q, %v", tt.name, run, ok, tt.run, tt.ok)
		}
	}
}

func TestRecvTimeout(t *testing.T) {
	rx, tx := openPair(t, newInbox(t, 16), ipc.WaitPolicy{})
	var m ipc.Message
	start := time.Now()
	if err := rx.RecvTimeout(&m, 30*time.Millisecond); !errors.Is(err, ipc.ErrTimeout) {
		t.Fatalf("empty inbox: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timed out after %v, want about 30ms", d)
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		time.Sleep(20 * time.Millisecond)
		s := seqMsg(7)
		s.Dst = rx.Self()
		tx.Send(&s)
	}()
	err := rx.RecvTimeout(&m, 5*time.Second)
	<-sent
	if err != nil || checkSeq(&m, 7) != nil {
		t.Fatalf("a message sent while waiting: %v %v", err, m)
	}
}

func TestRecvTimeoutWhilePolling(t *testing.T) {
	rx, _ := openPair(t, newInbox(t, 16), ipc.WaitPolicy{Spin: ipc.SpinForever})
	var m ipc.Message
	done := make(chan error, 1)
	go func() { done <- rx.RecvTimeout(&m, 20*time.Millisecond) }()
	select {
	case err := <-done:
		if !errors.Is(err, ipc.ErrTimeout) {
			t.Fatalf("%v, want ErrTimeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a polling receive ignored its deadline")
	}
}

// TestHeldDoorbells checks that while doorbells are held, a burst of sends
// to a sleeping receiver wakes it once, when they are rung, and that Send,
// which may wait for room, does not wait on a receiver owed a wake-up.
func TestHeldDoorbells(t *testing.T) {
	rx, tx := openPair(t, newInbox(t, 4), ipc.WaitPolicy{})
	sleeping := func() { rx.in.asleep() } // as Recv says it sleeps
	tests := []struct {
		name      string
		hold      bool
		sends     int
		wantEarly uint64 // wake-ups before RingDoorbells
		wantAfter uint64 // and after
	}{
		{"held", true, 3, 0, 1},
		{"not held", false, 3, 1, 1}, // the first send wakes; the receiver no longer sleeps
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tx.stats.Wakeups.Load()
			sleeping()
			tx.HoldDoorbells(tt.hold)
			for i := range tt.sends {
				m := seqMsg(uint64(i))
				if err := tx.TrySend(&m); err != nil {
					t.Fatal(err)
				}
			}
			if got := tx.stats.Wakeups.Load() - before; got != tt.wantEarly {
				t.Errorf("%d wake-ups before the ring, want %d", got, tt.wantEarly)
			}
			if err := tx.RingDoorbells(); err != nil {
				t.Fatal(err)
			}
			if got := tx.stats.Wakeups.Load() - before; got != tt.wantAfter {
				t.Errorf("%d wake-ups after the ring, want %d", got, tt.wantAfter)
			}
			if o := tx.out[rxSlot]; o.woken != rx.in.wake.Load() {
				t.Errorf("the sender woke sleep %d, not the receiver's %d: it was never woken", o.woken, rx.in.wake.Load())
			}
			rx.in.awake()
			for i := range tt.sends {
				var m ipc.Message
				if err := rx.TryRecv(&m); err != nil || checkSeq(&m, uint64(i)) != nil {
					t.Fatalf("message %d: %v %v", i, err, &m)
				}
			}
		})
	}
	// A held burst fills the ring; a Send then wakes the receiver it owes
	// before waiting for room, and the receiver makes room.
	tx.HoldDoorbells(true)
	for i := range 4 {
		m := seqMsg(uint64(i))
		if err := tx.TrySend(&m); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		for i := range 5 {
			var m ipc.Message
			if err := rx.Recv(&m); err != nil || checkSeq(&m, uint64(i)) != nil {
				done <- fmt.Errorf("message %d: %v %v", i, err, &m)
				return
			}
		}
		done <- nil
	}()
	m := seqMsg(4)
	if err := tx.Send(&m); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

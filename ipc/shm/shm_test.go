package shm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc"
)

const (
	rxSlot = 1 // the receiving process in these tests
	txSlot = 2 // the sending process
)

var (
	rxEP = ipc.MakeEndpoint(rxSlot, 1)
	txEP = ipc.MakeEndpoint(txSlot, 1)
)

// newInbox creates an inbox for rxEP with one ring for txSlot, in a
// per-test directory (the format is the same as under /dev/shm).
func newInbox(t *testing.T, slots int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "inbox")
	in, err := CreateInbox(path, rxEP, Layout{Senders: []int{txSlot}, Slots: slots})
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	return path
}

// file opens the inbox file at path for a Config; it is closed when the
// test ends.
func file(tb testing.TB, path string) *os.File {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

func openPair(t *testing.T, path string, wait ipc.WaitPolicy) (rx, tx *Transport) {
	t.Helper()
	rx, err := Open(Config{Self: rxEP, Inbox: file(t, path), Wait: wait})
	if err != nil {
		t.Fatal(err)
	}
	tx, err = Open(Config{Self: txEP, Peers: map[int]*os.File{rxSlot: file(t, path)}, Wait: wait})
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
	rx, tx := openPair(t, newInbox(t, 4), ipc.WaitPolicy{})
	rx.Inbox().SetOwner(ipc.MakeEndpoint(rxSlot, 2)) // the receiver was restarted
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
	rx, tx := openPair(t, newInbox(t, 4), ipc.WaitPolicy{})
	for i := range 3 {
		m := seqMsg(uint64(i))
		if err := tx.Send(&m); err != nil {
			t.Fatal(err)
		}
	}
	in := rx.Inbox()
	in.SetOwner(ipc.MakeEndpoint(rxSlot, 0)) // dead: no new sends
	if n := in.Discard(); n != 3 {
		t.Fatalf("discarded %d messages, want 3", n)
	}
	in.SetOwner(ipc.MakeEndpoint(rxSlot, 2))
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
	in := tx.out[rxSlot].in
	r := &in.rings[0]
	var m ipc.Message

	// Garbage in every slot, with marks that are not the next number: the
	// ring still reads as empty.
	for i := uint64(0); i < 4; i++ {
		s := r.slot(i, in.slots)
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
		*r.slot(i, in.slots) = ipc.Message{}
	}

	// A message claiming another source: refused; the next good one arrives.
	forged := seqMsg(1)
	forged.Src = ipc.MakeEndpoint(7, 1)
	if !in.tryPut(r, &forged) {
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

func TestOpenRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := newInbox(t, 4)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty-header", make([]byte, 64)},
		{"zeros", make([]byte, len(data))},
		{"truncated", data[:len(data)-64]},
		{"extended", append(append([]byte{}, data...), make([]byte, 64)...)},
		{"bad-slots", func() []byte { d := append([]byte{}, data...); d[offSlots] = 3; return d }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenInbox(p); err == nil {
				t.Fatal("OpenInbox accepted a bad file")
			}
		})
	}
}

func FuzzOpenInbox(f *testing.F) {
	in, err := CreateInbox(filepath.Join(f.TempDir(), "seed"), rxEP, Layout{Senders: []int{2, 3}, Slots: 2})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte{}, in.reg.Mem...))
	in.Close()
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		in, err := OpenInbox(p)
		if err != nil {
			return
		}
		defer in.Close()
		// Whatever the file said, receiving from it must not crash.
		tr := &Transport{in: in}
		var m ipc.Message
		for i := 0; i < 8 && tr.TryRecv(&m) == nil; i++ {
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
			path := newInbox(t, 16)
			wait, _ := ipc.ParseWaitPolicy(tt.wait)
			rx, err := Open(Config{Self: rxEP, Inbox: file(t, path), Wait: wait})
			if err != nil {
				t.Fatal(err)
			}
			defer rx.Close()
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), envChild+"="+path, "NEWTSIM_N="+strconv.Itoa(n), "NEWTSIM_WAIT="+tt.wait)
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
	if path := os.Getenv(envChild); path != "" {
		if err := childSender(path); err != nil {
			fmt.Fprintln(os.Stderr, "sender:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func childSender(path string) error {
	n, _ := strconv.Atoi(os.Getenv("NEWTSIM_N"))
	wait, _ := ipc.ParseWaitPolicy(os.Getenv("NEWTSIM_WAIT"))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	tx, err := Open(Config{Self: txEP, Peers: map[int]*os.File{rxSlot: f}, Wait: wait})
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
	sleeping := func() { rx.in.wake.Store(1) } // as Recv says it sleeps
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
			if rx.in.wake.Load() != 0 {
				t.Error("the receiver's wake word is still set: it was never woken")
			}
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

package shm

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/futex"
)

// Sender is where a Transport sends messages that no ring carries: in a
// server, messages to the kernel go over its kernel connection.
type Sender interface {
	Send(m *ipc.Message) error
}

// Config describes one process's channels.
type Config struct {
	// Self is this process's endpoint.
	Self ipc.Endpoint
	// Inbox are this process's own inbox's files (none for a process
	// that only sends): in a run, the descriptors the kernel handed over,
	// its rings read-only and its page read-write.
	Inbox InboxFiles
	// Peers maps the slot of each process this one may send to onto its
	// files of that process's inbox: its ring there, read-write, and the
	// receiver's page, read-only.
	Peers map[int]PeerFiles
	// Wait is how Recv and a blocked Send wait.
	Wait ipc.WaitPolicy
	// Fallback, if set, carries messages to destinations without a ring
	// (the kernel).
	Fallback Sender
	// Owners, if set, is the run's owners table (the kernel's): sends
	// check a receiver's incarnation there, and get ipc.ErrDeadEndpoint
	// for one it no longer names. Nil: no check, for rings outside a
	// run.
	Owners *Owners
}

// Transport is a process's user-space channels: its own inbox, and a ring
// in each peer's inbox. It implements ipc.Transport.
type Transport struct {
	self     ipc.Endpoint
	in       *Inbox
	out      [ipc.MaxSlots]*outbox
	wait     ipc.WaitPolicy
	fallback Sender
	next     int // ring to look at first, for fairness
	stats    ipc.Stats
	closed   bool
	// hold makes TrySend leave its wake-up owed (HoldDoorbells); owed
	// lists the slots owed one, once each.
	hold bool
	owes [ipc.MaxSlots]bool
	owed []int
	// unheld makes every sleep go through the scheduler for now
	// (HoldSleeps).
	unheld bool
}

// outbox is the sender's side of its ring in a receiver's inbox.
type outbox struct {
	r    ring
	page *Region // the receiver's, read-only
	wake *atomic.Uint32
	// woken is the receiver's sleep (the value of its wake word) this
	// sender last woke, so that it wakes each sleep once.
	woken uint32
	// owner is the receiver's word in the owners table, or nil.
	owner *atomic.Uint32
}

func (o *outbox) close() error {
	err := o.r.reg.Close()
	if perr := o.page.Close(); err == nil {
		err = perr
	}
	return err
}

var _ ipc.Transport = (*Transport)(nil)

// Open maps the process's inbox and its rings in its peers' inboxes. The
// files may be closed afterwards; the mappings stay.
func Open(c Config) (*Transport, error) {
	t := &Transport{self: c.Self, wait: c.Wait, fallback: c.Fallback}
	if c.Inbox.Page != nil || len(c.Inbox.Rings) > 0 {
		in, err := MapInbox(c.Self, c.Inbox)
		if err != nil {
			return nil, err
		}
		t.in = in
	}
	for slot, pf := range c.Peers {
		if slot < 0 || slot >= ipc.MaxSlots || pf.Ring == nil || pf.Page == nil {
			t.Close()
			return nil, fmt.Errorf("shm: peer slot %d out of range or its files missing", slot)
		}
		o, err := openOutbox(c.Self.Slot(), pf)
		if err != nil {
			t.Close()
			return nil, err
		}
		if c.Owners != nil {
			o.owner = c.Owners.word(slot)
		}
		t.out[slot] = o
	}
	return t, nil
}

func openOutbox(self int, pf PeerFiles) (*outbox, error) {
	page, err := mapPage(pf.Page, MapFileReadOnly)
	if err != nil {
		return nil, err
	}
	r, err := mapRing(pf.Ring, self, page, true)
	if err != nil {
		page.Close()
		return nil, err
	}
	return &outbox{r: r, page: page, wake: (*atomic.Uint32)(unsafe.Pointer(&page.Mem[0]))}, nil
}

// RecvRecheck bounds every sleep of a receiver: it looks at its rings
// again after this long even if no sender woke it, a guard against a lost
// wake-up (no peer can write the wake word it sleeps on: its page is
// read-only to them).
const RecvRecheck = 100 * time.Millisecond

// Self returns this process's endpoint.
func (t *Transport) Self() ipc.Endpoint { return t.self }

// Stats returns the transport's counters.
func (t *Transport) Stats() *ipc.Stats { return &t.stats }

// Send delivers m, waiting while the destination's ring is full.
func (t *Transport) Send(m *ipc.Message) error { return t.send(m, true) }

// TrySend delivers m or returns ipc.ErrWouldBlock when the ring is full.
func (t *Transport) TrySend(m *ipc.Message) error { return t.send(m, false) }

func (t *Transport) send(m *ipc.Message, wait bool) error {
	if t.closed {
		return ipc.ErrClosed
	}
	m.Src = t.self
	slot := m.Dst.Slot()
	if slot >= ipc.MaxSlots {
		return fmt.Errorf("shm: send %s: %w", m.Type, ipc.ErrNoRoute)
	}
	o := t.out[slot]
	if o == nil {
		if t.fallback != nil {
			return t.fallback.Send(m)
		}
		return fmt.Errorf("shm: send %s to %s: %w", m.Type, m.Dst, ipc.ErrNoRoute)
	}
	if o.owner != nil && ipc.Endpoint(o.owner.Load()) != m.Dst {
		return fmt.Errorf("shm: send %s to %s (now %s): %w", m.Type, m.Dst, ipc.Endpoint(o.owner.Load()), ipc.ErrDeadEndpoint)
	}
	if !o.r.tryPut(m) {
		if !wait {
			return ipc.ErrWouldBlock
		}
		// A receiver owed a wake-up for what fills its ring must
		// wake to make room.
		if err := t.wake(o); err != nil {
			return err
		}
		if err := t.waitRoom(o, m); err != nil {
			return err
		}
	}
	t.stats.Sent[slot].Add(1)
	if t.hold && !wait {
		if !t.owes[slot] {
			t.owes[slot] = true
			t.owed = append(t.owed, slot)
		}
		return nil
	}
	return t.wake(o)
}

// wake wakes the receiver of o if it said it sleeps, once a sleep. The
// store of the mark (tryPut) and this load are sequentially consistent,
// and so are the receiver's store of its wake word and its re-check of
// the rings: one of the two always sees the other, however late the load
// comes after the store. The sender only reads the word (it maps the
// receiver's page read-only; a futex wake needs no write access): the
// receiver moves it on itself when it wakes.
func (t *Transport) wake(o *outbox) error {
	if w := o.wake.Load(); w&1 != 0 && w != o.woken {
		o.woken = w
		// The receiver sleeps on the mark of its next slot here, which
		// its tail names (stored before it said it sleeps).
		if _, err := futex.Wake(mark(o.r.slot(o.r.tail.Load())), 1); err != nil {
			return err
		}
		t.stats.Wakeups.Add(1)
	}
	return nil
}

// SleepThroughScheduler makes every sleep go through the Go scheduler, as
// the policy block-go does, for a process whose other goroutines do its
// work beside the receiving loop (a nic's device reader and wire, the
// client host's whole stack): a held sleep would leave the goroutines the
// loop readied, and the timers of its P, waiting for it.
func (t *Transport) SleepThroughScheduler() { t.wait.GoSleep = true }

// HoldSleeps, off, makes every sleep go through the Go scheduler until it
// is turned on again, whatever the wait policy: for receives that are
// expected to wait long, such as a loop's while a peer's ring stays full
// (package servers/sys), where a held sleep (HeldSleep) gains nothing and
// keeps the runtime's monitor thread busy for its whole length. On, the
// default, sleeps hold as the policy says.
func (t *Transport) HoldSleeps(on bool) { t.unheld = !on }

// HoldDoorbells, on, makes TrySend put messages in their rings without
// waking their receivers: RingDoorbells wakes each receiver sent to once,
// for the whole batch. A loop holds them while it drains its inbox, and
// rings them before it waits (package servers/sys). Send, which may
// wait, always wakes at once. Off, sends wake at once again; what is owed
// stays owed until RingDoorbells.
func (t *Transport) HoldDoorbells(on bool) { t.hold = on }

// RingDoorbells wakes, once, every receiver a held TrySend sent to since
// the last ring, if it sleeps.
func (t *Transport) RingDoorbells() error {
	var first error
	for _, slot := range t.owed {
		t.owes[slot] = false
		if o := t.out[slot]; o != nil {
			if err := t.wake(o); err != nil && first == nil {
				first = err
			}
		}
	}
	t.owed = t.owed[:0]
	return first
}

// waitRoom waits for room on a full ring: spin, then say so in the ring's
// sleep word, which the receiver reads after it moves the tail, and sleep
// on the tail. It gives up if the receiver is replaced meanwhile.
func (t *Transport) waitRoom(o *outbox, m *ipc.Message) error {
	var s spinner
	s.start(t.wait)
	for {
		if o.r.tryPut(m) {
			t.stats.Spins.Add(1)
			return nil
		}
		if !s.spin() {
			break
		}
	}
	r := &o.r
	for {
		r.sleeps++ // odd: asleep
		r.prodWait.Store(r.sleeps)
		ok := r.tryPut(m)
		dead := !ok && o.owner != nil && ipc.Endpoint(o.owner.Load()) != m.Dst
		if ok || dead {
			r.sleeps++
			r.prodWait.Store(r.sleeps)
			if dead {
				return fmt.Errorf("shm: send %s to %s: %w", m.Type, m.Dst, ipc.ErrDeadEndpoint)
			}
			return nil
		}
		t.stats.Sleeps.Add(1)
		// A bounded sleep, so a receiver that died without taking
		// anything is noticed when the kernel replaces it. The tail the
		// failed put read last is the one to sleep on.
		err := futex.Wait(r.tailWord(), uint32(r.tailSeen), 100*time.Millisecond)
		r.sleeps++
		r.prodWait.Store(r.sleeps)
		if err != nil {
			return err
		}
	}
}

// TryRecv takes the next queued message or returns ipc.ErrWouldBlock.
func (t *Transport) TryRecv(m *ipc.Message) error {
	if t.closed {
		return ipc.ErrClosed
	}
	if t.in == nil {
		return ipc.ErrNoRoute
	}
	if t.poll(m) {
		return nil
	}
	return ipc.ErrWouldBlock
}

// poll looks at every ring once, starting after the one served last.
func (t *Transport) poll(m *ipc.Message) bool {
	n := len(t.in.rings)
	for k := 0; k < n; k++ {
		i := t.next + k
		if i >= n {
			i -= n
		}
		r := &t.in.rings[i]
		for {
			switch t.in.take(r, m) {
			case takeEmpty:
			case takeOK:
				t.next = i + 1
				if t.next == n {
					t.next = 0
				}
				t.stats.Received[r.sender].Add(1)
				return true
			case takeRefused:
				t.stats.Refused.Add(1)
				continue // look at the ring again
			}
			break
		}
	}
	return false
}

// Recv waits for the next message: spin for the policy's budget, then sleep
// on the inbox's wake word until a sender wakes it.
func (t *Transport) Recv(m *ipc.Message) error {
	if t.closed {
		return ipc.ErrClosed
	}
	if t.in == nil {
		return ipc.ErrNoRoute
	}
	if t.poll(m) {
		return nil
	}
	var s spinner
	s.start(t.wait)
	for s.spin() {
		if t.poll(m) {
			t.stats.Spins.Add(1)
			return nil
		}
	}
	for first := true; ; first = false {
		t.in.asleep()
		if t.poll(m) {
			t.in.awake()
			return nil
		}
		// A bounded sleep that looks again, as a guard.
		err := t.sleep(RecvRecheck, first)
		t.in.awake()
		if err != nil {
			return err
		}
		if t.poll(m) {
			return nil
		}
	}
}

// RecvTimeout is Recv that gives up after d: it spins as Recv does, then
// sleeps on the wake word with the futex's own timeout (no timer, no
// other system call).
func (t *Transport) RecvTimeout(m *ipc.Message, d time.Duration) error {
	if t.closed {
		return ipc.ErrClosed
	}
	if t.in == nil {
		return ipc.ErrNoRoute
	}
	if t.poll(m) {
		return nil
	}
	deadline := time.Now().Add(d)
	var s spinner
	s.start(t.wait)
	for i := 0; s.spin(); i++ {
		if t.poll(m) {
			t.stats.Spins.Add(1)
			return nil
		}
		if i%64 == 63 && time.Now().After(deadline) {
			return ipc.ErrTimeout // a polling process spins only until the deadline
		}
	}
	for first := true; ; first = false {
		left := time.Until(deadline)
		if left <= 0 {
			return ipc.ErrTimeout
		}
		t.in.asleep()
		if t.poll(m) {
			t.in.awake()
			return nil
		}
		err := t.sleep(min(left, RecvRecheck), first)
		t.in.awake()
		if err != nil {
			return err
		}
		if t.poll(m) {
			return nil
		}
	}
}

// HeldSleep bounds the first sleep of a receive, the one that holds the
// process's place in the Go scheduler (futex.WaitHeld): a receiver under
// load is woken long before it ends; one that is not sleeps again, this
// time as any blocked thread does. It also bounds how long a garbage
// collection's stop-the-world can wait for the sleeper.
const HeldSleep = 2 * time.Millisecond

// sleep sleeps, having said so in its wake word, for at most d, on the
// marks of the next slot of every ring (Inbox.sleepSet), unless a message
// has come. The first sleep of a
// receive holds the scheduler's place (see HeldSleep and ipc.WaitPolicy)
// unless the policy says GoSleep, HoldSleeps turned it off, or the process
// has a single P, whose other goroutines (a nic's device reader, the
// metrics server) would then wait for it.
func (t *Transport) sleep(d time.Duration, first bool) error {
	if !t.in.sleepSet() {
		return nil
	}
	t.stats.Sleeps.Add(1)
	if trace.On() {
		trace.Record(trace.Sleep, 0, 0, t.self.Slot(), 0)
	}
	var err error
	if first && !t.wait.GoSleep && !t.unheld && runtime.GOMAXPROCS(0) > 1 {
		err = t.in.next.Wait(min(d, HeldSleep), true)
	} else {
		err = t.in.next.Wait(d, false)
	}
	if trace.On() {
		trace.Record(trace.Wake, 0, 0, t.self.Slot(), 0)
	}
	return err
}

// Close unmaps every file the transport mapped.
func (t *Transport) Close() error {
	t.closed = true
	var first error
	if t.in != nil {
		first = t.in.Close()
	}
	for i, o := range t.out {
		if o != nil {
			if err := o.close(); err != nil && first == nil {
				first = err
			}
			t.out[i] = nil
		}
	}
	return first
}

// spinner bounds a spin by time, reading the clock only every 64 turns
// (every turn when it yields: a turn is then a system call).
type spinner struct {
	forever  bool
	yield    bool
	deadline time.Time
	n        int
}

func (s *spinner) start(p ipc.WaitPolicy) {
	s.n = 0
	s.yield = p.Yield
	s.forever = p.Spin == ipc.SpinForever
	if p.Spin > 0 && !s.forever {
		s.deadline = time.Now().Add(p.Spin)
	} else {
		s.deadline = time.Time{}
	}
}

// spin pauses once and reports whether the budget allows another turn.
// Every 256 turns a spinner that never sleeps lets the process's other
// goroutines run (a nic's device reader, its wire's timer, the metrics
// server): with one thread for Go code, they would otherwise wait for the
// scheduler's 10 ms preemption.
func (s *spinner) spin() bool {
	if s.forever && s.yield {
		unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		return true
	}
	if s.forever {
		cpuRelax()
		s.n++
		if s.n&255 == 0 {
			runtime.Gosched()
		}
		return true
	}
	if s.deadline.IsZero() {
		return false
	}
	if s.yield {
		unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) // never fails
		return time.Now().Before(s.deadline)
	}
	cpuRelax()
	s.n++
	if s.n&63 == 0 && time.Now().After(s.deadline) {
		return false
	}
	return true
}

// Mappings are the mappings of a transport's files.
type Mappings struct {
	// Page is the process's own page (its wake word and tails), which it
	// writes.
	Page []byte
	// Rings are its rings in its peers' inboxes, which it writes.
	Rings [][]byte
	// ReadOnly are the mappings it may only read: its own rings (ring 0,
	// the kernel's, among them) and its peers' pages.
	ReadOnly [][]byte
}

// Mappings returns every mapping of the transport's files. The hostile
// diagnostic role writes garbage into what it may write, as a broken or
// malicious process would, and tries to make the rest writable.
func (t *Transport) Mappings() Mappings {
	var ms Mappings
	if t.in != nil {
		ms.Page = t.in.page.Mem
		for _, r := range t.in.rings {
			ms.ReadOnly = append(ms.ReadOnly, r.reg.Mem)
		}
	}
	for _, o := range t.out {
		if o != nil {
			ms.Rings = append(ms.Rings, o.r.reg.Mem)
			ms.ReadOnly = append(ms.ReadOnly, o.page.Mem)
		}
	}
	return ms
}

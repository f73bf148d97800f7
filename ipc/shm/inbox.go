package shm

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/futex"
	"github.com/newtsim/newtsim/ipc/memfd"
)

// The files of an inbox. Every offset is a multiple of the 64-byte cache
// line, and no file has a header: what a file is, and whose, the kernel
// says when it hands it over (package runfiles), and its size says how
// many slots a ring has, so there is no shared word to check or repair.
//
// A ring file, one per (sender, receiver) pair: the producer maps it
// read-write, the consumer read-only.
//
//	0    head line: head index (the producer's)
//	64   sleep line: the producer's sleep word (futex), odd while it sleeps
//	128  slots: slots * 64 bytes
//
// The receiver's page, one per receiver: the receiver maps it read-write,
// its senders read-only.
//
//	0              wake line: the receiver's sleep word (futex), odd while it sleeps
//	64 * (1 + s)   tail line of the ring whose sender is slot s
//
// Neither side writes the other's sleep word: each sets its own (odd)
// before it sleeps and moves it on (even) when it wakes; the other side
// only reads it, and calls FUTEX_WAKE once for each sleep it sees. A
// sleeper sleeps not on its own word but on the word the other side
// writes next, so that a wake-up that comes before the sleep cannot be
// lost: the receiver on the mark of the next slot of each of its rings
// (all at once, futex_waitv), the producer on its ring's tail. The other
// side stores that word first and then reads the sleep word; if it sees
// the sleep it wakes the word, and if the word changed before the sleeper
// got to sleep, the sleep returns at once. A futex wait or wake needs no
// write access to its word.
const (
	lineSize   = 64
	ringHeader = 2 * lineSize

	// PageSize is the size of a receiver's page.
	PageSize = lineSize * (1 + ipc.MaxSlots)

	// MaxSlots bounds the slots of one ring.
	MaxSlots = 1 << 16
)

// Layout sizes an inbox: one ring per sender, each of Slots messages.
type Layout struct {
	Senders []int // the slot of each ring's sender
	Slots   int   // messages per ring, a power of two
}

// RingSize is the size of a ring file of slots messages.
func RingSize(slots int) int { return ringHeader + slots*ipc.MessageSize }

func (l Layout) validate() error {
	if l.Slots < 2 || l.Slots > MaxSlots || l.Slots&(l.Slots-1) != 0 {
		return fmt.Errorf("shm: %d slots per ring: want a power of two in [2, %d]", l.Slots, MaxSlots)
	}
	if len(l.Senders) == 0 || len(l.Senders) > ipc.MaxSlots {
		return fmt.Errorf("shm: %d rings: want 1 to %d", len(l.Senders), ipc.MaxSlots)
	}
	seen := map[int]bool{}
	for _, s := range l.Senders {
		if s < 0 || s >= ipc.MaxSlots || seen[s] {
			return fmt.Errorf("shm: sender slot %d out of range or repeated", s)
		}
		seen[s] = true
	}
	return nil
}

// ErrCorrupt says a file handed over as a ring or a page does not have
// the size of one.
var ErrCorrupt = errors.New("shm: not a ring or page")

// InboxFiles are the files of one receiver's inbox.
type InboxFiles struct {
	// Rings are the ring files by their sender's slot.
	Rings map[int]*os.File
	// Page is the receiver's page.
	Page *os.File
}

// Close closes every file.
func (fs InboxFiles) Close() {
	for _, f := range fs.Rings {
		f.Close()
	}
	if fs.Page != nil {
		fs.Page.Close()
	}
}

// PeerFiles are what a sender maps of a receiver's inbox: its own ring
// there, to write, and the receiver's page, to read.
type PeerFiles struct {
	Ring, Page *os.File
}

// Inbox is the receiver's side of its rings (and the kernel's view of a
// receiver's inbox, to discard what a dead receiver left).
type Inbox struct {
	// self is the receiver's endpoint, which it stamps every message
	// with.
	self ipc.Endpoint
	page *Region
	wake *atomic.Uint32
	// sleeps is the receiver's own count of its sleeps, the value of
	// its wake word: odd while it sleeps.
	sleeps uint32
	rings  []ring
	// next are the marks the receiver sleeps on: the next slot's of
	// each ring.
	next futex.Set
}

// ring is one ring, as its producer or its consumer maps it.
type ring struct {
	reg      *Region
	head     *atomic.Uint64 // the producer's
	prodWait *atomic.Uint32 // the producer's sleep word
	tail     *atomic.Uint64 // in the receiver's page: the consumer's
	// sender is the slot allowed to produce on the ring: the kernel
	// said so when it handed the file over.
	sender int
	slots  uint64
	base   unsafe.Pointer
	// tailOwn is the consumer's own tail, published to the shared tail
	// for the producer's sake.
	tailOwn uint64
	// tailSeen is the producer's private copy of the tail. It is read
	// again from shared memory only when the ring looks full, so the
	// consumer's tail line is not pulled to the producer's core on every
	// send.
	tailSeen uint64
	// woken is the consumer's: the producer's sleep (the value of its
	// sleep word) it last woke, so that it wakes each sleep once.
	woken uint32
	// sleeps is the producer's own count of its sleeps.
	sleeps uint32
}

// NewInbox makes the files of an inbox as sealed memfds (package memfd:
// no name in /dev/shm, nobody can change their size): the receiver's
// page, called page, and a ring for each sender, called ring(sender).
// It returns the files, read-write, and the inbox mapped from them, as the
// kernel uses it (Discard). The kernel makes every inbox of a run so,
// before it starts the processes, and hands each process the files it may
// map (package runfiles): read-only descriptors (memfd.ReadOnly) of what
// it may only read. It keeps the files to hand them again to a restarted
// process.
func NewInbox(page string, ring func(sender int) string, l Layout) (*Inbox, InboxFiles, error) {
	if err := l.validate(); err != nil {
		return nil, InboxFiles{}, err
	}
	fs := InboxFiles{Rings: map[int]*os.File{}}
	var err error
	if fs.Page, err = memfd.Create(page, PageSize); err != nil {
		return nil, InboxFiles{}, fmt.Errorf("shm: %w", err)
	}
	for _, s := range l.Senders {
		if fs.Rings[s], err = memfd.Create(ring(s), int64(RingSize(l.Slots))); err != nil {
			fs.Close()
			return nil, InboxFiles{}, fmt.Errorf("shm: %w", err)
		}
	}
	in, err := MapInbox(ipc.None, fs)
	if err != nil {
		fs.Close()
		return nil, InboxFiles{}, err
	}
	return in, fs, nil
}

// ReadOnly returns read-only descriptors of the same files
// (memfd.ReadOnly), for the processes that may only read them.
func (fs InboxFiles) ReadOnly() (InboxFiles, error) {
	ro := InboxFiles{Rings: map[int]*os.File{}}
	var err error
	if ro.Page, err = memfd.ReadOnly(fs.Page); err != nil {
		return InboxFiles{}, fmt.Errorf("shm: %w", err)
	}
	for s, f := range fs.Rings {
		if ro.Rings[s], err = memfd.ReadOnly(f); err != nil {
			ro.Close()
			return InboxFiles{}, fmt.Errorf("shm: %w", err)
		}
	}
	return ro, nil
}

// slotsOf checks that reg has the size of a ring file and returns its
// slots.
func slotsOf(reg *Region) (uint64, error) {
	n := len(reg.Mem) - ringHeader
	if n < 2*ipc.MessageSize || n%ipc.MessageSize != 0 {
		return 0, fmt.Errorf("%w: %s has %d bytes", ErrCorrupt, reg.Path, len(reg.Mem))
	}
	slots := n / ipc.MessageSize
	if slots > MaxSlots || slots&(slots-1) != 0 {
		return 0, fmt.Errorf("%w: %s has %d slots", ErrCorrupt, reg.Path, slots)
	}
	return uint64(slots), nil
}

func mapPage(f *os.File, read func(*os.File) (*Region, error)) (*Region, error) {
	reg, err := read(f)
	if err != nil {
		return nil, err
	}
	if len(reg.Mem) != PageSize {
		reg.Close()
		return nil, fmt.Errorf("%w: %s has %d bytes", ErrCorrupt, f.Name(), len(reg.Mem))
	}
	return reg, nil
}

// mapRing maps the ring file f of sender, read-write for its producer,
// read-only for its consumer, with its tail in page.
func mapRing(f *os.File, sender int, page *Region, producer bool) (ring, error) {
	read := MapFileReadOnly
	if producer {
		read = MapFile
	}
	reg, err := read(f)
	if err != nil {
		return ring{}, err
	}
	slots, err := slotsOf(reg)
	if err != nil {
		reg.Close()
		return ring{}, err
	}
	m := reg.Mem
	r := ring{
		reg:      reg,
		head:     (*atomic.Uint64)(unsafe.Pointer(&m[0])),
		prodWait: (*atomic.Uint32)(unsafe.Pointer(&m[lineSize])),
		tail:     (*atomic.Uint64)(unsafe.Pointer(&page.Mem[lineSize*(1+sender)])),
		sender:   sender,
		slots:    slots,
		base:     unsafe.Pointer(&m[ringHeader]),
	}
	r.tailOwn = r.tail.Load()
	if producer {
		// A restarted producer that died asleep starts awake.
		if r.sleeps = r.prodWait.Load(); r.sleeps&1 != 0 {
			r.sleeps++
			r.prodWait.Store(r.sleeps)
		}
	}
	return r, nil
}

// MapInbox maps the inbox in fs as its receiver, self, does: its page
// read-write, every ring read-only (a store into one faults; and a
// descriptor the kernel handed over read-only can be mapped no other
// way). The files may be closed afterwards.
func MapInbox(self ipc.Endpoint, fs InboxFiles) (*Inbox, error) {
	if fs.Page == nil || len(fs.Rings) == 0 || len(fs.Rings) > ipc.MaxSlots {
		return nil, fmt.Errorf("shm: an inbox of %d rings, page %v", len(fs.Rings), fs.Page != nil)
	}
	page, err := mapPage(fs.Page, MapFile)
	if err != nil {
		return nil, err
	}
	in := &Inbox{self: self, page: page, wake: (*atomic.Uint32)(unsafe.Pointer(&page.Mem[0]))}
	for _, s := range slices.Sorted(maps.Keys(fs.Rings)) {
		if s < 0 || s >= ipc.MaxSlots {
			in.Close()
			return nil, fmt.Errorf("shm: a ring for sender slot %d", s)
		}
		r, err := mapRing(fs.Rings[s], s, page, false)
		if err != nil {
			in.Close()
			return nil, err
		}
		in.rings = append(in.rings, r)
	}
	// A restarted receiver that died asleep starts awake.
	if in.sleeps = in.wake.Load(); in.sleeps&1 != 0 {
		in.sleeps++
		in.wake.Store(in.sleeps)
	}
	return in, nil
}

// asleep says, in the wake word, that the receiver is about to sleep.
func (in *Inbox) asleep() {
	in.sleeps++
	in.wake.Store(in.sleeps)
}

// awake says the receiver no longer sleeps.
func (in *Inbox) awake() {
	in.sleeps++
	in.wake.Store(in.sleeps)
}

// sleepSet makes the set of words the receiver sleeps on, after asleep:
// the mark of each ring's next slot, with the value it holds now. False:
// a message has come meanwhile, and there is no sleeping.
func (in *Inbox) sleepSet() bool {
	in.next.Reset()
	for i := range in.rings {
		r := &in.rings[i]
		w := mark(r.slot(r.tailOwn))
		v := w.Load()
		if v == seqOf(r.tailOwn) {
			return false
		}
		in.next.Add(w, v)
	}
	return true
}

// Discard drops every complete message waiting in the inbox, as its
// receiver would by taking them, and returns how many. Only the kernel
// calls it, between a receiver's death and its restart (after the owners
// table refuses new sends): messages for a dead incarnation are not
// handed to its successor.
func (in *Inbox) Discard() int {
	n := 0
	for i := range in.rings {
		r := &in.rings[i]
		t := r.tail.Load()
		for k := uint64(0); k < r.slots && mark(r.slot(t)).Load() == seqOf(t); k++ {
			t++
			n++
		}
		r.tail.Store(t)
		r.tailOwn = t
		if r.prodWait.Load()&1 != 0 {
			r.wakeProducer()
		}
	}
	return n
}

// RingOf returns the index of the ring whose sender is slot, or -1.
func (in *Inbox) RingOf(slot int) int {
	for i, r := range in.rings {
		if r.sender == slot {
			return i
		}
	}
	return -1
}

// Close unmaps the inbox; the files stay.
func (in *Inbox) Close() error {
	var first error
	for _, r := range in.rings {
		if err := r.reg.Close(); err != nil && first == nil {
			first = err
		}
	}
	if err := in.page.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

func (r *ring) slot(i uint64) *ipc.Message {
	return (*ipc.Message)(unsafe.Add(r.base, (i&(r.slots-1))*ipc.MessageSize))
}

// mark is the word of a slot that says it holds message number i: the slot's
// Dst field, which a ring does not need (every message in an inbox is for its
// owner), holds uint32(i+1) once the message is complete. The consumer polls
// this word in the slot itself, so a message costs one cache line moving
// from producer to consumer, not two (a head index and the slot).
func mark(m *ipc.Message) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&m.Dst)) }

func seqOf(i uint64) uint32 { return uint32(i + 1) }

// tryPut publishes m on ring r, the producer's, if there is room. Only
// the producer writes the head, so its own load of it never misses in
// practice; the head is kept in shared memory for a restarted producer and
// for Queued, not for the consumer.
func (r *ring) tryPut(m *ipc.Message) bool {
	h := r.head.Load()
	if h-r.tailSeen >= r.slots {
		r.tailSeen = r.tail.Load()
		if h-r.tailSeen >= r.slots {
			return false
		}
	}
	s := r.slot(h)
	body := *m
	body.Dst = ipc.Endpoint(^seqOf(h)) // cannot pass for complete while the body is written
	*s = body
	var stamp uint64
	if trace.On() {
		stamp = trace.Stamp() // before the mark: the receiver may take it at once
	}
	// Only a restarted producer and Queued read the head, so a release
	// store will do; the mark's store is the full fence the wake-up
	// protocol needs (see Transport.send).
	storeRelease((*uint64)(unsafe.Pointer(r.head)), h+1)
	mark(s).Store(seqOf(h))
	if stamp != 0 {
		// The ring's message number names the message for the receiver's take.
		trace.RecordAt(stamp, trace.Put, uint16(m.Type), m.Src.Slot(), m.Dst.Slot(), uint32(h))
	}
	return true
}

// takeResult says what take found on a ring.
type takeResult int

const (
	takeEmpty takeResult = iota
	takeOK
	takeRefused // a message with a forged source; counted and skipped
)

// take copies the oldest message of ring r into m. It trusts nothing the
// producer wrote: a slot counts only when its mark is exactly the next
// number, and a message whose source is not the ring's sender is refused.
func (in *Inbox) take(r *ring, m *ipc.Message) takeResult {
	t := r.tailOwn
	s := r.slot(t)
	if mark(s).Load() != seqOf(t) {
		return takeEmpty
	}
	*m = *s
	m.Dst = in.self
	r.tailOwn = t + 1
	r.tail.Store(t + 1)
	// The producer sleeps on a full ring: wake each of its sleeps once.
	if w := r.prodWait.Load(); w&1 != 0 && w != r.woken {
		r.woken = w
		r.wakeProducer()
	}
	if m.Src.Slot() != r.sender {
		return takeRefused
	}
	if trace.On() {
		trace.Record(trace.Take, uint16(m.Type), m.Src.Slot(), m.Dst.Slot(), uint32(t))
	}
	return takeOK
}

// tailWord is the low half of the ring's tail, which a producer sleeps on
// while the ring is full (little-endian: the word at the tail's address).
func (r *ring) tailWord() *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(r.tail)) }

// wakeProducer wakes the producer asleep on r's tail, which the consumer
// has just moved.
func (r *ring) wakeProducer() {
	// A failed wake-up cannot be reported from here; the producer's sleep
	// is bounded, so it re-checks the ring soon anyway.
	futex.Wake(r.tailWord(), 1) //nolint:errcheck
}

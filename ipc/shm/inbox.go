package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/futex"
	"github.com/newtsim/newtsim/ipc/memfd"
)

// Inbox file layout. Every offset is a multiple of the 64-byte cache line.
//
//	0    header: magic, version, rings, slots per ring, message size, owner endpoint
//	64   wake line: the receiver's sleep word (futex)
//	128  ring 0, ring 1, ... each:
//	     +0    head line: head index (written by the producer only)
//	     +64   tail line: tail index (consumer only), producer sleep word (futex)
//	     +128  sender line: the slot allowed to produce on this ring
//	     +192  slots: slots * 64 bytes
const (
	lineSize   = 64
	headerSize = 2 * lineSize
	ringHeader = 3 * lineSize

	magic   = 0x5842_4e49_5457_454e // "NEWTINBX" little-endian
	version = 1

	offMagic   = 0
	offVersion = 8
	offRings   = 12
	offSlots   = 16
	offMsgSize = 20
	offOwner   = 24
	offWake    = 64

	// MaxSlots bounds the slots of one ring.
	MaxSlots = 1 << 16
	// MaxRings bounds the rings of one inbox.
	MaxRings = ipc.MaxSlots
)

// Layout sizes an inbox: one ring per sender, each of Slots messages.
type Layout struct {
	Senders []int // the slot of each ring's sender, in ring order
	Slots   int   // messages per ring, a power of two
}

func ringSize(slots int) int { return ringHeader + slots*ipc.MessageSize }

// Size is the inbox file's size in bytes.
func (l Layout) Size() int { return headerSize + len(l.Senders)*ringSize(l.Slots) }

func (l Layout) validate() error {
	if l.Slots < 2 || l.Slots > MaxSlots || l.Slots&(l.Slots-1) != 0 {
		return fmt.Errorf("shm: %d slots per ring: want a power of two in [2, %d]", l.Slots, MaxSlots)
	}
	if len(l.Senders) == 0 || len(l.Senders) > MaxRings {
		return fmt.Errorf("shm: %d rings: want 1 to %d", len(l.Senders), MaxRings)
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

// ErrCorrupt says an inbox file's header or a ring's indices do not make
// sense: it was not made by this package, or a peer scribbled on it.
var ErrCorrupt = errors.New("shm: corrupt inbox")

// Inbox is a mapped inbox file: the receiver's side of its channels, and
// (through Outbox) the senders' side.
type Inbox struct {
	// self, when set, is the receiver's own endpoint, which it stamps
	// every message with: the shared owner word is for senders only, so
	// a peer that overwrites it cannot make the receiver take its messages
	// for another incarnation's.
	self ipc.Endpoint
	reg  *Region
	// owner is the word that names the receiver's incarnation: the
	// header's, or in a run the receiver's word in the kernel's owners
	// table (Config.Owners), which no peer can write.
	owner *atomic.Uint32
	wake  *atomic.Uint32
	rings []ring
	slots uint64
}

type ring struct {
	head     *atomic.Uint64
	tail     *atomic.Uint64
	prodWait *atomic.Uint32
	// sender is the slot allowed to produce on the ring, read once when
	// the inbox is mapped (and checked then): what a peer writes to the
	// shared word later changes nothing here.
	sender int
	slots  unsafe.Pointer
	// tailOwn is the consumer's own tail: it takes by this private copy
	// and publishes it to the shared tail only for the producer's sake,
	// so a peer that moves the shared tail cannot make the consumer skip
	// or repeat messages (see repairTails).
	tailOwn uint64
	// tailSeen is the producer's private copy of the tail. It is read
	// again from shared memory only when the ring looks full, so the
	// consumer's tail line is not pulled to the producer's core on every
	// send.
	tailSeen uint64
}

// CreateInbox creates and formats the inbox file at path for the given
// owner: an inbox with a name, for benchmarks and tests. A run's inboxes
// are NewInbox's.
func CreateInbox(path string, owner ipc.Endpoint, l Layout) (*Inbox, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	reg, err := CreateRegion(path, l.Size())
	if err != nil {
		return nil, err
	}
	return format(reg, owner, l)
}

// NewInbox makes an inbox for the given owner in a sealed memfd called
// name (package memfd): it has no name in /dev/shm and nobody can change
// its size. The kernel makes every inbox of a run so, before it starts
// their owners, and hands the returned file over (package runfiles); it
// keeps the file to hand it again to a restarted owner.
func NewInbox(name string, owner ipc.Endpoint, l Layout) (*Inbox, *os.File, error) {
	if err := l.validate(); err != nil {
		return nil, nil, err
	}
	f, err := memfd.Create(name, int64(l.Size()))
	if err != nil {
		return nil, nil, fmt.Errorf("shm: %w", err)
	}
	reg, err := MapFile(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	in, err := format(reg, owner, l)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return in, f, nil
}

// format writes a new inbox's header and rings into reg.
func format(reg *Region, owner ipc.Endpoint, l Layout) (*Inbox, error) {
	m := reg.Mem
	binary.LittleEndian.PutUint32(m[offVersion:], version)
	binary.LittleEndian.PutUint32(m[offRings:], uint32(len(l.Senders)))
	binary.LittleEndian.PutUint32(m[offSlots:], uint32(l.Slots))
	binary.LittleEndian.PutUint32(m[offMsgSize:], ipc.MessageSize)
	for i, s := range l.Senders {
		binary.LittleEndian.PutUint32(m[headerSize+i*ringSize(l.Slots)+2*lineSize:], uint32(s))
	}
	binary.LittleEndian.PutUint64(m[offMagic:], magic) // last: a reader seeing magic sees the rest
	in, err := mapInbox(reg)
	if err != nil {
		reg.Close()
		return nil, err
	}
	in.SetOwner(owner)
	return in, nil
}

// OpenInbox maps an existing inbox file and checks its header against the
// file's size.
func OpenInbox(path string) (*Inbox, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: open %s: %w", path, err)
	}
	defer f.Close()
	return MapInbox(f)
}

// MapInbox maps the inbox in the open file f (one the kernel handed over,
// or one OpenInbox opened) and checks its header against the file's size.
// f may be closed afterwards.
func MapInbox(f *os.File) (*Inbox, error) {
	reg, err := MapFile(f)
	if err != nil {
		return nil, err
	}
	in, err := mapInbox(reg)
	if err != nil {
		reg.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return in, nil
}

func mapInbox(reg *Region) (*Inbox, error) {
	m := reg.Mem
	if len(m) < headerSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(m))
	}
	if binary.LittleEndian.Uint64(m[offMagic:]) != magic || binary.LittleEndian.Uint32(m[offVersion:]) != version {
		return nil, fmt.Errorf("%w: bad magic or version", ErrCorrupt)
	}
	nrings := int(binary.LittleEndian.Uint32(m[offRings:]))
	slots := int(binary.LittleEndian.Uint32(m[offSlots:]))
	if binary.LittleEndian.Uint32(m[offMsgSize:]) != ipc.MessageSize {
		return nil, fmt.Errorf("%w: message size", ErrCorrupt)
	}
	l := Layout{Senders: make([]int, nrings), Slots: slots}
	if nrings < 1 || nrings > MaxRings {
		return nil, fmt.Errorf("%w: %d rings", ErrCorrupt, nrings)
	}
	if slots < 2 || slots > MaxSlots || slots&(slots-1) != 0 || l.Size() != len(m) {
		return nil, fmt.Errorf("%w: %d slots in %d bytes", ErrCorrupt, slots, len(m))
	}
	in := &Inbox{
		reg:   reg,
		owner: (*atomic.Uint32)(unsafe.Pointer(&m[offOwner])),
		wake:  (*atomic.Uint32)(unsafe.Pointer(&m[offWake])),
		slots: uint64(slots),
		rings: make([]ring, nrings),
	}
	seen := map[int]bool{}
	for i := range in.rings {
		b := headerSize + i*ringSize(slots)
		sender := binary.LittleEndian.Uint32(m[b+2*lineSize:])
		if sender >= ipc.MaxSlots || seen[int(sender)] {
			return nil, fmt.Errorf("%w: ring %d has sender slot %d, out of range or repeated", ErrCorrupt, i, sender)
		}
		seen[int(sender)] = true
		in.rings[i] = ring{
			head:     (*atomic.Uint64)(unsafe.Pointer(&m[b])),
			tail:     (*atomic.Uint64)(unsafe.Pointer(&m[b+lineSize])),
			prodWait: (*atomic.Uint32)(unsafe.Pointer(&m[b+lineSize+8])),
			sender:   int(sender),
			slots:    unsafe.Pointer(&m[b+ringHeader]),
		}
		in.rings[i].tailOwn = in.rings[i].tail.Load()
	}
	return in, nil
}

// Owner is the endpoint of the process that receives on this inbox.
func (in *Inbox) Owner() ipc.Endpoint { return ipc.Endpoint(in.owner.Load()) }

// SetOwner records a new incarnation of the receiver; senders still naming
// the old one get ipc.ErrDeadEndpoint.
func (in *Inbox) SetOwner(e ipc.Endpoint) { in.owner.Store(uint32(e)) }

// Repair writes the header and every ring's sender word again from this
// mapping's own copy, taken when it was mapped: what a peer scribbled there
// (a sender slot out of range, a bad magic) would keep the inbox's owner
// from starting again. Only the kernel, which created the inbox, calls it,
// before it starts the owner again. (Nobody can truncate a run's inbox:
// NewInbox seals it.)
func (in *Inbox) Repair() {
	m := in.reg.Mem
	binary.LittleEndian.PutUint32(m[offVersion:], version)
	binary.LittleEndian.PutUint32(m[offRings:], uint32(len(in.rings)))
	binary.LittleEndian.PutUint32(m[offSlots:], uint32(in.slots))
	binary.LittleEndian.PutUint32(m[offMsgSize:], ipc.MessageSize)
	for i, r := range in.rings {
		binary.LittleEndian.PutUint32(m[headerSize+i*ringSize(int(in.slots))+2*lineSize:], uint32(r.sender))
	}
	binary.LittleEndian.PutUint64(m[offMagic:], magic)
}

// repairTails publishes each ring's private tail again where the shared
// word differs: a peer that moved another sender's tail back (so that its
// ring looks full) is undone before the consumer sleeps, and the sender's
// bounded sleep sees the room again.
func (in *Inbox) repairTails() int {
	n := 0
	for i := range in.rings {
		r := &in.rings[i]
		if r.tail.Load() != r.tailOwn {
			r.tail.Store(r.tailOwn)
			n++
			if r.prodWait.Load() != 0 && r.prodWait.CompareAndSwap(1, 0) {
				wakeProducer(r)
			}
		}
	}
	return n
}

// Discard drops every complete message waiting in the inbox, as its
// receiver would by taking them, and returns how many. Only the kernel
// calls it, between a receiver's death and its restart (after a SetOwner
// that refuses new sends): messages for a dead incarnation are not handed
// to its successor.
func (in *Inbox) Discard() int {
	n := 0
	for i := range in.rings {
		r := &in.rings[i]
		t := r.tail.Load()
		for mark(r.slot(t, in.slots)).Load() == seqOf(t) && n < len(in.rings)*int(in.slots) {
			t++
			n++
		}
		r.tail.Store(t)
		r.tailOwn = t
		if r.prodWait.Load() != 0 && r.prodWait.CompareAndSwap(1, 0) {
			wakeProducer(r)
		}
	}
	return n
}

// Rings reports the sender slot of each ring.
func (in *Inbox) Rings() []int {
	s := make([]int, len(in.rings))
	for i, r := range in.rings {
		s[i] = r.sender
	}
	return s
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

// Queued reports how many messages wait in ring i.
func (in *Inbox) Queued(i int) int {
	r := &in.rings[i]
	return int(r.head.Load() - r.tail.Load())
}

// Close unmaps the inbox; the file stays.
func (in *Inbox) Close() error { return in.reg.Close() }

func (r *ring) slot(i, slots uint64) *ipc.Message {
	return (*ipc.Message)(unsafe.Add(r.slots, (i&(slots-1))*ipc.MessageSize))
}

// mark is the word of a slot that says it holds message number i: the slot's
// Dst field, which a ring does not need (every message in an inbox is for its
// owner), holds uint32(i+1) once the message is complete. The consumer polls
// this word in the slot itself, so a message costs one cache line moving
// from producer to consumer, not two (a head index and the slot).
func mark(m *ipc.Message) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&m.Dst)) }

func seqOf(i uint64) uint32 { return uint32(i + 1) }

// tryPut publishes m on ring r if there is room. Only the producer writes
// the head, so its own load of it never misses in practice; the head is kept
// in shared memory for a restarted producer and for Queued, not for the
// consumer.
func (in *Inbox) tryPut(r *ring, m *ipc.Message) bool {
	h := r.head.Load()
	if h-r.tailSeen >= in.slots {
		r.tailSeen = r.tail.Load()
		if h-r.tailSeen >= in.slots {
			return false
		}
	}
	s := r.slot(h, in.slots)
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
	s := r.slot(t, in.slots)
	if mark(s).Load() != seqOf(t) {
		return takeEmpty
	}
	*m = *s
	if m.Dst = in.self; m.Dst == ipc.None {
		m.Dst = in.Owner()
	}
	r.tailOwn = t + 1
	r.tail.Store(t + 1)
	if r.prodWait.Load() != 0 && r.prodWait.CompareAndSwap(1, 0) {
		wakeProducer(r)
	}
	if m.Src.Slot() != r.sender {
		return takeRefused
	}
	if trace.On() {
		trace.Record(trace.Take, uint16(m.Type), m.Src.Slot(), m.Dst.Slot(), uint32(t))
	}
	return takeOK
}

func wakeProducer(r *ring) {
	// A failed wake-up cannot be reported from here; the producer's sleep
	// is bounded, so it re-checks the ring soon anyway.
	futex.Wake(r.prodWait, 1) //nolint:errcheck
}

// SenderSpan returns the bytes of the ring whose sender is slot, its index
// lines included, and the inbox's wake line: what that sender's mapping
// reaches in the course of sending (nil if the inbox has no ring for it).
// The hostile diagnostic role writes garbage there, as a broken or
// malicious sender would.
func (in *Inbox) SenderSpan(slot int) (ring, wake []byte) {
	i := in.RingOf(slot)
	if i < 0 {
		return nil, nil
	}
	b := headerSize + i*ringSize(int(in.slots))
	return in.reg.Mem[b : b+ringSize(int(in.slots))], in.reg.Mem[offWake : offWake+lineSize]
}

// OwnerWord returns the owner word in the inbox's shared header (which
// senders checked before a run had an owners table): the hostile
// diagnostic role overwrites its peers'.
func (in *Inbox) OwnerWord() []byte { return in.reg.Mem[offOwner : offOwner+4] }

// Bytes returns the whole mapping: the receiver's view of its own inbox.
// The hostile diagnostic role scribbles on its own.
func (in *Inbox) Bytes() []byte { return in.reg.Mem }

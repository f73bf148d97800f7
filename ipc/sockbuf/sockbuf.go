// Package sockbuf is the shared memory of an exposed socket (the socket
// library's `exposed` backend): one region per socket, mapped by the
// application and by the transport server that owns the socket, holding
//
//   - a ring of descriptors from the server to the application: received
//     data, connections to accept, end of file, errors;
//   - a ring of descriptors from the application to the server: data to
//     send, shutdown, close;
//   - a data area for each direction, which data descriptors point into;
//   - a state word the server writes (connected, listening, failed, ...),
//     a doorbell the application rings when it has posted work, and flags
//     each side sets to ask the other for a wake-up message.
//
// Each ring has one producer and one consumer: head and tail counters on
// their own cache lines, a producer that caches the tail. Everything the
// application writes is hostile to the server: the server copies a
// descriptor out of shared memory once, then checks it (Desc.Check), and
// checks the counters the application moves (Ring.Peek refuses a head that
// runs ahead of what it can be).
package sockbuf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc/shm"
)

// Layout of a region: a header page of words, each on its own cache line,
// the two descriptor rings, then the two data areas.
const (
	magic   = 0x6e74737362756631 // "ntssbuf1"
	line    = 64
	offMag  = 0 * line
	offSize = 0*line + 8
	// OffState is the server's state word (State bits).
	offState = 1 * line
	// The server-to-application ring's head (server) and tail (app).
	offRXHead = 2 * line
	offRXTail = 3 * line
	// The application-to-server ring's head (app) and tail (server).
	offTXHead = 4 * line
	offTXTail = 5 * line
	// The doorbell: the application adds one each time it posts work.
	offDoorbell = 6 * line
	// The application waits for a wake-up message (set by the app,
	// cleared by the server when it sends one).
	offAppWaiting = 7 * line
	// The server stopped filling the receive area for lack of room and
	// wants a doorbell when the application frees some.
	offRXStalled = 8 * line
	headerSize   = 4096

	// Slots is the number of descriptors in each ring.
	Slots    = 256
	DescSize = 32
	offRX    = headerSize
	offTX    = offRX + Slots*DescSize
	// AreaSize is the size of each data area.
	AreaSize = 64 << 10
	offRXA   = offTX + Slots*DescSize
	offTXA   = offRXA + AreaSize
	// Size is the size of a region.
	Size = offTXA + AreaSize
)

// Descriptor kinds.
const (
	KindData     = 1 // Off, Len: bytes in the sender's data area
	KindEOF      = 2 // server to app: the peer will send no more
	KindError    = 3 // server to app: Aux is an errno
	KindAccept   = 4 // server to app: A the new socket, B its region, Off the peer's IPv4 address, Aux its port
	KindShutdown = 5 // app to server: Aux is SHUT_RD, SHUT_WR or SHUT_RDWR
	KindClose    = 6 // app to server: the application is done with the socket
)

// Desc is one descriptor, 32 bytes in the ring.
type Desc struct {
	Kind uint32
	Len  uint32
	Off  uint32
	Aux  uint32
	A, B uint64
}

// State bits, written by the server.
const (
	StConnecting = 1 << iota
	StConnected
	StListening
	StFailed   // the connection attempt or the connection failed: SO_ERROR holds why
	StSendShut // sending is over (shut down, or the peer reset): send gives EPIPE
	StHangUp   // both directions are closed
)

// Errors.
var (
	ErrCorrupt = errors.New("sockbuf: region corrupt")
	ErrBadDesc = errors.New("sockbuf: bad descriptor")
)

// Region is one mapped socket region.
type Region struct {
	mem  []byte
	Path string
}

// New formats a region in f, an open file of Size bytes (a sealed memfd,
// package memfd), and maps it read-write. f may be closed afterwards.
func New(f *os.File) (*Region, error) {
	if fi, err := f.Stat(); err != nil || fi.Size() != Size {
		return nil, fmt.Errorf("sockbuf: %s is not %d bytes", f.Name(), Size)
	}
	r, err := mapFile(f, f.Name(), true)
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint64(r.mem[offSize:], Size)
	r.word(offMag).Store(magic)
	return r, nil
}

// Map maps the region in the open file f, checking its header: read-write,
// or read-only (an application's view of a server's awake word, whose
// descriptor is read-only: a store through it would fault). f may be
// closed afterwards.
func Map(f *os.File, writable bool) (*Region, error) {
	if fi, err := f.Stat(); err != nil || fi.Size() != Size {
		return nil, fmt.Errorf("sockbuf: %s: %w: size", f.Name(), ErrCorrupt)
	}
	r, err := mapFile(f, f.Name(), writable)
	if err != nil {
		return nil, err
	}
	if r.word(offMag).Load() != magic || binary.LittleEndian.Uint64(r.mem[offSize:]) != Size {
		r.Close()
		return nil, fmt.Errorf("sockbuf: %s: %w: header", f.Name(), ErrCorrupt)
	}
	return r, nil
}

func mapFile(f *os.File, path string, writable bool) (*Region, error) {
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, Size, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("sockbuf: mmap %s: %w", path, err)
	}
	return &Region{mem: mem, Path: path}, nil
}

// Close unmaps the region.
func (r *Region) Close() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	return err
}

// Reset clears the rings and words for a new socket; only the server calls
// it, on a region the application has given back.
func (r *Region) Reset() {
	for _, off := range []int{offState, offRXHead, offRXTail, offTXHead, offTXTail, offDoorbell, offAppWaiting, offRXStalled} {
		r.word(off).Store(0)
	}
}

func (r *Region) word(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&r.mem[off]))
}

// State is the server's state word.
func (r *Region) State() *atomic.Uint64 { return r.word(offState) }

// Doorbell is the word the application rings.
func (r *Region) Doorbell() *atomic.Uint64 { return r.word(offDoorbell) }

// AppWaiting is set by an application about to wait for a wake-up.
func (r *Region) AppWaiting() *atomic.Uint64 { return r.word(offAppWaiting) }

// RXStalled is set by a server that wants a doorbell when the application
// frees receive space.
func (r *Region) RXStalled() *atomic.Uint64 { return r.word(offRXStalled) }

// RX is the server-to-application ring.
func (r *Region) RX() Ring { return Ring{r: r, slots: offRX, head: offRXHead, tail: offRXTail} }

// TX is the application-to-server ring.
func (r *Region) TX() Ring { return Ring{r: r, slots: offTX, head: offTXHead, tail: offTXTail} }

// RXArea is the data area the server writes and the application reads.
func (r *Region) RXArea() []byte { return r.mem[offRXA : offRXA+AreaSize : offRXA+AreaSize] }

// TXArea is the data area the application writes and the server reads.
func (r *Region) TXArea() []byte { return r.mem[offTXA : offTXA+AreaSize : offTXA+AreaSize] }

// Ring is one descriptor ring of a region.
type Ring struct {
	r                 *Region
	slots, head, tail int
}

// Head is the producer's counter; Tail the consumer's.
func (q Ring) Head() *atomic.Uint64 { return q.r.word(q.head) }

// Tail is the consumer's counter.
func (q Ring) Tail() *atomic.Uint64 { return q.r.word(q.tail) }

func (q Ring) slot(i uint64) []byte {
	o := q.slots + int(i%Slots)*DescSize
	return q.r.mem[o : o+DescSize : o+DescSize]
}

// Put appends d (producer side): false when the ring is full, or when the
// consumer's tail makes no sense (ErrCorrupt).
func (q Ring) Put(d *Desc) (bool, error) {
	h := q.Head().Load()
	t := q.Tail().Load()
	if h-t > Slots || t > h {
		return false, ErrCorrupt
	}
	if h-t == Slots {
		return false, nil
	}
	b := q.slot(h)
	binary.LittleEndian.PutUint32(b[0:], d.Kind)
	binary.LittleEndian.PutUint32(b[4:], d.Len)
	binary.LittleEndian.PutUint32(b[8:], d.Off)
	binary.LittleEndian.PutUint32(b[12:], d.Aux)
	binary.LittleEndian.PutUint64(b[16:], d.A)
	binary.LittleEndian.PutUint64(b[24:], d.B)
	q.Head().Store(h + 1)
	return true, nil
}

// Free returns how many descriptors the producer can still put.
func (q Ring) Free() int {
	h, t := q.Head().Load(), q.Tail().Load()
	if t > h || h-t > Slots {
		return 0
	}
	return Slots - int(h-t)
}

// Len returns how many descriptors wait for the consumer (0 when the
// counters make no sense; Peek reports that).
func (q Ring) Len() int {
	h, t := q.Head().Load(), q.Tail().Load()
	if t > h || h-t > Slots {
		return 0
	}
	return int(h - t)
}

// Peek copies the next descriptor out of shared memory (consumer side):
// false when the ring is empty, ErrCorrupt when the producer's head runs
// ahead of the ring or behind the tail.
func (q Ring) Peek(d *Desc) (bool, error) {
	t := q.Tail().Load()
	h := q.Head().Load()
	if h == t {
		return false, nil
	}
	if h < t || h-t > Slots {
		return false, ErrCorrupt
	}
	q.read(t, d)
	return true, nil
}

// read copies slot i's descriptor out of shared memory.
func (q Ring) read(i uint64, d *Desc) {
	b := q.slot(i)
	*d = Desc{Kind: binary.LittleEndian.Uint32(b[0:]), Len: binary.LittleEndian.Uint32(b[4:]),
		Off: binary.LittleEndian.Uint32(b[8:]), Aux: binary.LittleEndian.Uint32(b[12:]),
		A: binary.LittleEndian.Uint64(b[16:]), B: binary.LittleEndian.Uint64(b[24:])}
}

// PeekAt copies the i-th waiting descriptor (0 is Peek's) without taking
// anything: false when fewer than i+1 wait.
func (q Ring) PeekAt(i int, d *Desc) bool {
	t, h := q.Tail().Load(), q.Head().Load()
	if h < t || h-t > Slots || uint64(i) >= h-t {
		return false
	}
	q.read(t+uint64(i), d)
	return true
}

// Pop consumes the descriptor Peek returned.
func (q Ring) Pop() { q.Tail().Add(1) }

// Check validates a data descriptor against a data area: the bytes it
// names lie inside it. Call it on the copy Peek made, never on the ring.
func (d *Desc) Check() error {
	if d.Len == 0 || d.Len > AreaSize || d.Off >= AreaSize || uint64(d.Off)+uint64(d.Len) > AreaSize {
		return fmt.Errorf("%w: data at %d+%d outside a %d-byte area", ErrBadDesc, d.Off, d.Len, AreaSize)
	}
	return nil
}

// Alloc is a producer's allocator of a data area: contiguous pieces in
// ring order, freed in order as the consumer takes their descriptors.
type Alloc struct {
	write uint64   // bytes handed out, padding included
	freed uint64   // bytes given back
	ends  []uint64 // write position after each posted piece, in ring order
}

// Take returns the offset of a contiguous piece of up to n bytes (at least
// min(n, want)); ok is false with no room. The piece is the caller's until
// it calls Posted.
func (a *Alloc) Take(n int) (off uint32, got int, ok bool) {
	pos := a.write % AreaSize
	room := AreaSize - (a.write - a.freed)
	if room == 0 {
		return 0, 0, false
	}
	contig := AreaSize - pos
	if contig < uint64(n) && room > contig {
		// Pad to the start of the area when the rest of the way fits more.
		if room-contig > contig {
			a.write += contig
			room -= contig
			pos = 0
			contig = AreaSize
		}
	}
	got = int(min(uint64(n), contig, room))
	return uint32(pos), got, got > 0
}

// Posted records that a descriptor for n bytes at the last Take went into
// the ring.
func (a *Alloc) Posted(n int) {
	a.write += uint64(n)
	a.ends = append(a.ends, a.write)
}

// PostedOther records a descriptor that holds no data (it still frees in
// order).
func (a *Alloc) PostedOther() { a.ends = append(a.ends, a.write) }

// Consumed frees what the consumer took: k more descriptors.
func (a *Alloc) Consumed(k int) {
	if k <= 0 || k > len(a.ends) {
		return
	}
	a.freed = a.ends[k-1]
	a.ends = a.ends[k:]
}

// Outstanding is how many posted descriptors the consumer has not taken.
func (a *Alloc) Outstanding() int { return len(a.ends) }

// Reset forgets everything, for a recycled region.
func (a *Alloc) Reset() { *a = Alloc{} }

// RegionName is the name of the memfd of a server's exposed socket region
// id in a run, as runfiles names the run's other memfds: it shows in
// /proc, as "/memfd:NAME", and names nothing anyone can open.
func RegionName(run, server string, id uint64) string {
	return shm.Prefix(run) + fmt.Sprintf("%s.xs%016x", server, id)
}

// Package pool implements newtsim's shared buffer pools: the memory that
// bulk data (packets, socket payloads) lives in while messages carry only
// references to it.
//
// A pool is a file, normally in /dev/shm, holding a 64-byte header and Count
// buffers of BufSize bytes each. Its owner creates it (Create), maps it
// read-write and alone allocates and frees buffers. The processes the owner
// shares data with map it read-only (Open). Tests that need no shared
// memory make a pool in their own memory instead (NewMemory, View). A message names bytes in a pool
// with a Ref (pool id, offset, length); the receiver never trusts a Ref: it
// calls Check, or Bytes, which checks and then returns the bytes, before it
// touches any data. Check refuses a Ref for another pool, from a sender
// without rights to the pool, outside the data region, spanning two buffers,
// or empty, each with its own error.
//
// The header layout, little-endian:
//
//	offset size field
//	0      8    magic "NEWTPOOL" (written last by Create)
//	8      4    layout version (Version)
//	12     4    buffer size in bytes
//	16     4    buffer count
//	20     4    owner endpoint (read and written atomically)
//	24     4    pool id
//	28     36   reserved, zero
//
// Buffer i occupies bytes [HeaderSize+i*BufSize, HeaderSize+(i+1)*BufSize)
// of the file; Ref offsets count from the start of buffer 0.
package pool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
)

// Layout constants.
const (
	// HeaderSize is the size of the pool header that precedes buffer 0.
	HeaderSize = 64
	// Version is the header layout version Create writes and Open accepts.
	Version = 1
	// DefaultBufSize is the buffer size used when Config.BufSize is 0: room
	// for one Ethernet frame.
	DefaultBufSize = 2048
	// BufAlign is the alignment every buffer size must have, one cache
	// line, so that two buffers never share a line.
	BufAlign = 64
	// MaxBufSize is the largest buffer size: a whole buffer must be
	// expressible as a Ref length.
	MaxBufSize = 1 << 23
	// MaxDataSize bounds the data region: Ref offsets are 32 bits.
	MaxDataSize = 1 << 32
	// ShmDir is where a pool file named without a directory lives.
	ShmDir = "/dev/shm"
)

// magic identifies a pool file; its 8 bytes are read as one little-endian
// word so that a reader sees either no magic or the whole header.
var magic = binary.LittleEndian.Uint64([]byte("NEWTPOOL"))

// Header field offsets.
const (
	hdrMagic   = 0
	hdrVersion = 8
	hdrBufSize = 12
	hdrCount   = 16
	hdrOwner   = 20
	hdrID      = 24
)

// Reasons Check and Bytes refuse a Ref, returned in a *RefError.
var (
	// ErrWrongPool says the Ref names another pool than the one checking it.
	ErrWrongPool = errors.New("pool: ref names another pool")
	// ErrNoRights says the sender is neither the pool's owner nor one of its
	// readers.
	ErrNoRights = errors.New("pool: sender has no rights to the pool")
	// ErrOutOfBounds says the Ref reaches beyond the pool's data region.
	ErrOutOfBounds = errors.New("pool: ref out of bounds")
	// ErrSpansBuffers says the Ref starts in one buffer and ends in another.
	ErrSpansBuffers = errors.New("pool: ref spans buffers")
	// ErrEmpty says the Ref has length zero.
	ErrEmpty = errors.New("pool: ref is empty")
)

// Errors of the owner's operations and of Open.
var (
	// ErrExhausted says every buffer is allocated.
	ErrExhausted = errors.New("pool: no free buffer")
	// ErrNotOwner says a reader called an owner-only method.
	ErrNotOwner = errors.New("pool: only the owner allocates and frees")
	// ErrNotBufferStart says Free was given a Ref whose offset is not the
	// start of a buffer.
	ErrNotBufferStart = errors.New("pool: ref is not a buffer start")
	// ErrNotAllocated says Free was given a buffer that is not allocated:
	// a double free, or a buffer never handed out.
	ErrNotAllocated = errors.New("pool: buffer is not allocated")
	// ErrBadHeader says Open found a file whose header or size does not
	// match the Config: another pool, another layout version, or a pool
	// whose owner has not finished creating it.
	ErrBadHeader = errors.New("pool: header does not match")
	// ErrClosed says the pool was closed.
	ErrClosed = errors.New("pool: closed")
)

// Config describes a pool. The owner passes it to Create and every reader
// passes the same values to Open.
type Config struct {
	// ID is the pool's id, the one Refs into it carry. Ids are unique
	// within a run.
	ID uint8
	// Path is the pool's file. A name without a slash is a file in
	// ShmDir: "newtsim-RUN-pool-tcp" is /dev/shm/newtsim-RUN-pool-tcp.
	// With File set, it only names the pool.
	Path string
	// File, if set, is the pool's file, already open: a run's pool is a
	// sealed memfd (package memfd) the kernel made and handed over, with
	// no name to open. Create, Adopt and Open map it rather than a file
	// at Path, and leave it open. Its size must already be the pool's
	// (Create does not resize it); Open may be given a read-only
	// descriptor.
	File *os.File
	// BufSize is the size of each buffer in bytes, a multiple of BufAlign
	// up to MaxBufSize; 0 means DefaultBufSize.
	BufSize int
	// Count is the number of buffers, at least 1; Count*BufSize may not
	// exceed MaxDataSize.
	Count int
	// Owner is the endpoint of the process that creates the pool and
	// allocates its buffers.
	Owner ipc.Endpoint
	// Readers are the endpoints, besides the owner, allowed to send Refs
	// into the pool. They are compared by slot, not generation, so a
	// reader keeps its rights across restarts.
	Readers []ipc.Endpoint
}

// normalize fills in defaults and validates c.
func (c Config) normalize() (Config, error) {
	if c.Path == "" {
		return c, errors.New("pool: config has no path")
	}
	if c.BufSize == 0 {
		c.BufSize = DefaultBufSize
	}
	if c.BufSize < 0 || c.BufSize > MaxBufSize || c.BufSize%BufAlign != 0 {
		return c, fmt.Errorf("pool %s: buffer size %d is not a multiple of %d in (0, %d]", c.Path, c.BufSize, BufAlign, MaxBufSize)
	}
	if c.Count <= 0 || uint64(c.Count)*uint64(c.BufSize) > MaxDataSize {
		return c, fmt.Errorf("pool %s: buffer count %d: want 1 to %d buffers of %d bytes", c.Path, c.Count, MaxDataSize/c.BufSize, c.BufSize)
	}
	if !c.Owner.Valid() {
		return c, fmt.Errorf("pool %s: owner %v is not a valid endpoint", c.Path, c.Owner)
	}
	for _, r := range c.Readers {
		if r.Slot() >= ipc.MaxSlots {
			return c, fmt.Errorf("pool %s: reader %v: slot out of range", c.Path, r)
		}
	}
	return c, nil
}

// fileSize is the size of the pool file c describes.
func (c Config) fileSize() int64 { return HeaderSize + int64(c.Count)*int64(c.BufSize) }

// FileSize is the size of the pool file c describes: what a File given
// to Create must measure.
func (c Config) FileSize() int64 {
	if c.BufSize == 0 {
		c.BufSize = DefaultBufSize
	}
	return c.fileSize()
}

// open returns c's file, c.File or the one at c.Path opened with flag,
// its name for errors, and what to call when done with it (which closes
// only a file open opened).
func (c Config) open(flag int, perm os.FileMode) (*os.File, string, func(), error) {
	if c.File != nil {
		return c.File, c.Path, func() {}, nil
	}
	path := FilePath(c.Path)
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, path, nil, err
	}
	return f, path, func() { f.Close() }, nil
}

// FilePath returns the file a pool path names: path itself when it
// contains a slash, otherwise path in ShmDir.
func FilePath(path string) string {
	if strings.ContainsRune(path, '/') {
		return path
	}
	return filepath.Join(ShmDir, path)
}

// Pool is one process's mapping of a buffer pool: the owner's read-write
// mapping, from Create, or a reader's read-only one, from Open.
//
// Check, Bytes, Slice and Stats are safe for concurrent use; so are Alloc
// and Free. Close must not run concurrently with any other method, and no
// slice a Pool returned may be used after Close.
type Pool struct {
	id      uint8
	path    string
	bufSize uint64
	count   uint64
	size    uint64 // of the data region
	rights  uint64 // bit s set: slot s (the owner or a reader) may send Refs
	isOwner bool
	mapped  bool // mem is this Pool's own mapping of a file, to unmap on Close

	mem   []byte         // the whole mapping
	data  []byte         // mem[HeaderSize:]
	owner *atomic.Uint32 // the header's owner word

	refused  [numReasons]atomic.Uint64
	badFrees atomic.Uint64
	nalloc   atomic.Int64

	mu        sync.Mutex
	free      []uint32 // stack of free buffer indices; owner only
	allocated []uint64 // bitmap of allocated buffers; owner only
}

// Create creates the pool file c describes (it must not exist), sizes it,
// maps it read-write and writes the header; or, with c.File set, formats
// that file, which must be the pool's size. The calling process is the
// pool's owner: it alone allocates and frees buffers. Remove a named file
// when the pool is no longer needed; Close does not.
func Create(c Config) (*Pool, error) {
	c, err := c.normalize()
	if err != nil {
		return nil, err
	}
	f, path, done, err := c.open(os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pool: create: %w", err)
	}
	defer done()
	fail := func(err error) (*Pool, error) {
		if c.File == nil {
			os.Remove(path)
		}
		return nil, err
	}
	if c.File != nil {
		if fi, err := f.Stat(); err != nil || fi.Size() != c.fileSize() {
			return fail(fmt.Errorf("pool: create: %s is not %d bytes (%v)", path, c.fileSize(), err))
		}
	} else if err := f.Truncate(c.fileSize()); err != nil {
		return fail(fmt.Errorf("pool: create: size %s: %w", path, err))
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(c.fileSize()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(fmt.Errorf("pool: create: mmap %s: %w", path, err))
	}
	p := newPool(c, path, mem, true)
	p.mapped = true
	p.initHeader(c)
	return p, nil
}

// NewMemory makes the pool c describes in the process's own memory rather
// than in a file, for tests that run a server without shared memory: the
// owner's pool, as Create makes it, header included; View gives the
// readers' side. c.Path only names the pool in errors and may be empty.
func NewMemory(c Config) (*Pool, error) {
	if c.Path == "" {
		c.Path = fmt.Sprintf("memory-pool-%d", c.ID)
	}
	c, err := c.normalize()
	if err != nil {
		return nil, err
	}
	// Words, not bytes, so that the header's atomic words are aligned.
	words := make([]uint64, (c.fileSize()+7)/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), c.fileSize())
	p := newPool(c, c.Path, mem, true)
	p.initHeader(c)
	return p, nil
}

// initHeader writes a new pool's header and makes every buffer free.
func (p *Pool) initHeader(c Config) {
	binary.LittleEndian.PutUint32(p.mem[hdrVersion:], Version)
	binary.LittleEndian.PutUint32(p.mem[hdrBufSize:], uint32(c.BufSize))
	binary.LittleEndian.PutUint32(p.mem[hdrCount:], uint32(c.Count))
	binary.LittleEndian.PutUint32(p.mem[hdrID:], uint32(c.ID))
	p.owner.Store(uint32(c.Owner))
	// The magic goes last: a reader that sees it sees the whole header.
	(*atomic.Uint64)(unsafe.Pointer(&p.mem[hdrMagic])).Store(magic)
	p.initFree()
}

// View is a reader's side of the pool over the same memory, as Open gives
// another process: the same rights and checks, counted apart, and no
// Alloc or Free. It is how a test hands one process's in-memory pool
// (NewMemory) to another. Closing the view leaves p mapped; a view must
// not be used after p is closed, and must not be written through.
func (p *Pool) View() *Pool {
	return &Pool{id: p.id, path: p.path, bufSize: p.bufSize, count: p.count, size: p.size, rights: p.rights,
		mem: p.mem, data: p.data, owner: p.owner}
}

// initFree makes every buffer free.
func (p *Pool) initFree() {
	p.free = make([]uint32, p.count)
	for i := range p.free {
		p.free[i] = uint32(p.count - 1 - uint64(i)) // Alloc hands out buffer 0 first
	}
	p.allocated = make([]uint64, (p.count+63)/64)
}

// Adopt maps an existing pool read-write for its owner, with every buffer
// free, and records c.Owner as the owner's incarnation. The kernel creates a
// run's pools before it starts their owners, as it creates inboxes, so an
// owner that is restarted adopts the same file and its readers' mappings
// stay valid. Buffers the dead incarnation had handed out count as free
// again: a reader still holding one may see it reused.
func Adopt(c Config) (*Pool, error) {
	c, err := c.normalize()
	if err != nil {
		return nil, err
	}
	f, path, done, err := c.open(os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("pool: adopt: %w", err)
	}
	defer done()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pool: adopt: %w", err)
	}
	if fi.Size() != c.fileSize() {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d", ErrBadHeader, path, fi.Size(), c.fileSize())
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(c.fileSize()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("pool: adopt: mmap %s: %w", path, err)
	}
	if err := checkHeader(mem, c); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("%w: %s: %s", ErrBadHeader, path, err)
	}
	p := newPool(c, path, mem, true)
	p.mapped = true
	p.owner.Store(uint32(c.Owner))
	p.initFree()
	return p, nil
}

// Open maps an existing pool read-only for a reader. It refuses, with an
// error wrapping ErrBadHeader, a file whose size, magic, version, buffer
// size, buffer count, pool id or owner slot differs from c; a reader that
// races the owner's Create may see that and retry.
//
// A reader must not write into the pool: the mapping is PROT_READ, so a
// write through a slice Bytes returned faults and kills the process.
func Open(c Config) (*Pool, error) {
	c, err := c.normalize()
	if err != nil {
		return nil, err
	}
	f, path, done, err := c.open(os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("pool: open: %w", err)
	}
	defer done()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pool: open: %w", err)
	}
	if fi.Size() != c.fileSize() {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d for %d buffers of %d", ErrBadHeader, path, fi.Size(), c.fileSize(), c.Count, c.BufSize)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(c.fileSize()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("pool: open: mmap %s: %w", path, err)
	}
	if err := checkHeader(mem, c); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("%w: %s: %s", ErrBadHeader, path, err)
	}
	p := newPool(c, path, mem, false)
	p.mapped = true
	return p, nil
}

// checkHeader compares a mapped header with c.
func checkHeader(mem []byte, c Config) error {
	if m := (*atomic.Uint64)(unsafe.Pointer(&mem[hdrMagic])).Load(); m != magic {
		return fmt.Errorf("magic %#x, want %q (not a pool, or not yet initialised)", m, "NEWTPOOL")
	}
	fields := []struct {
		name      string
		got, want uint32
	}{
		{"version", binary.LittleEndian.Uint32(mem[hdrVersion:]), Version},
		{"buffer size", binary.LittleEndian.Uint32(mem[hdrBufSize:]), uint32(c.BufSize)},
		{"buffer count", binary.LittleEndian.Uint32(mem[hdrCount:]), uint32(c.Count)},
		{"pool id", binary.LittleEndian.Uint32(mem[hdrID:]), uint32(c.ID)},
	}
	for _, f := range fields {
		if f.got != f.want {
			return fmt.Errorf("%s is %d, want %d", f.name, f.got, f.want)
		}
	}
	owner := ipc.Endpoint((*atomic.Uint32)(unsafe.Pointer(&mem[hdrOwner])).Load())
	if owner.Slot() != c.Owner.Slot() {
		return fmt.Errorf("owner is %v, want slot %d", owner, c.Owner.Slot())
	}
	return nil
}

func newPool(c Config, path string, mem []byte, isOwner bool) *Pool {
	p := &Pool{
		id:      c.ID,
		path:    path,
		bufSize: uint64(c.BufSize),
		count:   uint64(c.Count),
		size:    uint64(c.Count) * uint64(c.BufSize),
		isOwner: isOwner,
		mem:     mem,
		data:    mem[HeaderSize:],
		owner:   (*atomic.Uint32)(unsafe.Pointer(&mem[hdrOwner])),
	}
	p.rights = 1 << c.Owner.Slot()
	for _, r := range c.Readers {
		p.rights |= 1 << r.Slot()
	}
	return p
}

// ID returns the pool's id.
func (p *Pool) ID() uint8 { return p.id }

// Path returns the pool's file.
func (p *Pool) Path() string { return p.path }

// BufSize returns the size of each buffer.
func (p *Pool) BufSize() int { return int(p.bufSize) }

// Count returns the number of buffers.
func (p *Pool) Count() int { return int(p.count) }

// Owner returns the owner endpoint recorded in the pool's header, or
// ipc.None after Close. Rights follow the owner's slot, which Open checked
// against the Config, so a restarted owner keeps them.
func (p *Pool) Owner() ipc.Endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mem == nil {
		return ipc.None
	}
	return ipc.Endpoint(p.owner.Load())
}

// IsOwner reports whether this mapping is the owner's (from Create).
func (p *Pool) IsOwner() bool { return p.isOwner }

// Alloc takes a free buffer and returns a Ref to the whole of it and the
// buffer itself, which the owner fills before it sends the Ref (cut to the
// bytes written with Slice). Only the owner allocates; ErrExhausted says no
// buffer is free.
func (p *Pool) Alloc() (Ref, []byte, error) {
	if !p.isOwner {
		return 0, nil, fmt.Errorf("%w: alloc in pool %d", ErrNotOwner, p.id)
	}
	p.mu.Lock()
	if p.mem == nil {
		p.mu.Unlock()
		return 0, nil, fmt.Errorf("%w: alloc in pool %d", ErrClosed, p.id)
	}
	n := len(p.free)
	if n == 0 {
		p.mu.Unlock()
		return 0, nil, fmt.Errorf("%w: pool %d has %d buffers, all allocated", ErrExhausted, p.id, p.count)
	}
	i := p.free[n-1]
	p.free = p.free[:n-1]
	p.allocated[i/64] |= 1 << (i % 64)
	p.mu.Unlock()
	p.nalloc.Add(1)

	off := uint64(i) * p.bufSize
	return MakeRef(p.id, uint32(off), uint32(p.bufSize)), p.data[off : off+p.bufSize : off+p.bufSize], nil
}

// Free returns the buffer r starts at to the free list; r's length does
// not matter. Only the owner frees. Free refuses, leaving the free list as
// it was, a Ref for another pool, an offset that is not a buffer start
// (ErrNotBufferStart, ErrOutOfBounds) and a buffer that is not allocated
// (ErrNotAllocated: a double free).
func (p *Pool) Free(r Ref) error {
	if !p.isOwner {
		return fmt.Errorf("%w: free %v in pool %d", ErrNotOwner, r, p.id)
	}
	off := uint64(r.Off())
	var err error
	switch {
	case r.Pool() != p.id:
		err = ErrWrongPool
	case off >= p.size:
		err = ErrOutOfBounds
	case off%p.bufSize != 0:
		err = ErrNotBufferStart
	}
	if err != nil {
		p.badFrees.Add(1)
		return fmt.Errorf("%w: free %v in pool %d", err, r, p.id)
	}
	i := uint32(off / p.bufSize)
	bit := uint64(1) << (i % 64)
	p.mu.Lock()
	if p.mem == nil {
		p.mu.Unlock()
		return fmt.Errorf("%w: free %v in pool %d", ErrClosed, r, p.id)
	}
	if p.allocated[i/64]&bit == 0 {
		p.mu.Unlock()
		p.badFrees.Add(1)
		return fmt.Errorf("%w: free %v in pool %d (buffer %d)", ErrNotAllocated, r, p.id, i)
	}
	p.allocated[i/64] &^= bit
	p.free = append(p.free, i)
	p.mu.Unlock()
	p.nalloc.Add(-1)
	return nil
}

// Slice returns a Ref to the first n bytes of the buffer r points into, as
// the owner sends it once it has written n bytes. It panics if n is not in
// [0, BufSize]: that is a bug in the caller, like a slice index out of
// range. Slice does not check r; the receiver's Check does.
func (p *Pool) Slice(r Ref, n int) Ref {
	if n < 0 || uint64(n) > p.bufSize {
		panic(fmt.Sprintf("pool: Slice(%v, %d) with buffer size %d", r, n, p.bufSize))
	}
	off := uint64(r.Off())
	return MakeRef(r.Pool(), uint32(off-off%p.bufSize), uint32(n))
}

// Reasons a Check refuses, indexing Pool.refused.
const (
	reasonWrongPool = iota
	reasonNoRights
	reasonOutOfBounds
	reasonSpansBuffers
	reasonEmpty
	numReasons
)

var reasonErrs = [numReasons]error{ErrWrongPool, ErrNoRights, ErrOutOfBounds, ErrSpansBuffers, ErrEmpty}

// Check is the receiver's check of a Ref that sender sent, before it
// touches the data: r must name this pool; sender must be the owner or a
// reader (compared by slot); r must be non-empty and lie within the data
// region and within one buffer. Each failure returns a distinct error
// (ErrWrongPool, ErrNoRights, ErrEmpty, ErrOutOfBounds, ErrSpansBuffers,
// checked in that order) in a *RefError, and counts in Stats. Check does
// not allocate unless it refuses.
func (p *Pool) Check(r Ref, sender ipc.Endpoint) error {
	if reason := p.check(r, sender); reason != numReasons {
		p.refused[reason].Add(1)
		return &RefError{Err: reasonErrs[reason], Ref: r, Sender: sender, Pool: p.id}
	}
	return nil
}

// RefError is the error Check and Bytes return: why a Ref was refused, and
// the Ref. It formats itself only when printed, so that refusing a flood
// of forged Refs stays cheap.
type RefError struct {
	// Err is the reason: ErrWrongPool, ErrNoRights, ErrOutOfBounds,
	// ErrSpansBuffers or ErrEmpty.
	Err error
	// Ref is the refused Ref.
	Ref Ref
	// Sender is the endpoint that sent it.
	Sender ipc.Endpoint
	// Pool is the id of the pool that checked it.
	Pool uint8
}

// Error describes the refusal.
func (e *RefError) Error() string {
	return fmt.Sprintf("%v: ref %v from %v to pool %d", e.Err, e.Ref, e.Sender, e.Pool)
}

// Unwrap returns the reason, so errors.Is(err, ErrOutOfBounds) works.
func (e *RefError) Unwrap() error { return e.Err }

// check returns the reason to refuse r, or numReasons to accept it.
func (p *Pool) check(r Ref, sender ipc.Endpoint) int {
	if r.Pool() != p.id {
		return reasonWrongPool
	}
	if !p.mayRead(sender) {
		return reasonNoRights
	}
	n := uint64(r.Len())
	if n == 0 {
		return reasonEmpty
	}
	off := uint64(r.Off())
	if off+n > p.size {
		return reasonOutOfBounds
	}
	if off%p.bufSize+n > p.bufSize {
		return reasonSpansBuffers
	}
	return numReasons
}

// mayRead reports whether sender may send Refs into the pool. It reads
// only the Pool, never the mapping, so Check is safe after Close.
func (p *Pool) mayRead(sender ipc.Endpoint) bool {
	return sender.Valid() && p.rights>>sender.Slot()&1 != 0
}

// Bytes checks r as Check does and returns the bytes it names. The slice
// aliases the shared mapping: the owner may write it; a reader must not,
// since its mapping is read-only and a write faults. The slice's capacity
// ends with r, so appending to it copies.
func (p *Pool) Bytes(r Ref, sender ipc.Endpoint) ([]byte, error) {
	if err := p.Check(r, sender); err != nil {
		return nil, err
	}
	if p.data == nil {
		return nil, fmt.Errorf("%w: bytes of %v in pool %d", ErrClosed, r, p.id)
	}
	off := uint64(r.Off())
	end := off + uint64(r.Len())
	return p.data[off:end:end], nil
}

// Refusals counts the Refs Check refused, by reason.
type Refusals struct {
	WrongPool, NoRights, OutOfBounds, SpansBuffers, Empty uint64
}

// Total is the number of refusals for any reason.
func (r Refusals) Total() uint64 {
	return r.WrongPool + r.NoRights + r.OutOfBounds + r.SpansBuffers + r.Empty
}

// Stats is a snapshot of a pool's counters.
type Stats struct {
	// Buffers is the pool's buffer count.
	Buffers int
	// Allocated and Free count the owner's buffers in each state; both
	// are 0 in a reader's mapping, which does not track allocation.
	Allocated, Free int
	// Refused counts the Refs Check (and Bytes) refused.
	Refused Refusals
	// BadFrees counts the Refs Free refused.
	BadFrees uint64
}

// Stats returns the pool's counters. The counters are atomic, so a metrics
// collector may call it while other goroutines use the pool.
func (p *Pool) Stats() Stats {
	s := Stats{
		Buffers: int(p.count),
		Refused: Refusals{
			WrongPool:    p.refused[reasonWrongPool].Load(),
			NoRights:     p.refused[reasonNoRights].Load(),
			OutOfBounds:  p.refused[reasonOutOfBounds].Load(),
			SpansBuffers: p.refused[reasonSpansBuffers].Load(),
			Empty:        p.refused[reasonEmpty].Load(),
		},
		BadFrees: p.badFrees.Load(),
	}
	if p.isOwner {
		s.Allocated = int(p.nalloc.Load())
		s.Free = s.Buffers - s.Allocated
	}
	return s
}

// Close unmaps the pool. It does not remove the file (see Remove). Every
// slice the pool returned becomes invalid. Closing twice is not an error.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mem == nil {
		return nil
	}
	mem := p.mem
	p.mem, p.data = nil, nil
	if !p.mapped {
		return nil // memory of NewMemory, or a View of another's mapping
	}
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("pool: close %s: %w", p.path, err)
	}
	return nil
}

// Remove unlinks the pool file path names (see FilePath); a file that does
// not exist is not an error. Processes that have the pool mapped keep their
// mappings.
func Remove(path string) error {
	if err := os.Remove(FilePath(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pool: remove: %w", err)
	}
	return nil
}

// The header's atomic words must be aligned within the page-aligned mapping.
var _ = [1]struct{}{}[hdrOwner%4+hdrMagic%8]

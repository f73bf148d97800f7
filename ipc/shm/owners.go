package shm

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/memfd"
)

// OwnersSize is the size of an owners table's file: one page, a word per
// slot.
const OwnersSize = 4096

// Owners is a run's table of the receivers' incarnations: the endpoint
// that owns each slot's inbox now, or the slot's generation 0 while it is
// dead. The kernel alone writes it (NewOwners, a sealed memfd mapped
// read-write); every other process maps it read-only (MapOwners), and a
// sender checks a receiver's incarnation there, not in the inbox's shared
// header, which any peer can overwrite to make the receiver look dead.
type Owners struct {
	mem []byte
}

// NewOwners makes an owners table in a sealed memfd called name, every
// slot None, mapped read-write; the kernel hands the file over read-only
// (memfd.ReadOnly).
func NewOwners(name string) (*Owners, *os.File, error) {
	f, err := memfd.Create(name, OwnersSize)
	if err != nil {
		return nil, nil, fmt.Errorf("shm: %w", err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, OwnersSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("shm: map %s: %w", f.Name(), err)
	}
	return &Owners{mem: mem}, f, nil
}

// MapOwners maps the owners table in f read-only: a store through it
// faults. f may be closed afterwards.
func MapOwners(f *os.File) (*Owners, error) {
	if st, err := f.Stat(); err != nil || st.Size() != OwnersSize {
		return nil, fmt.Errorf("shm: %s is not an owners table", f.Name())
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, OwnersSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: map %s: %w", f.Name(), err)
	}
	return &Owners{mem: mem}, nil
}

func (o *Owners) word(slot int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&o.mem[4*(slot%ipc.MaxSlots)]))
}

// Get returns the endpoint that owns slot's inbox now.
func (o *Owners) Get(slot int) ipc.Endpoint { return ipc.Endpoint(o.word(slot).Load()) }

// Set records e as the owner of slot's inbox (the kernel's table only).
func (o *Owners) Set(slot int, e ipc.Endpoint) { o.word(slot).Store(uint32(e)) }

// Close unmaps the table.
func (o *Owners) Close() error {
	if o.mem == nil {
		return nil
	}
	err := unix.Munmap(o.mem)
	o.mem = nil
	return err
}

// Package shm implements newtsim's user-space channels: single-producer
// single-consumer rings of 64-byte messages in shared memory, each ring a
// file of its own that only its producer may write.
//
// A receiving process's inbox is one ring file per process allowed to send
// to it (the kernel's first), which the producer maps read-write and the
// receiver read-only, and the receiver's page: its wake-up word and the
// tail of each ring, which the receiver maps read-write and its senders
// read-only (see inbox.go). A receiver with nothing to do spins for its
// wait policy's budget, then sleeps on its wake-up word with a futex; a
// sender wakes it only when it sleeps. A full ring is backpressure: the
// sender waits (spin, then futex on the ring's own sleep word) or gets
// ipc.ErrWouldBlock, and no message is ever lost or overwritten.
//
// No process can write a word another reads to steer it except its own: a
// peer's ring, ring 0 (the kernel's) and the receiver's page are read-only
// to it. What a producer writes into its own ring is still untrusted:
// messages whose mark is not the next number or whose source is not the
// ring's sender are refused and counted, never followed.
package shm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is where channel files live.
const Dir = "/dev/shm"

// Path returns the /dev/shm path of the named file of a run: every file of a
// run shares the prefix "newtsim-RUN-", so a clean-up can find them all.
func Path(run, name string) string {
	return filepath.Join(Dir, Prefix(run)+name)
}

// Prefix is the file-name prefix of every /dev/shm file of a run.
func Prefix(run string) string { return "newtsim-" + run + "-" }

// RemoveRun removes every /dev/shm file of the run and returns how many it
// removed.
func RemoveRun(run string) (int, error) {
	return removeMatching(func(name string) bool { return strings.HasPrefix(name, Prefix(run)) })
}

// RunOf returns the run id a /dev/shm file name belongs to: names of run
// files are "newtsim-RUN-..." with RUN eight lower-case hex digits (see
// NewRunID in package launch). Other newtsim files (tests', benchmarks') are
// no run's.
func RunOf(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "newtsim-")
	if !ok || len(rest) < 9 || rest[8] != '-' {
		return "", false
	}
	for _, c := range rest[:8] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return rest[:8], true
}

// RemoveAll removes the /dev/shm files of every run except those in keep,
// and nothing that is not a run's.
func RemoveAll(keep ...string) (int, error) {
	return removeMatching(func(name string) bool {
		run, ok := RunOf(name)
		if !ok {
			return false
		}
		for _, k := range keep {
			if run == k {
				return false
			}
		}
		return true
	})
}

func removeMatching(match func(string) bool) (int, error) {
	ents, err := os.ReadDir(Dir)
	if err != nil {
		return 0, fmt.Errorf("shm: list %s: %w", Dir, err)
	}
	n := 0
	for _, e := range ents {
		if !match(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(Dir, e.Name())); err != nil && !os.IsNotExist(err) {
			return n, fmt.Errorf("shm: remove: %w", err)
		}
		n++
	}
	return n, nil
}

// Region is a file mapped shared into this process.
type Region struct {
	Path string
	Mem  []byte
}

// CreateRegion creates the file at path (it must not exist), sizes it and
// maps it read-write. Only its owner (mode 0600) may open it.
func CreateRegion(path string, size int) (*Region, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("shm: create %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("shm: size %s: %w", path, err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("shm: map %s: %w", path, err)
	}
	return &Region{Path: path, Mem: mem}, nil
}

// OpenRegion maps an existing file read-write, whole.
func OpenRegion(path string) (*Region, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: open %s: %w", path, err)
	}
	defer f.Close()
	return MapFile(f)
}

// MapFile maps the open file f read-write, whole: a run file the kernel
// handed over (package memfd), or one OpenRegion opened. f may be closed
// afterwards; the mapping stays. Path is f's name.
func MapFile(f *os.File) (*Region, error) { return mapFile(f, unix.PROT_READ|unix.PROT_WRITE) }

// MapFileReadOnly maps the open file f for reading only, whole: a store
// through the mapping faults, and a descriptor opened read-only (as the
// kernel hands a file over to a process that may only read it) can be
// mapped no other way.
func MapFileReadOnly(f *os.File) (*Region, error) { return mapFile(f, unix.PROT_READ) }

func mapFile(f *os.File, prot int) (*Region, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("shm: stat %s: %w", f.Name(), err)
	}
	if st.Size() == 0 || st.Size() > 1<<32 {
		return nil, fmt.Errorf("shm: %s has size %d", f.Name(), st.Size())
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: map %s: %w", f.Name(), err)
	}
	return &Region{Path: f.Name(), Mem: mem}, nil
}

// Close unmaps the region; the file stays.
func (r *Region) Close() error {
	if r.Mem == nil {
		return nil
	}
	err := unix.Munmap(r.Mem)
	r.Mem = nil
	if err != nil {
		return fmt.Errorf("shm: unmap %s: %w", r.Path, err)
	}
	return nil
}

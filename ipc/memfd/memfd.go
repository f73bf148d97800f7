// Package memfd makes the shared-memory files of a run: anonymous files
// (memfd_create(2)) that exist only as descriptors, sized once and sealed
// so that no holder, the kernel process included, can shrink or grow them.
//
// A file under /dev/shm has a name any process with the right ids can
// open, and whoever opens it can truncate it: every process that maps it
// then dies of SIGBUS at its next touch of the lost pages. A sealed memfd
// has no name to open and cannot change size, so a mapping of it stays
// whole for as long as it is mapped. The kernel process makes each file
// and hands the descriptor to the processes that may map it (package
// runfiles: SCM_RIGHTS on their kernel connections).
package memfd

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Seals are the seals Create sets: the size is final, and so are the
// seals.
const Seals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// Create makes a memfd called name (the name only shows in /proc, as
// "/memfd:NAME"), sizes it to size bytes and seals it with Seals. The
// descriptor is close-on-exec and read-write.
func Create(name string, size int64) (*os.File, error) {
	if size <= 0 {
		return nil, fmt.Errorf("memfd: %s: size %d", name, size)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: create %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "/memfd:"+name)
	if err := unix.Ftruncate(fd, size); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfd: size %s: %w", name, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, Seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfd: seal %s: %w", name, err)
	}
	return f, nil
}

// ErrNotSealed says a file handed over as a run file is not sealed
// against changing size: a holder could truncate it under the mappings.
var ErrNotSealed = errors.New("memfd: file is not sealed against resizing")

// CheckSealed returns nil if f cannot shrink or grow (its seals include
// F_SEAL_SHRINK and F_SEAL_GROW), and an error wrapping ErrNotSealed if it
// can.
func CheckSealed(f *os.File) error {
	s, err := seals(f)
	if err != nil {
		return err
	}
	if s&(unix.F_SEAL_SHRINK|unix.F_SEAL_GROW) != unix.F_SEAL_SHRINK|unix.F_SEAL_GROW {
		return fmt.Errorf("%w: %s has seals %#x", ErrNotSealed, f.Name(), s)
	}
	return nil
}

func seals(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("memfd: %s: %w", f.Name(), err)
	}
	var s int
	var serr error
	if err := rc.Control(func(fd uintptr) { s, serr = unix.FcntlInt(fd, unix.F_GET_SEALS, 0) }); err != nil {
		return 0, fmt.Errorf("memfd: %s: %w", f.Name(), err)
	}
	if errors.Is(serr, unix.EINVAL) {
		return 0, nil // a file that cannot be sealed at all
	}
	if serr != nil {
		return 0, fmt.Errorf("memfd: seals of %s: %w", f.Name(), serr)
	}
	return s, nil
}

// ReadOnly opens f again, read-only: a descriptor whose holder can map the
// file for reading but not for writing. (Opening it again for writing
// through /proc needs write permission on the file's inode, which the
// kernel process gives only to the file's owner: see sandbox.GiveFile.)
func ReadOnly(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("memfd: %s: %w", f.Name(), err)
	}
	ro, oerr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		ro, oerr = unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("memfd: %s: %w", f.Name(), err)
	}
	if oerr != nil {
		return nil, fmt.Errorf("memfd: reopen %s read-only: %w", f.Name(), oerr)
	}
	return os.NewFile(uintptr(ro), f.Name()), nil
}

// Package futex waits and wakes on 32-bit words in memory shared between
// processes. golang.org/x/sys/unix has no futex wrapper, so this calls the
// system call directly. It never uses FUTEX_PRIVATE_FLAG: private futexes are
// keyed on the process, and a wake-up from another process would be lost.
package futex

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	opWait = 0 // FUTEX_WAIT
	opWake = 1 // FUTEX_WAKE
)

// Wait sleeps while *addr == val, until a Wake on addr, a signal, or the
// timeout (0 means none). It returns nil on a wake-up, on a value that had
// already changed, and on a spurious or timed-out wake: callers re-check
// their condition. It uses Syscall6, not RawSyscall6, so the Go scheduler
// knows the thread blocks.
func Wait(addr *atomic.Uint32, val uint32, timeout time.Duration) error {
	var tsp uintptr
	var ts unix.Timespec
	if timeout > 0 {
		ts = unix.NsecToTimespec(int64(timeout))
		tsp = uintptr(unsafe.Pointer(&ts))
	}
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWait, uintptr(val), tsp, 0, 0)
	switch e {
	case 0, unix.EAGAIN, unix.EINTR, unix.ETIMEDOUT:
		return nil
	default:
		return fmt.Errorf("futex wait: %w", e)
	}
}

// Wake wakes up to n processes sleeping on addr and returns how many woke.
func Wake(addr *atomic.Uint32, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWake, uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0, fmt.Errorf("futex wake: %w", e)
	}
	return int(r), nil
}

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

// WaitHeld is Wait for a thread that keeps its place in the Go scheduler
// while it sleeps: a raw system call, so the runtime neither hands the
// goroutine's P to another thread nor wakes its monitor thread when the
// sleep ends. On a core shared by several processes, that hand-over and
// wake-up are most of what a Go process adds to a futex wake-up (two to
// three context switches instead of one).
//
// The price is that the process's other goroutines cannot use the P
// meanwhile, and a garbage collection's stop-the-world waits for the sleep
// to end, so callers bound it with a short timeout and use it only when
// the process has another P for its other goroutines
// (runtime.GOMAXPROCS(0) >= 2). A signal ends the sleep early (EINTR),
// the runtime's own preemption signal included, which is what lets a
// stop-the-world go on without waiting out the timeout. A zero timeout is
// refused: an unbounded held sleep could stall the runtime for ever.
func WaitHeld(addr *atomic.Uint32, val uint32, timeout time.Duration) error {
	if timeout <= 0 {
		return fmt.Errorf("futex wait held: timeout %v: %w", timeout, unix.EINVAL)
	}
	ts := unix.NsecToTimespec(int64(timeout))
	_, _, e := unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWait, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
	switch e {
	case 0, unix.EAGAIN, unix.EINTR, unix.ETIMEDOUT:
		return nil
	default:
		return fmt.Errorf("futex wait held: %w", e)
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

// waitv is the kernel's struct futex_waitv.
type waitv struct {
	val   uint64
	uaddr uint64
	flags uint32
	_     uint32
}

// futex2SizeU32 says a futex_waitv word is 32 bits (and, without
// FUTEX2_PRIVATE, shared between processes).
const futex2SizeU32 = 0x02

// MaxWaitV bounds the words of one Set (the kernel's FUTEX_WAITV_MAX).
const MaxWaitV = 128

// Set is a list of words to sleep on together (futex_waitv(2), Linux
// 5.16): a sleep ends at a Wake on any of them. A receiver sleeps on
// words its senders write, each on its own, so that none of them needs
// to write a word of the receiver's to wake it.
type Set struct {
	ws []waitv
}

// Reset empties the set, keeping its room.
func (s *Set) Reset() { s.ws = s.ws[:0] }

// Add adds the word at addr, to sleep while it holds val.
func (s *Set) Add(addr *atomic.Uint32, val uint32) {
	s.ws = append(s.ws, waitv{val: uint64(val), uaddr: uint64(uintptr(unsafe.Pointer(addr))), flags: futex2SizeU32})
}

// Len is how many words the set holds.
func (s *Set) Len() int { return len(s.ws) }

// monoBase maps Go's monotonic clock onto CLOCK_MONOTONIC, which
// futex_waitv's deadline is on, without a system call per sleep.
var monoBase, monoStart = func() (time.Duration, time.Time) {
	var ts unix.Timespec
	start := time.Now()
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) //nolint:errcheck // cannot fail on Linux
	return time.Duration(ts.Nano()), start
}()

// Wait sleeps while every word of the set holds its value, until a Wake
// on one of them, a signal or the timeout (which must be positive). held
// makes it a raw system call, as WaitHeld is. It returns nil as Wait
// does.
func (s *Set) Wait(timeout time.Duration, held bool) error {
	if timeout <= 0 || len(s.ws) == 0 || len(s.ws) > MaxWaitV {
		return fmt.Errorf("futex waitv: %d words, timeout %v: %w", len(s.ws), timeout, unix.EINVAL)
	}
	ts := unix.NsecToTimespec(int64(monoBase + time.Since(monoStart) + timeout))
	a := [6]uintptr{uintptr(unsafe.Pointer(&s.ws[0])), uintptr(len(s.ws)), 0, uintptr(unsafe.Pointer(&ts)), unix.CLOCK_MONOTONIC}
	var e unix.Errno
	if held {
		_, _, e = unix.RawSyscall6(unix.SYS_FUTEX_WAITV, a[0], a[1], a[2], a[3], a[4], 0)
	} else {
		_, _, e = unix.Syscall6(unix.SYS_FUTEX_WAITV, a[0], a[1], a[2], a[3], a[4], 0)
	}
	switch e {
	case 0, unix.EAGAIN, unix.EINTR, unix.ETIMEDOUT:
		return nil
	default:
		return fmt.Errorf("futex waitv: %w", e)
	}
}

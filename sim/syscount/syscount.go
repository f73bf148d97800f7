// Package syscount counts the system calls that Linux threads make, as the
// kernel counts them: a perf event (perf_event_open(2)) on the tracepoint
// raw_syscalls:sys_enter, which fires once on entry to every system call a
// thread makes, whatever the call and however it was made (Go's runtime,
// cgo, the race detector, a signal handler's rt_sigreturn). Calls served by
// the vDSO without entering the kernel (clock_gettime, gettimeofday, time,
// getcpu) are not system calls and are not counted.
//
// A Counter counts between Start and Stop. Start and Stop make system calls
// of their own (ioctl(2) to enable and disable the events, read(2) to fetch
// the counts); Stop subtracts those that land in the window, so that a
// window in which the counted thread makes no system call reads 0. See
// Counter.Stop for exactly which calls those are.
//
// It needs tracefs (mounted at /sys/kernel/tracing, or debugfs at
// /sys/kernel/debug, to read the tracepoint's id; it mounts tracefs itself
// when neither is there and it runs as root), a kernel built with
// CONFIG_FTRACE_SYSCALLS, and the right to open tracepoint events (root,
// CAP_PERFMON, or a low enough kernel.perf_event_paranoid). It needs no
// hardware performance counters.
package syscount

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Where the tracepoint's id may be read, in the order tried.
const (
	tracefsDir  = "/sys/kernel/tracing"
	debugfsDir  = "/sys/kernel/debug/tracing"
	idRelPath   = "events/raw_syscalls/sys_enter/id"
	tracepoint  = "raw_syscalls:sys_enter"
	ioctlReset  = unix.PERF_EVENT_IOC_RESET
	ioctlEnable = unix.PERF_EVENT_IOC_ENABLE
	ioctlOff    = unix.PERF_EVENT_IOC_DISABLE
)

var (
	idMu     sync.Mutex
	idCached uint64 // 0 until found; a tracepoint id is never 0 in practice
)

// TracepointID returns the id of the tracepoint raw_syscalls:sys_enter, the
// perf event config that Open and OpenThreads use. It reads
// /sys/kernel/tracing/events/raw_syscalls/sys_enter/id or, when that is
// absent, the same file under /sys/kernel/debug/tracing. When neither exists
// and the process runs as root, it mounts tracefs at /sys/kernel/tracing and
// reads it there. The id found is remembered; a failure is not, so a later
// call tries again.
func TracepointID() (uint64, error) {
	idMu.Lock()
	defer idMu.Unlock()
	if idCached != 0 {
		return idCached, nil
	}
	id, err := findID()
	if err != nil {
		return 0, err
	}
	idCached = id
	return id, nil
}

func findID() (uint64, error) {
	paths := []string{tracefsDir + "/" + idRelPath, debugfsDir + "/" + idRelPath}
	for _, p := range paths {
		if id, err := readID(p); err == nil {
			return id, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
	}
	// Neither file: is tracefs mounted at all?
	mounted := isTracefs(tracefsDir) || isTracefs(debugfsDir)
	if mounted {
		return 0, fmt.Errorf("syscount: tracefs is mounted but has no %s (%s or %s): "+
			"the kernel lacks syscall tracepoints (CONFIG_FTRACE_SYSCALLS)", idRelPath, paths[0], paths[1])
	}
	if os.Geteuid() != 0 {
		return 0, fmt.Errorf("syscount: neither %s nor %s exists: tracefs is not mounted, "+
			"and mounting it at %s needs root", paths[0], paths[1], tracefsDir)
	}
	if err := unix.Mount("tracefs", tracefsDir, "tracefs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return 0, fmt.Errorf("syscount: neither %s nor %s exists, and mounting tracefs at %s failed: %w",
			paths[0], paths[1], tracefsDir, err)
	}
	id, err := readID(paths[0])
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("syscount: mounted tracefs at %s but it has no %s: "+
			"the kernel lacks syscall tracepoints (CONFIG_FTRACE_SYSCALLS)", tracefsDir, idRelPath)
	}
	return id, err
}

// isTracefs reports whether dir is the root of a mounted tracefs.
func isTracefs(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TRACEFS_MAGIC
}

func readID(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err // keeps os.ErrNotExist visible to the caller
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("syscount: %s: not a tracepoint id: %q", path, b)
	}
	return id, nil
}

// ThreadCount is the count of one thread's system calls in the last window.
type ThreadCount struct {
	// Tid is the thread's id (the pid of a single-threaded process).
	Tid int
	// Count is the number of system calls the thread entered, less the
	// counter's own calls (see Counter.Stop).
	Count uint64
}

// A Counter counts the system calls of one or more threads between Start
// and Stop. It is not safe for concurrent use.
type Counter struct {
	fds      []int // one perf event per thread
	tids     []int // the thread each event counts, same order as fds
	startTid int   // the calling thread at Start
	running  bool
	self     bool // opened by Open: Start must run on tids[0]
	last     []ThreadCount
}

// Open returns a counter for the calling OS thread: a perf event on the
// tracepoint raw_syscalls:sys_enter for pid 0 (this thread) on any cpu,
// excluding nothing, disabled until Start.
//
// The event belongs to the OS thread that calls Open, not to the goroutine.
// The caller must have called runtime.LockOSThread before Open and must
// stay locked until Stop, and Start and Stop must be called from that
// thread; Stop returns an error if they were not.
func Open() (*Counter, error) {
	id, err := TracepointID()
	if err != nil {
		return nil, err
	}
	tid := unix.Gettid()
	fd, err := openEvent(id, 0)
	if err != nil {
		return nil, fmt.Errorf("syscount: perf_event_open(%s, this thread %d): %w", tracepoint, tid, explain(err))
	}
	return &Counter{fds: []int{fd}, tids: []int{tid}, self: true}, nil
}

// OpenThreads returns a counter that opens one event per thread of process
// pid, one for each entry of /proc/pid/task when it is called, and sums
// them. Threads created after OpenThreads returns are not counted, and a
// thread that exits stops counting (its count up to then still reads).
// Threads that exit while OpenThreads lists them are left out.
//
// pid may be the calling process. The calling thread is then one of the
// counted threads, and its own share of Start's and Stop's calls is
// subtracted as for Open, provided Start and Stop run on the same OS thread
// (hold runtime.LockOSThread); Stop returns an error if they did not.
func OpenThreads(pid int) (*Counter, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("syscount: open threads: invalid pid %d", pid)
	}
	id, err := TracepointID()
	if err != nil {
		return nil, err
	}
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("syscount: open threads of %d: %w", pid, err)
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	sort.Ints(tids)
	// Put the calling thread, if counted, last: Start enables it last and
	// Stop disables it first, so that only one of the counter's own calls
	// lands in its window (see Stop).
	self := unix.Gettid()
	for i, tid := range tids {
		if tid == self {
			copy(tids[i:], tids[i+1:])
			tids[len(tids)-1] = self
			break
		}
	}
	c := &Counter{}
	for _, tid := range tids {
		fd, err := openEvent(id, tid)
		if errors.Is(err, unix.ESRCH) {
			continue // exited since the listing
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("syscount: perf_event_open(%s, thread %d of %d): %w", tracepoint, tid, pid, explain(err))
		}
		c.fds = append(c.fds, fd)
		c.tids = append(c.tids, tid)
	}
	if len(c.fds) == 0 {
		return nil, fmt.Errorf("syscount: open threads of %d: no thread left to count", pid)
	}
	return c, nil
}

func openEvent(id uint64, tid int) (int, error) {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_TRACEPOINT,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Config: id,
		Bits:   unix.PerfBitDisabled, // exclude nothing: user, kernel, hv, idle all counted
	}
	return unix.PerfEventOpen(&attr, tid, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
}

func explain(err error) error {
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		b, _ := os.ReadFile("/proc/sys/kernel/perf_event_paranoid")
		return fmt.Errorf("%w (needs root or CAP_PERFMON; kernel.perf_event_paranoid is %s)", err, strings.TrimSpace(string(b)))
	}
	return err
}

// Threads returns the ids of the threads the counter counts, in the order
// of PerThread.
func (c *Counter) Threads() []int {
	return append([]int(nil), c.tids...)
}

// ioctl makes the call without telling Go's scheduler (no entersyscall or
// exitsyscall), so that nothing of the runtime's runs between enabling the
// events and returning to the caller. These ioctls never block.
func ioctl(fd int, req uint) error {
	if _, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), 0); e != 0 {
		return e
	}
	return nil
}

// Start zeroes the counts and starts counting: it notes the calling thread,
// resets every event (PERF_EVENT_IOC_RESET), then enables them in order
// (PERF_EVENT_IOC_ENABLE). The ioctls go through unix.RawSyscall, so that
// Go's scheduler does nothing on the thread between the last ENABLE and
// the return to the caller. For a counter from Open, Start returns an
// error when called from a thread other than Open's.
func (c *Counter) Start() error {
	if c.fds == nil {
		return errors.New("syscount: start: counter is closed")
	}
	c.startTid = unix.Gettid() // before any event is enabled: not counted
	if c.self && c.startTid != c.tids[0] {
		return fmt.Errorf("syscount: start: on thread %d, but the counter counts thread %d, "+
			"which called Open: hold runtime.LockOSThread from Open to Stop", c.startTid, c.tids[0])
	}
	for _, fd := range c.fds {
		if err := ioctl(fd, ioctlReset); err != nil {
			return fmt.Errorf("syscount: start: reset: %w", err)
		}
	}
	for i, fd := range c.fds {
		if err := ioctl(fd, ioctlEnable); err != nil {
			for j := i - 1; j >= 0; j-- {
				ioctl(c.fds[j], ioctlOff)
			}
			return fmt.Errorf("syscount: start: enable: %w", err)
		}
	}
	c.running = true
	return nil
}

// Stop stops counting and returns the number of system calls the counted
// threads entered since Start, summed over the threads.
//
// The counter's own calls and which of them are counted: Start makes a
// gettid(2), one ioctl(PERF_EVENT_IOC_RESET) per event and then one
// ioctl(PERF_EVENT_IOC_ENABLE) per event, in order; Stop makes one
// ioctl(PERF_EVENT_IOC_DISABLE) per event in the reverse order, then
// gettid(2), then one read(2) per event. The tracepoint fires on entry to a
// system call, so a call is counted by a thread's event exactly when the
// event is enabled as the call enters the kernel. An ENABLE is therefore not
// counted by the event it enables, and a DISABLE is counted by the event it
// disables; Stop's reads and gettid come after every event is disabled,
// and Start's gettid and resets before any is enabled. With Open (one event, the caller's) that
// makes exactly one counted call of the counter's own, the final DISABLE,
// and Stop subtracts it: a window with no system call reads 0. With
// OpenThreads on the calling process the caller's event, k-th of n (from
// 0), also sees the ENABLEs of the events after it and the DISABLEs before
// reaching its own: 2(n-k)-1 calls, which Stop subtracts from that thread's
// count (OpenThreads orders the caller's thread last, so this is 1 when the
// caller is the thread that opened it). Other threads' events count none of
// the counter's calls.
//
// Everything else the thread does in the window is counted, including the
// calls Go's runtime makes on it behind the caller's back. The usual ones:
// when the scheduler preempts the goroutine (it has run for 10 ms, or the
// garbage collector wants its stack), the thread takes a SIGURG and returns
// from the handler with rt_sigreturn, and a goroutine locked to its thread
// then hands its P over and waits for it again with futex calls, three to
// five calls in all; a blocking call may add futex calls on the way out, and
// a preempting thread sends its signal with getpid and tgkill. Calling
// runtime.Gosched just before Start begins a fresh 10 ms time slice, which
// makes the first case rare in short windows; it cannot rule it out.
func (c *Counter) Stop() (uint64, error) {
	if c.fds == nil {
		return 0, errors.New("syscount: stop: counter is closed")
	}
	if !c.running {
		return 0, errors.New("syscount: stop: not started")
	}
	c.running = false
	var firstErr error
	for i := len(c.fds) - 1; i >= 0; i-- {
		if err := ioctl(c.fds[i], ioctlOff); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("syscount: stop: disable: %w", err)
		}
	}
	stopTid := unix.Gettid()
	if firstErr != nil {
		return 0, firstErr
	}
	n := len(c.fds)
	own := -1 // index of the event that counts the calling thread
	counted := false
	for i, tid := range c.tids {
		if tid == c.startTid {
			own = i
		}
		if tid == c.startTid || tid == stopTid {
			counted = true
		}
	}
	if stopTid != c.startTid && counted {
		return 0, fmt.Errorf("syscount: stop: Start ran on thread %d and Stop on thread %d, "+
			"and a counted thread's window holds an unknown number of the counter's own calls: "+
			"hold runtime.LockOSThread from Open to Stop", c.startTid, stopTid)
	}
	if len(c.last) != n {
		c.last = make([]ThreadCount, n)
	}
	last := c.last
	var sum uint64
	var buf [8]byte
	for i, fd := range c.fds {
		m, err := unix.Read(fd, buf[:])
		if err != nil {
			return 0, fmt.Errorf("syscount: stop: read thread %d: %w", c.tids[i], err)
		}
		if m != len(buf) {
			return 0, fmt.Errorf("syscount: stop: read thread %d: %d bytes, want 8", c.tids[i], m)
		}
		v := binary.NativeEndian.Uint64(buf[:])
		if i == own {
			overhead := uint64(2*(n-i) - 1)
			if v < overhead {
				return 0, fmt.Errorf("syscount: stop: thread %d counted %d calls, fewer than the counter's own %d "+
					"(was Start called on another thread?)", c.tids[i], v, overhead)
			}
			v -= overhead
		}
		last[i] = ThreadCount{Tid: c.tids[i], Count: v}
		sum += v
	}
	return sum, nil
}

// PerThread returns each thread's count from the last successful Stop, in
// the order of Threads, or nil before the first Stop.
func (c *Counter) PerThread() []ThreadCount {
	return append([]ThreadCount(nil), c.last...)
}

// Close releases the counter's events. It is safe to call more than once.
func (c *Counter) Close() error {
	var firstErr error
	for _, fd := range c.fds {
		if err := unix.Close(fd); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("syscount: close: %w", err)
		}
	}
	c.fds = nil
	c.running = false
	return firstErr
}

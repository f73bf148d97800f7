package syscount

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// open opens a counter for the calling thread, which it locks for the
// rest of the test. A refused perf_event_open fails the test.
func open(t testing.TB) *Counter {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	c, err := Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// window counts the system calls of f on the calling thread, after
// runtime.Gosched to begin a fresh time slice.
func window(t testing.TB, c *Counter, f func()) uint64 {
	t.Helper()
	runtime.Gosched()
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	f()
	n, err := c.Stop()
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	return n
}

// others counts, on the calling thread, the system calls other than the
// counter's own (ioctl, gettid, read) and the workload's: what Go's runtime does on the thread behind the test's
// back (futex, rt_sigreturn, tgkill, ...). It is a second event on the same
// tracepoint with a filter, and its window encloses the counter's, so that
// neither sees the other's ioctls and it sees none of its own.
type others struct{ fd int }

func newOthers(t testing.TB, workload ...int) *others {
	t.Helper()
	id, err := TracepointID()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := openEvent(id, 0)
	if err != nil {
		t.Fatalf("perf_event_open: %v", explain(err))
	}
	t.Cleanup(func() { unix.Close(fd) })
	filter := "id != " + strconv.Itoa(unix.SYS_IOCTL) + " && id != " + strconv.Itoa(unix.SYS_GETTID) +
		" && id != " + strconv.Itoa(unix.SYS_READ)
	for _, nr := range workload {
		filter += " && id != " + strconv.Itoa(nr)
	}
	b, err := unix.BytePtrFromString(filter)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.PERF_EVENT_IOC_SET_FILTER, uintptr(unsafe.Pointer(b))); e != 0 {
		t.Fatalf("PERF_EVENT_IOC_SET_FILTER %q: %v", filter, e)
	}
	return &others{fd}
}

// ownCount returns the calling thread's count from c's last Stop.
func ownCount(t testing.TB, c *Counter) uint64 {
	t.Helper()
	self := unix.Gettid()
	for _, tc := range c.PerThread() {
		if tc.Tid == self {
			return tc.Count
		}
	}
	t.Fatalf("thread %d not among the counted %v", self, c.Threads())
	return 0
}

// exact runs f in windows of both the counter and o until a window in
// which Go's runtime made no system call on the thread, and checks that
// the counter read want there (for a counter of several threads, the
// calling thread's count). It returns the number of disturbed windows.
// The runtime disturbs a short window rarely, so ten in a row fail.
func exact(t testing.TB, c *Counter, o *others, want uint64, what string, f func()) int {
	t.Helper()
	for try := 0; try < 10; try++ {
		runtime.Gosched()
		if err := ioctl(o.fd, ioctlReset); err != nil {
			t.Fatal(err)
		}
		if err := ioctl(o.fd, ioctlEnable); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatalf("Start: %v", err)
		}
		f()
		n, err := c.Stop()
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := ioctl(o.fd, ioctlOff); err != nil {
			t.Fatal(err)
		}
		var b [8]byte
		if _, err := unix.Read(o.fd, b[:]); err != nil {
			t.Fatal(err)
		}
		if len(c.fds) > 1 { // OpenThreads: the calling thread's own count
			n = ownCount(t, c)
		}
		if other := binary.NativeEndian.Uint64(b[:]); other != 0 {
			t.Logf("%s: window disturbed by %d calls of Go's runtime (counted %d): again", what, other, n)
			continue
		}
		if n != want {
			t.Fatalf("%s: counted %d, want %d", what, n, want)
		}
		return try
	}
	t.Fatalf("%s: ten windows in a row disturbed by Go's runtime", what)
	return 0
}

func TestTracepointID(t *testing.T) {
	id, err := TracepointID()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(tracefsDir + "/" + idRelPath)
	if err != nil {
		b, err = os.ReadFile(debugfsDir + "/" + idRelPath)
	}
	if err != nil {
		t.Fatalf("TracepointID returned %d but the id file cannot be read: %v", id, err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.FormatUint(id, 10) {
		t.Fatalf("TracepointID = %d, file says %s", id, got)
	}
}

// An empty window reads 0: Stop subtracts the one call of its own that the
// event sees (the DISABLE ioctl), and nothing else runs on the thread.
func TestEmptyWindowIsZero(t *testing.T) {
	c := open(t)
	o := newOthers(t)
	disturbed := 0
	for i := 0; i < 1000; i++ {
		disturbed += exact(t, c, o, 0, "empty window", func() {})
	}
	t.Logf("1000 empty windows read 0; %d more were disturbed by Go's runtime", disturbed)
}

func TestGetpid(t *testing.T) {
	c := open(t)
	o := newOthers(t, unix.SYS_GETPID)
	pid := os.Getpid()
	cases := []struct {
		name string
		f    func() int
	}{
		{"unix.Getpid", unix.Getpid},
		{"syscall.Getpid", syscall.Getpid},
		{"os.Getpid", os.Getpid},
		{"RawSyscall(SYS_GETPID)", func() int {
			r, _, _ := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
			return int(r)
		}},
		{"Syscall(SYS_GETPID)", func() int {
			r, _, _ := unix.Syscall(unix.SYS_GETPID, 0, 0, 0)
			return int(r)
		}},
	}
	for _, tc := range cases {
		for _, want := range []uint64{1, 10, 1000} {
			bad := 0
			exact(t, c, o, want, fmt.Sprintf("%d calls of %s", want, tc.name), func() {
				for i := uint64(0); i < want; i++ {
					if tc.f() != pid {
						bad++
					}
				}
			})
			if bad != 0 {
				t.Fatalf("%s returned the wrong pid %d times", tc.name, bad)
			}
		}
	}
}

// Calls served by the vDSO are not system calls.
func TestVDSONotCounted(t *testing.T) {
	c := open(t)
	o := newOthers(t, unix.SYS_CLOCK_GETTIME)
	exact(t, c, o, 0, "1000 time.Now (vDSO clock_gettime)", func() {
		for i := 0; i < 1000; i++ {
			time.Now()
		}
	})
	// The same clock through the real system call is counted.
	var ts unix.Timespec
	exact(t, c, o, 100, "100 clock_gettime system calls", func() {
		for i := 0; i < 100; i++ {
			unix.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_MONOTONIC, uintptr(unsafe.Pointer(&ts)), 0)
		}
	})
}

func TestPipeRead(t *testing.T) {
	c := open(t)
	o := newOthers(t, unix.SYS_READ)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	var b [1]byte
	for try := 0; try < 3; try++ {
		if _, err := unix.Write(p[1], make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		var errs []error
		exact(t, c, o, 100, "100 reads on a pipe", func() {
			errs = errs[:0]
			for i := 0; i < 100; i++ {
				if m, err := unix.Read(p[0], b[:]); err != nil || m != 1 {
					errs = append(errs, fmt.Errorf("read %d bytes: %v", m, err))
					return
				}
			}
		})
		if len(errs) != 0 {
			t.Fatalf("reads failed: %v", errs)
		}
	}
}

// Open counts the thread that opened it and no other.
func TestOtherThreadsNotCounted(t *testing.T) {
	c := open(t)
	o := newOthers(t, unix.SYS_GETPID)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for {
			select {
			case <-stop:
				return
			default:
				unix.Getpid()
			}
		}
	}()
	defer func() { close(stop); <-done }()
	exact(t, c, o, 1000, "1000 getpid on this thread while another thread spins on getpid", func() {
		for i := 0; i < 1000; i++ {
			unix.Getpid()
		}
	})
}

// Start on a thread other than Open's is refused.
func TestWrongThread(t *testing.T) {
	ch := make(chan *Counter)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c, err := Open()
		if err != nil {
			t.Errorf("Open: %v", err)
			close(ch)
			return
		}
		ch <- c
		<-release // keep the thread, so that it cannot be the one below
	}()
	c, ok := <-ch
	defer close(release)
	if !ok {
		return
	}
	defer c.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := c.Start(); err == nil {
		c.Stop()
		t.Fatal("Start on another thread than Open's succeeded, want an error")
	} else {
		t.Log(err)
	}
}

func TestStopWithoutStart(t *testing.T) {
	c := open(t)
	if _, err := c.Stop(); err == nil {
		t.Error("Stop before Start succeeded")
	}
	c.Close()
	if err := c.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// OpenThreads on this process counts every thread; the locked thread's own
// count is exact, the others' are what Go's runtime did meanwhile.
func TestOpenThreadsSelf(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	o := newOthers(t, unix.SYS_GETPID)
	c, err := OpenThreads(os.Getpid())
	if err != nil {
		t.Fatalf("OpenThreads: %v", err)
	}
	defer c.Close()
	self := unix.Gettid()
	tids := c.Threads()
	if len(tids) < 2 {
		t.Fatalf("Threads = %v, want this process's threads (a Go process has several)", tids)
	}
	if tids[len(tids)-1] != self {
		t.Fatalf("Threads = %v, want the calling thread %d last", tids, self)
	}
	for _, want := range []uint64{0, 1, 1000} {
		exact(t, c, o, want, fmt.Sprintf("%d getpid, all threads", want), func() {
			for i := uint64(0); i < want; i++ {
				unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
			}
		})
		var sum uint64
		for _, tc := range c.PerThread() {
			sum += tc.Count
		}
		// Stop's return value is not kept by exact; the sum must cover
		// this thread's calls at least.
		if sum < want {
			t.Errorf("%d getpid: the threads' counts sum to %d", want, sum)
		}
		t.Logf("%d getpid on thread %d: %d on all %d threads", want, self, sum, len(tids))
	}
	n := window(t, c, func() {})
	var sum uint64
	for _, tc := range c.PerThread() {
		sum += tc.Count
	}
	if n != sum {
		t.Errorf("Stop returned %d, the per-thread counts sum to %d", n, sum)
	}
}

// Stop subtracts its own calls from the calling thread wherever it stands
// in the order, here first of several events: 2n-1 calls.
func TestOpenThreadsSelfFirst(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	o := newOthers(t, unix.SYS_GETPID)
	c, err := OpenThreads(os.Getpid())
	if err != nil {
		t.Fatalf("OpenThreads: %v", err)
	}
	defer c.Close()
	last := len(c.fds) - 1
	c.fds[0], c.fds[last] = c.fds[last], c.fds[0]
	c.tids[0], c.tids[last] = c.tids[last], c.tids[0]
	for i := 0; i < 20; i++ {
		exact(t, c, o, 10, fmt.Sprintf("10 getpid, calling thread first of %d events", len(c.fds)), func() {
			for i := 0; i < 10; i++ {
				unix.Getpid()
			}
		})
	}
}

// sleepingChild starts sleep(1) and waits until it sleeps in
// clock_nanosleep, after which it makes no system call.
func sleepingChild(t *testing.T) int {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/syscall")
		if err != nil {
			t.Fatal(err)
		}
		nr := strings.Fields(string(b))[0]
		if nr == strconv.Itoa(unix.SYS_CLOCK_NANOSLEEP) || nr == strconv.Itoa(unix.SYS_NANOSLEEP) {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep %d never reached nanosleep: /proc/pid/syscall says %q", pid, b)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOpenThreadsSleepingChild(t *testing.T) {
	pid := sleepingChild(t)
	c, err := OpenThreads(pid)
	if err != nil {
		t.Fatalf("OpenThreads: %v", err)
	}
	defer c.Close()
	if tids := c.Threads(); len(tids) != 1 || tids[0] != pid {
		t.Fatalf("Threads = %v, want [%d]", tids, pid)
	}
	n := window(t, c, func() { time.Sleep(50 * time.Millisecond) })
	if n != 0 {
		t.Errorf("a process asleep in nanosleep: counted %d, want 0", n)
	}
}

func TestOpenThreadsBusyChild(t *testing.T) {
	cmd := exec.Command("yes")
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	cmd.Stdout = devnull
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c, err := OpenThreads(cmd.Process.Pid)
	if err != nil {
		t.Fatalf("OpenThreads: %v", err)
	}
	defer c.Close()
	n := window(t, c, func() { time.Sleep(50 * time.Millisecond) })
	t.Logf("yes > /dev/null: %d system calls in 50ms", n)
	if n < 100 {
		t.Errorf("yes writing to /dev/null for 50ms: counted %d, want many", n)
	}
}

func TestOpenThreadsBadPid(t *testing.T) {
	if _, err := OpenThreads(0); err == nil {
		t.Error("OpenThreads(0) succeeded")
	}
	if _, err := OpenThreads(1 << 30); err == nil {
		t.Error("OpenThreads of a pid that does not exist succeeded")
	}
}

// BenchmarkStartStop times an empty window. It reports the share of
// windows that did not read 0, the ones Go's runtime disturbed (a
// benchmark loop runs long enough for sysmon to preempt it every 10 ms).
func BenchmarkStartStop(b *testing.B) {
	c := open(b)
	nonzero := 0
	for b.Loop() {
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		n, err := c.Stop()
		if err != nil {
			b.Fatal(err)
		}
		if n != 0 {
			nonzero++
		}
	}
	b.ReportMetric(float64(nonzero)/float64(b.N), "nonzero/op")
}

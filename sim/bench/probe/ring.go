package probe

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/procstat"
	"github.com/newtsim/newtsim/ipc/futex"
)

// A ring passes a token around n members on one core, each asleep on a
// futex word of its own until the member before it stores the token there
// and wakes it: one hop is one wake-up, one switch to the woken member and
// one sleep, as a message costs between two of the stack's processes that
// share a core. Run between processes (RingMember, RingLead), a hop also
// switches address spaces; run between the threads of one process
// (RingThreads), it does not. The two side by side say what a switch
// between the stack's separate processes costs on this machine beyond a
// switch between threads, which is what a multiserver stack pays on a
// shared core and a monolithic one does not (docs/LATENCY.md).
type ring struct {
	mem []byte
	n   int
}

// MaxRing bounds a ring's members: a word of 64 bytes each, and the stop
// word, in one page.
const MaxRing = 63

// RingBytes is the size of a ring's shared memory.
const RingBytes = (MaxRing + 1) * 64

// ringSleep bounds a member's held sleep, so that it sees the stop word
// (and a garbage collection is not held up) even if no wake-up comes.
const ringSleep = 100 * time.Millisecond

func newRing(mem []byte, n int) (ring, error) {
	if n < 2 || n > MaxRing {
		return ring{}, fmt.Errorf("ring of %d members: want 2 to %d", n, MaxRing)
	}
	if len(mem) < RingBytes {
		return ring{}, fmt.Errorf("ring: %d bytes of memory, want %d", len(mem), RingBytes)
	}
	return ring{mem: mem, n: n}, nil
}

func (r ring) word(i int) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&r.mem[i*64])) }

func (r ring) stop() *atomic.Uint32 { return r.word(MaxRing) }

// pid is where member i says which process it is, once it runs.
func (r ring) pid(i int) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&r.mem[i*64+8])) }

// pass gives the token to the member after i.
func (r ring) pass(i int) error {
	w := r.word((i + 1) % r.n)
	w.Store(1)
	_, err := futex.Wake(w, 1)
	return err
}

// take waits for the token at member i; false once the ring is stopped.
func (r ring) take(i int) (bool, error) {
	w := r.word(i)
	for w.Load() == 0 {
		if r.stop().Load() != 0 {
			return false, nil
		}
		if err := futex.WaitHeld(w, 0, ringSleep); err != nil {
			return false, err
		}
	}
	w.Store(0)
	return true, nil
}

// member runs member i (not the lead) until the ring stops.
func (r ring) member(i int) error {
	r.pid(i).Store(uint32(os.Getpid()))
	for {
		ok, err := r.take(i)
		if err != nil || !ok {
			return err
		}
		if err := r.pass(i); err != nil {
			return err
		}
	}
}

// lap sends the token once around the ring from the lead, member 0.
func (r ring) lap() error {
	if err := r.pass(0); err != nil {
		return err
	}
	if _, err := r.take(0); err != nil {
		return err
	}
	return nil
}

// end stops every member.
func (r ring) end() {
	r.stop().Store(1)
	for i := 1; i < r.n; i++ {
		futex.Wake(r.word(i), 1) //nolint:errcheck // each also sees the stop word within ringSleep
	}
}

// RingResult is what a ring's lead writes: the wall time per hop (the
// sample), and the CPU time and context switches per hop of every member
// together, which other work on the core does not inflate.
type RingResult struct {
	Result
	CPUNSPerHop    float64 `json:"cpu_ns_per_hop"`
	SwitchesPerHop float64 `json:"switches_per_hop"`
}

// measureRing times laps from the lead and returns the sample per hop,
// with the CPU time and switches per hop of the processes the members
// run in (each once).
func measureRing(b Budget, r ring) (RingResult, error) {
	var res RingResult
	r.pid(0).Store(uint32(os.Getpid()))
	for range 50 { // every member has run, and said which process it is
		if err := r.lap(); err != nil {
			return res, err
		}
	}
	pids := map[int]bool{}
	for i := range r.n {
		pids[int(r.pid(i).Load())] = true
	}
	usage := func() (procstat.Usage, error) {
		var sum procstat.Usage
		for pid := range pids {
			u, err := procstat.Read(pid)
			if err != nil {
				return sum, fmt.Errorf("ring: %w", err)
			}
			sum = sum.Add(u)
		}
		return sum, nil
	}
	before, err := usage()
	if err != nil {
		return res, err
	}
	laps := 0
	s, err := Measure(b, func(int) error { laps++; return r.lap() })
	if err != nil {
		return res, err
	}
	after, err := usage()
	if err != nil {
		return res, err
	}
	hops := float64(laps * r.n)
	res.Sample = PerHop(s, r.n)
	d := after.Sub(before)
	res.CPUNSPerHop = float64(d.CPU.Nanoseconds()) / hops
	res.SwitchesPerHop = float64(d.Switches) / hops
	return res, nil
}

// PerHop turns a sample of laps around a ring of n members into one of
// hops.
func PerHop(s Sample, n int) Sample {
	f := float64(n)
	s.NS, s.Cycles, s.MinNS, s.MaxNS = s.NS/f, s.Cycles/f, s.MinNS/f, s.MaxNS/f
	s.RoundTrips *= n
	return s
}

// mapRing maps the ring's shared memory from the file at fd 3 (a memfd
// the launcher made and gave every member).
func mapRing() ([]byte, error) {
	mem, err := unix.Mmap(3, 0, RingBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("ring: map the shared file at fd 3: %w", err)
	}
	return mem, nil
}

// RingFile makes the shared memory for a ring of processes: a memfd of
// RingBytes, zeroed, to give every member as fd 3.
func RingFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("newtsim-ring", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("ring: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "newtsim-ring")
	if err := f.Truncate(RingBytes); err != nil {
		f.Close()
		return nil, fmt.Errorf("ring: size the memfd: %w", err)
	}
	return f, nil
}

// RingMember runs member index of a ring of n processes, on the shared
// memory at fd 3, until the lead stops it.
func RingMember(n, index int) error {
	if index < 1 || index >= n {
		return fmt.Errorf("ring member %d of %d: the lead is 0, the others 1 to %d", index, n, n-1)
	}
	return onSharedRing(n, func(r ring) error { return r.member(index) })
}

// onSharedRing runs f on a ring of n processes, on the shared memory at
// fd 3, on a thread of its own.
func onSharedRing(n int, f func(ring) error) error {
	mem, err := mapRing()
	if err != nil {
		return err
	}
	defer unix.Munmap(mem)
	r, err := newRing(mem, n)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	return f(r)
}

// RingLead is member 0 of a ring of n processes: it measures laps, writes
// the sample per hop to out and stops the others.
func RingLead(n int, out string) error {
	return onSharedRing(n, func(r ring) error {
		res, err := measureRing(DefaultBudget, r)
		r.end()
		if err != nil {
			return err
		}
		return writeJSON(out, res)
	})
}

// RingThreads runs a ring of n threads of this process, each locked to
// its goroutine and with a P of its own, measures it as RingLead does and
// writes the sample per hop to out.
func RingThreads(n int, out string) error {
	res, err := ringThreads(DefaultBudget, n)
	if err != nil {
		return err
	}
	return writeJSON(out, res)
}

func ringThreads(b Budget, n int) (RingResult, error) {
	mem := make([]byte, RingBytes)
	r, err := newRing(mem, n)
	if err != nil {
		return RingResult{}, err
	}
	// Every member sleeps holding its P: each needs one of its own.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(n + 1))
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			errs[i] = r.member(i)
		}()
	}
	runtime.LockOSThread()
	res, err := measureRing(b, r)
	runtime.UnlockOSThread()
	r.end()
	wg.Wait()
	runtime.KeepAlive(mem)
	if err != nil {
		return res, err
	}
	for _, e := range errs {
		if e != nil {
			return res, e
		}
	}
	return res, nil
}

// Package cpu names a machine's CPUs and pins threads and processes to
// them: CPU lists in the kernel's format, the online CPUs, and affinity
// masks set and read with Linux's sched_setaffinity and sched_getaffinity.
// Every CPU id it accepts is below one limit, Max.
package cpu

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Max is one more than the largest CPU id newtsim accepts anywhere: the
// size of the affinity mask that sched_setaffinity is given. Lists are
// parsed, and masks made, only for ids below it.
const Max = 8 * int(unsafe.Sizeof(unix.CPUSet{}))

// PinThread pins the calling thread to cores. The caller must hold
// runtime.LockOSThread, or the goroutine may move to another thread.
func PinThread(cores []int) error {
	set, err := Mask(cores)
	if err != nil {
		return fmt.Errorf("cpu: thread: %w", err)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("cpu: thread to cores %v: %w", cores, err)
	}
	return nil
}

// PinProcess pins every thread of this process to cores, and sets GOMAXPROCS
// to the number of cores, but never below 2: a process pinned to one core
// still gets two Ps, so that a loop sleeping with its P held (a raw system
// call: ipc/futex.WaitHeld) leaves the other to the process's other
// goroutines, and the runtime does not take a P from a thread blocked in a
// system call while another P is idle. Threads started while it works are
// pinned too: it lists the threads again until no new one appears. It goes
// on past a thread it cannot pin and returns the first such error, naming
// the thread; GOMAXPROCS is left alone then.
func PinProcess(cores []int) error {
	set, err := Mask(cores)
	if err != nil {
		return fmt.Errorf("cpu: process: %w", err)
	}
	var first error
	done := map[int]bool{}
	for {
		tids, err := threads()
		if err != nil {
			return fmt.Errorf("cpu: process to cores %v: %w", cores, err)
		}
		fresh := false
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			done[tid], fresh = true, true
			err := unix.SchedSetaffinity(tid, &set)
			if err != nil && !errors.Is(err, unix.ESRCH) && first == nil { // ESRCH: the thread has exited
				first = fmt.Errorf("cpu: thread %d to cores %v: %w", tid, cores, err)
			}
		}
		if !fresh {
			break
		}
	}
	if first != nil {
		return first
	}
	runtime.GOMAXPROCS(max(set.Count(), 2))
	return nil
}

// Current returns the cores the calling thread may run on, in ascending
// order.
func Current() ([]int, error) {
	cores, err := affinity(0)
	if err != nil {
		return nil, fmt.Errorf("cpu: current thread: %w", err)
	}
	return cores, nil
}

// Of returns the cores process pid (its main thread) may run on, in
// ascending order.
func Of(pid int) ([]int, error) {
	cores, err := affinity(pid)
	if err != nil {
		return nil, fmt.Errorf("cpu: process %d: %w", pid, err)
	}
	return cores, nil
}

// affinity reads the affinity mask of thread tid (0: the calling thread).
func affinity(tid int) ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &set); err != nil {
		return nil, err
	}
	var cores []int
	for c := range Max {
		if set.IsSet(c) {
			cores = append(cores, c)
		}
	}
	return cores, nil
}

// Mask makes the affinity mask of cores, refusing an empty list and any id
// outside 0 to Max-1.
func Mask(cores []int) (unix.CPUSet, error) {
	var set unix.CPUSet
	if len(cores) == 0 {
		return set, errors.New("no cores given")
	}
	for _, c := range cores {
		if c < 0 || c >= Max {
			return set, fmt.Errorf("core %d is out of range 0-%d", c, Max-1)
		}
		set.Set(c)
	}
	return set, nil
}

// threads lists the ids of this process's threads.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

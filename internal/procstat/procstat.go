// Package procstat reads what Linux accounts to a process: the time its
// threads ran on a CPU, the time they waited for one while runnable, and
// the context switches they made, from
// /proc/PID/task/*/schedstat and /proc/PID/task/*/status. Benchmarks read
// it before and after a measured run to say where the CPU went, a figure
// that a loaded machine disturbs far less than a rate does.
package procstat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Usage is what a process's threads have been accounted, summed over the
// threads alive when it was read (a thread that exited takes its share
// with it).
type Usage struct {
	CPU      time.Duration // on a CPU, user and system time alike
	Wait     time.Duration // runnable, waiting on a run queue for a CPU
	Switches uint64        // context switches, voluntary and involuntary
	Threads  int
}

// Sub returns u less an earlier reading v of the same process.
func (u Usage) Sub(v Usage) Usage {
	d := Usage{CPU: u.CPU - v.CPU, Wait: u.Wait - v.Wait, Threads: u.Threads}
	if u.Switches > v.Switches {
		d.Switches = u.Switches - v.Switches
	}
	return d
}

// Add returns u and v together: two processes' usage, or two periods'.
func (u Usage) Add(v Usage) Usage {
	return Usage{CPU: u.CPU + v.CPU, Wait: u.Wait + v.Wait, Switches: u.Switches + v.Switches, Threads: u.Threads + v.Threads}
}

// Read reads pid's usage.
func Read(pid int) (Usage, error) {
	return readIn("/proc", pid)
}

func readIn(root string, pid int) (Usage, error) {
	dir := filepath.Join(root, strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return Usage{}, fmt.Errorf("procstat: %w", err)
	}
	var u Usage
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited meanwhile
		}
		if err != nil {
			return Usage{}, fmt.Errorf("procstat: %w", err)
		}
		cpu, wait, err := ParseSchedstat(string(b))
		if err != nil {
			return Usage{}, fmt.Errorf("procstat: thread %s of %d: %w", e.Name(), pid, err)
		}
		s, err := os.ReadFile(filepath.Join(dir, e.Name(), "status"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return Usage{}, fmt.Errorf("procstat: %w", err)
		}
		sw, err := ParseSwitches(string(s))
		if err != nil {
			return Usage{}, fmt.Errorf("procstat: thread %s of %d: %w", e.Name(), pid, err)
		}
		u.CPU += cpu
		u.Wait += wait
		u.Switches += sw
		u.Threads++
	}
	if u.Threads == 0 {
		return Usage{}, fmt.Errorf("procstat: process %d has no threads left", pid)
	}
	return u, nil
}

// ParseSchedstat reads the time on a CPU and the time runnable, waiting
// on a run queue for one, in nanoseconds, from a schedstat file: "run-ns
// wait-ns timeslices".
func ParseSchedstat(s string) (run, wait time.Duration, err error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("schedstat %q: want 3 fields", s)
	}
	r, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || r < 0 {
		return 0, 0, fmt.Errorf("schedstat %q: bad run time", s)
	}
	w, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || w < 0 {
		return 0, 0, fmt.Errorf("schedstat %q: bad wait time", s)
	}
	return time.Duration(r), time.Duration(w), nil
}

// ParseSwitches sums voluntary_ctxt_switches and
// nonvoluntary_ctxt_switches from a status file; both must be there.
func ParseSwitches(status string) (uint64, error) {
	var sum uint64
	found := 0
	for line := range strings.Lines(status) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "voluntary_ctxt_switches" && k != "nonvoluntary_ctxt_switches") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: %s: %w", k, err)
		}
		sum += n
		found++
	}
	if found != 2 {
		return 0, errors.New("status: no voluntary_ctxt_switches and nonvoluntary_ctxt_switches")
	}
	return sum, nil
}

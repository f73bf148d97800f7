package launch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// RunLockDir holds a lock file for every run a launcher on this machine is
// starting or running. A run is alive from the moment its launcher takes the
// lock, before it makes the run's namespace and starts its kernel, until
// it stops it, so a clean-up by another launcher (each Start cleans up
// after dead runs) never takes a namespace or a file from a run that is
// still starting. The lock is an flock, which the kernel releases when the
// launcher dies however it dies.
const RunLockDir = "/run/newtsim-runs"

// runLock is a held run lock.
type runLock struct{ f *os.File }

// lockRun takes the run's lock.
func lockRun(run string) (*runLock, error) {
	if err := os.MkdirAll(RunLockDir, 0o755); err != nil {
		return nil, fmt.Errorf("launch: run lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(RunLockDir, run+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("launch: run lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("launch: run lock %s: %w", run, err)
	}
	return &runLock{f: f}, nil
}

// release gives the lock up and removes its file.
func (l *runLock) release() {
	if l == nil || l.f == nil {
		return
	}
	os.Remove(l.f.Name())
	l.f.Close()
	l.f = nil
}

// lockedRuns lists the runs whose lock a live launcher holds, and removes
// the lock files of dead launchers.
func lockedRuns() []string {
	ents, err := os.ReadDir(RunLockDir)
	if err != nil {
		return nil
	}
	var runs []string
	for _, e := range ents {
		run, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			continue
		}
		path := filepath.Join(RunLockDir, e.Name())
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case errors.Is(err, unix.EWOULDBLOCK):
			runs = append(runs, run)
		case err == nil:
			os.Remove(path) // its launcher is gone
		}
		f.Close()
	}
	return runs
}

// Package spawn starts newtsim's child processes pinned to their cores.
//
// CPU affinity is per thread and inherited by a child created from that
// thread, and so is the parent-death signal, which the kernel fires when the
// thread that created the child exits. Every child is therefore started from
// one dedicated OS thread that never exits: its mask is set to the child's
// cores just before the fork, so the whole child, with every thread the Go
// runtime later creates in it, starts on its cores.
package spawn

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/cpu"
)

// Spec describes a child process.
type Spec struct {
	Path   string   // the executable
	Args   []string // arguments, without the program name
	Cores  []int    // CPU ids it is pinned to; nil leaves affinity alone
	Files  []*os.File
	Env    []string // nil: this process's environment
	Stdout *os.File // nil: this process's stdout
	Stderr *os.File // nil: this process's stderr
	// Setpgid starts the child in a new process group of its own.
	Setpgid bool
	// DeathSignal is sent to the child when its parent dies; 0 for none.
	DeathSignal syscall.Signal
	// NetNS is the file of the network namespace the child starts in
	// (such as /run/netns/NAME); "" for this process's.
	NetNS string
	// Credential, when set, starts the child as that user and groups (a
	// protection domain, package sandbox). The executable is then opened
	// here and run through its descriptor, so the child needs no search
	// permission on the directories above it, only the file's own
	// execute bit.
	Credential *syscall.Credential
}

type request struct {
	spec Spec
	done chan result
}

type result struct {
	cmd *exec.Cmd
	err error
}

var requests = make(chan request)

func init() {
	go spawner()
}

// spawner owns the locked thread every child is forked from. It never
// returns, so the thread never exits and the death signal never fires
// early.
func spawner() {
	runtime.LockOSThread()
	for r := range requests {
		cmd, err := start(r.spec)
		r.done <- result{cmd, err}
	}
}

func start(s Spec) (*exec.Cmd, error) {
	if s.NetNS != "" {
		// The child is forked in the namespace the thread is in: move the
		// thread there for the fork, and back.
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("spawn: %w", err)
		}
		defer unix.Close(home)
		target, err := unix.Open(s.NetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("spawn: network namespace: %w", err)
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			return nil, fmt.Errorf("spawn: enter %s: %w", s.NetNS, err)
		}
		defer func() {
			if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
				// Every later child would start in the wrong namespace.
				panic(fmt.Sprintf("spawn: cannot return from %s: %v", s.NetNS, err))
			}
		}()
	}
	if len(s.Cores) > 0 {
		set, err := cpu.Mask(s.Cores)
		if err != nil {
			return nil, fmt.Errorf("spawn: %w", err)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return nil, fmt.Errorf("spawn: pin to cores %v: %w", s.Cores, err)
		}
	}
	cmd := exec.Command(s.Path, s.Args...)
	cmd.ExtraFiles = s.Files
	if s.Credential != nil {
		exe, err := os.Open(s.Path)
		if err != nil {
			return nil, fmt.Errorf("spawn: %w", err)
		}
		defer exe.Close()
		// The child's copy of exe is its descriptor 3+len(Files), which
		// os/exec leaves open across the exec: a read-only descriptor of
		// the binary it runs, which it may ignore.
		cmd.ExtraFiles = append(append([]*os.File(nil), s.Files...), exe)
		cmd.Path = fmt.Sprintf("/proc/self/fd/%d", 2+len(cmd.ExtraFiles))
	}
	cmd.Env = s.Env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if s.Stdout != nil {
		cmd.Stdout = s.Stdout
	}
	if s.Stderr != nil {
		cmd.Stderr = s.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: s.Setpgid, Pdeathsig: s.DeathSignal, Credential: s.Credential}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("spawn: start %s: %w", s.Path, err)
	}
	return cmd, nil
}

// Start starts the child described by s from the spawning thread.
func Start(s Spec) (*exec.Cmd, error) {
	done := make(chan result, 1)
	requests <- request{s, done}
	r := <-done
	return r.cmd, r.err
}

// Self returns the path of the running executable, for starting copies of
// it in other roles.
func Self() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("spawn: find own executable: %w", err)
	}
	return p, nil
}

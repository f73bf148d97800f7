package kernel

import (
	"os"
	"os/exec"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/spawn"
	"github.com/newtsim/newtsim/ipc/kmsg"
)

// A standby is a server process started ahead of need (`newtsim serve
// --standby`): it has paid for exec and for the Go runtime's and the
// packages' initialisation, and waits on its kernel connection for the
// boot options of whichever server dies next (kmsg.SendBoot). Restarting a
// server on it skips what takes most of a fresh start: tens of
// milliseconds on an idle machine, a few hundred on a loaded one
// (docs/RECOVERY.md). The kernel keeps one; a restart without one (two
// deaths at once, or one within StandbyDelay of the last) starts a fresh
// process as before.
type standby struct {
	cmd  *exec.Cmd
	fd   int          // the kernel's end of its connection
	slot atomic.Int32 // the slot it was given; 0 while it waits
}

// StandbyDelay is how long after a standby is taken (or the kernel has
// started its servers) the next one is started: its start would otherwise
// compete for the CPU with the restarted server's.
const StandbyDelay = 500 * time.Millisecond

// standbyRetry is how long after a standby died unused the next one is
// started.
const standbyRetry = MaxRestartDelay

// spawned is a standby's start, done off the kernel's loop.
type spawned struct {
	cmd  *exec.Cmd
	kend int
	err  error
}

// keepStandby starts a standby when one is due, and takes one whose start
// is done. The start (a fork and exec) runs beside the loop, which keeps
// routing meanwhile: nothing waits for a standby.
func (k *kern) keepStandby(now time.Time) {
	select {
	case sp := <-k.spawns:
		k.spawning = false
		k.adopt(sp, now)
	default:
	}
	if k.stop || k.spawning || k.spare != nil || k.spareDue.IsZero() || now.Before(k.spareDue) {
		return
	}
	k.spareDue = time.Time{}
	kend, pend, err := kmsg.Pair()
	if err != nil {
		k.c.Log.Printf("standby: %v", err)
		k.spareDue = now.Add(standbyRetry)
		return
	}
	if k.spawns == nil {
		k.spawns = make(chan spawned, 1)
	}
	k.spawning = true
	spec := spawn.Spec{
		Path: k.c.Exe, Args: []string{"serve", "--standby", "--run", k.c.Run}, Cores: k.stackCores(),
		Files: []*os.File{os.NewFile(uintptr(pend), "kernel-conn")}, DeathSignal: syscall.SIGKILL,
	}
	go func() {
		cmd, err := spawn.Start(spec)
		spec.Files[0].Close()
		k.spawns <- spawned{cmd, kend, err}
		k.kick()
	}()
}

// adopt makes a started process the standby, at now; one started while
// the kernel began to stop is ended at once.
func (k *kern) adopt(sp spawned, now time.Time) {
	if sp.err != nil {
		unix.Close(sp.kend)
		k.c.Log.Printf("standby: %v", sp.err)
		k.spareDue = now.Add(standbyRetry)
		return
	}
	sb := &standby{cmd: sp.cmd, fd: sp.kend}
	go func() {
		err := sb.cmd.Wait()
		k.exits <- exitEvent{int(sb.slot.Load()), sb.cmd, err}
		k.kick()
	}()
	k.spare = sb
	if k.stop {
		k.dropStandby(false)
	}
}

// stackCores returns every core a server of the run is pinned to, where a
// standby waits (the server it becomes pins itself); nil if a server is
// not pinned.
func (k *kern) stackCores() []int {
	var cores []int
	for _, p := range k.procs[1:] {
		if len(p.spec.Cores) == 0 {
			return nil
		}
		for _, c := range p.spec.Cores {
			if !slices.Contains(cores, c) {
				cores = append(cores, c)
			}
		}
	}
	slices.Sort(cores)
	return cores
}

// takeStandby makes the standby the server in p's slot, handing it argv
// and then its run files (runfiles.Files.Send), at now. False: there is none, or it is gone; the caller starts a fresh
// process.
func (k *kern) takeStandby(p *proc, argv []string, now time.Time) bool {
	sb := k.spare
	if sb == nil {
		return false
	}
	k.spare, k.spareDue = nil, now.Add(StandbyDelay)
	sb.slot.Store(int32(p.slot))
	err := kmsg.SendBoot(sb.fd, argv)
	if err == nil {
		err = k.files(p).Send(sb.fd)
	}
	if err == nil {
		err = unix.SetNonblock(sb.fd, true)
	}
	if err != nil {
		k.c.Log.Printf("standby (pid %d) for %s: %v", sb.cmd.Process.Pid, p.spec.Name, err)
		unix.Close(sb.fd)
		sb.cmd.Process.Kill()
		return false
	}
	if err := k.attach(p, sb.fd, sb.cmd, now); err != nil {
		k.c.Log.Printf("standby (pid %d) for %s: %v", sb.cmd.Process.Pid, p.spec.Name, err)
		unix.Close(sb.fd)
		sb.cmd.Process.Kill()
		return false
	}
	k.c.Log.Printf("started %s (pid %d, the standby) endpoint %s on cores %v", p.spec.Name, sb.cmd.Process.Pid, p.entry.EP, p.spec.Cores)
	return true
}

// standbyExited handles the exit of a process that was in no slot: the
// standby, unused (killed, or ended by the kernel closing its connection).
func (k *kern) standbyExited(ev exitEvent, now time.Time) {
	sb := k.spare
	if sb == nil || sb.cmd != ev.cmd {
		return
	}
	k.c.Log.Printf("standby (pid %d) died unused: %s", ev.cmd.Process.Pid, exitReason(ev.err))
	unix.Close(sb.fd)
	k.spare = nil
	k.spareDue = now.Add(standbyRetry)
}

// dropStandby ends the standby when the kernel stops: closing its
// connection, which it reads as end of file and exits; kill (at the
// kernel's clean-up) also kills it, and one whose start is still under
// way.
func (k *kern) dropStandby(kill bool) {
	if kill && k.spawning {
		sp := <-k.spawns
		k.spawning = false
		if sp.err == nil {
			unix.Close(sp.kend)
			sp.cmd.Process.Kill()
		}
	}
	if sb := k.spare; sb != nil {
		k.spare, k.dropped = nil, sb.cmd
		unix.Close(sb.fd)
	}
	k.spareDue = time.Time{}
	if kill && k.dropped != nil {
		k.dropped.Process.Kill() // an error if it is gone already
	}
}

// procOf returns the slot's process whose exit ev reports, nil if none
// (the standby, or an incarnation already replaced).
func (k *kern) procOf(ev exitEvent) *proc {
	if ev.slot > 0 && ev.slot < len(k.procs) && k.procs[ev.slot].cmd == ev.cmd {
		return k.procs[ev.slot]
	}
	for _, p := range k.procs[1:] {
		if p.cmd == ev.cmd {
			return p
		}
	}
	return nil
}

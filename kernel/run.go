package kernel

import (
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/internal/spawn"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/collector"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/ipc/kmsg"
	"github.com/newtsim/newtsim/ipc/memfd"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/runfiles"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/ipc/sockbuf"
)

// Config says what the kernel process runs.
type Config struct {
	Run      string // run id: names the run's /dev/shm files
	StateDir string // where status.json and targets.json are written
	Spec     Spec   // the processes to run, resolved by the launcher
	Exe      string // the newtsim binary servers are started from
	Log      *log.Logger
	// RestartDelay is the delay before restarting a server that died soon
	// after its start (Core.RestartDelay); 0: DefaultRestartDelay.
	RestartDelay time.Duration
}

// proc is the kernel's side of one server process.
type proc struct {
	spec    Proc
	slot    int
	entry   *Entry
	fd      int // kernel end of the seqpacket pair; -1 when dead
	cmd     *exec.Cmd
	pending []Out // waiting for room on the way to this process
	// queued counts pending by source slot: what each (source, this
	// process) pair holds in the kernel (MaxPending bounds it).
	queued  [ipc.MaxSlots]int
	wantOut bool  // its connection was full: wake the loop when it has room
	paused  bool  // not read from: a server it sends to is congested
	waiters []int // slots paused until their pair with this process drains
}

type exitEvent struct {
	slot int
	cmd  *exec.Cmd
	err  error
}

// MaxPending bounds the messages the kernel holds from one source for one
// destination whose channel is full: a (source, destination) pair. A
// process's kernel connection is one socket for all its destinations, so
// the only wait the kernel can impose on a sender is to stop reading it,
// which holds up everything it sends. What happens at the bound therefore
// depends on the destination (see congested):
//
//   - A server of the stack (trusted to read, only slow): the source is
//     not read from again until the pair has drained to half (and the
//     destination's whole queue to MaxPending). The source's own sends
//     then block in its socket, which is backpressure all the way back: a
//     sender to a slow but live server waits rather than losing data.
//   - An application (ipc.ClassApp, which may never read): the source
//     keeps being read, and its further messages to that application are
//     refused (ReasonPairFull) until the pair has room again. An
//     application that does not read loses only its own messages; the
//     server sending to it goes on serving everybody else, its alarm
//     requests included.
const MaxPending = 1024

// MaxQueue is the hard bound on what the kernel holds for one destination,
// from all its sources and the kernel's own messages (alarms,
// announcements, replies) together; past it they are dropped and counted
// (ReasonQueueFull). Sources to a server are paused at half of it. The one
// Notification a destination may have waiting is exempt: notifications are
// coalesced, so there is never more than one (see flush).
const MaxQueue = 4 * MaxPending

// kern is the running kernel process.
type kern struct {
	c     Config
	mu    sync.Mutex // guards core and counters against metrics scrapes
	core  *Core
	procs []*proc // by slot; procs[0] is nil (the kernel)
	epfd  int
	evfd  int // eventfd: child exits and shutdown
	exits chan exitEvent
	ring0 *shm.Transport // shm mode: the kernel's rings into every inbox
	// inboxFiles are the files of the run's inboxes by slot (shm mode):
	// a ring per (sender, receiver) pair and a page per receiver, sealed
	// memfds the kernel hands each process on its connection, read-write
	// what it writes and through inboxRO, read-only descriptors of the
	// same files, what it may only read; it keeps them for the run's
	// life to hand them again on a restart. inboxes are its own
	// mappings of them, to discard what a dead receiver left.
	inboxFiles, inboxRO []shm.InboxFiles
	inboxes             []*shm.Inbox
	// pools are the run's pool files by slot, sealed memfds like the
	// inboxes: read-write for the owner; poolsRO are read-only
	// descriptors of the same files, for every other process.
	pools, poolsRO []*os.File
	// awake are the awake words of the servers that have one
	// (runfiles.HasAwake), read-write for them; awakeRO read-only
	// descriptors for the processes that send to them.
	awake, awakeRO []*os.File
	// owners is the run's owners table (shm mode), which only the kernel
	// writes: it names each receiver's incarnation there, and every
	// process maps it read-only through ownersRO to check a receiver
	// before it sends.
	owners               *shm.Owners
	ownersFile, ownersRO *os.File
	stats                ipc.Stats // what the kernel's connections carried
	stop                 bool
	ready                bool
	metrics              *prom.Server
	buf                  [ipc.MessageSize + 1]byte
	oob                  [kmsg.OOBSize]byte // the control buffer: a Deposit's descriptor
	joined               []int              // slots that registered since the last announce
	// spare is the standby (standby.go), nil if none; spareDue is when to
	// start the next, zero if not scheduled; dropped is the one ended
	// when the kernel stopped.
	spare    *standby
	spareDue time.Time
	dropped  *exec.Cmd
	spawning bool         // a standby's start is under way
	spawns   chan spawned // its result
}

// Run creates the run's channels, starts every server of the spec pinned
// as it says, and routes, watches and restarts until ctx is done; then it
// stops the servers and removes the run's files.
func Run(ctx context.Context, c Config) error {
	if err := c.Spec.Validate(); err != nil {
		return err
	}
	runtime.LockOSThread()
	if c.Spec.Slots == 0 {
		c.Spec.Slots = 256
	}
	k := &kern{c: c, core: NewCore(), procs: make([]*proc, len(c.Spec.Procs)+1),
		exits: make(chan exitEvent, 64), epfd: -1, evfd: -1}
	if c.RestartDelay != 0 {
		k.core.RestartDelay = c.RestartDelay
	}
	defer k.cleanup()
	if err := k.setup(); err != nil {
		return err
	}
	go func() { <-ctx.Done(); k.kick() }()
	return k.loop(ctx)
}

func (k *kern) setup() error {
	s := &k.c.Spec
	for i, p := range s.Procs {
		slot := i + 1
		if err := k.core.Add(p.Name, slot); err != nil {
			return err
		}
		k.core.SetClass(slot, ipc.ClassOf(p.Role))
		k.procs[slot] = &proc{spec: p, slot: slot, entry: k.core.Entry(slot), fd: -1}
	}
	for _, l := range s.Links {
		a, b := s.Slot(l.A), s.Slot(l.B)
		k.core.Allow(a, b)
		k.core.Allow(b, a)
	}
	k.core.OnRegister = k.registered
	var err error
	if k.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("kernel: epoll: %w", err)
	}
	if k.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("kernel: eventfd: %w", err)
	}
	if err := unix.EpollCtl(k.epfd, unix.EPOLL_CTL_ADD, k.evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}); err != nil {
		return fmt.Errorf("kernel: epoll add: %w", err)
	}
	if err := os.MkdirAll(k.c.StateDir, 0o755); err != nil {
		return fmt.Errorf("kernel: state dir: %w", err)
	}
	for _, p := range k.procs[1:] {
		k.core.Started(p.slot)
	}
	if s.Transport == TransportShm {
		if err := k.makeInboxes(); err != nil {
			return err
		}
	}
	if err := k.makePools(); err != nil {
		return err
	}
	if err := k.makeAwake(); err != nil {
		return err
	}
	if err := k.serveMetrics(); err != nil {
		return err
	}
	now := time.Now()
	for _, p := range k.procs[1:] {
		if err := k.start(p, now); err != nil {
			return err
		}
	}
	k.writeStatus()
	k.spareDue = now.Add(StandbyDelay)
	return nil
}

// makeInboxes creates every server's inbox, sealed memfds (no name in
// /dev/shm, no holder can resize them): a ring for the kernel (ring 0) and
// one for each process its privilege mask lets send to it, each a file of
// its own, and the receiver's page (its wake word and the tails).
func (k *kern) makeInboxes() error {
	var err error
	if k.owners, k.ownersFile, err = shm.NewOwners(runfiles.OwnersName(k.c.Run)); err != nil {
		return err
	}
	// The kernel's (root's) alone to write, even for a process that
	// opened its read-only descriptor again through /proc.
	if err := k.ownersFile.Chmod(0o644); err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	if k.ownersRO, err = memfd.ReadOnly(k.ownersFile); err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	n := len(k.procs)
	k.inboxFiles, k.inboxRO, k.inboxes = make([]shm.InboxFiles, n), make([]shm.InboxFiles, n), make([]*shm.Inbox, n)
	ring0 := map[int]shm.PeerFiles{}
	for _, p := range k.procs[1:] {
		senders := []int{ipc.KernelSlot}
		senders = append(senders, k.core.Peers(p.slot)...)
		ringName := func(s int) string {
			name := "kernel"
			if s != ipc.KernelSlot {
				name = k.procs[s].spec.Name
			}
			return runfiles.RingName(k.c.Run, p.spec.Name, name)
		}
		in, fs, err := shm.NewInbox(runfiles.InboxName(k.c.Run, p.spec.Name), ringName, shm.Layout{Senders: senders, Slots: k.c.Spec.Slots})
		if err != nil {
			return err
		}
		k.inboxes[p.slot], k.inboxFiles[p.slot] = in, fs
		// The inodes' owners and modes decide who may open a descriptor
		// again through /proc, and for what: the page is the receiver's
		// to write and its group's (its senders') to read; a ring its
		// sender's to write (ring 0 root's) and the receiver's group's
		// to read.
		group := k.c.Spec.Sandbox.Group(p.slot)
		if err := k.give(fs.Page, p.slot, group, 0o640); err != nil {
			return err
		}
		for s, f := range fs.Rings {
			if s == ipc.KernelSlot {
				err = k.giveAs(f, 0, group, 0o640)
			} else {
				err = k.give(f, s, group, 0o640)
			}
			if err != nil {
				return err
			}
		}
		if k.inboxRO[p.slot], err = fs.ReadOnly(); err != nil {
			return fmt.Errorf("kernel: %w", err)
		}
		ring0[p.slot] = shm.PeerFiles{Ring: fs.Rings[ipc.KernelSlot], Page: fs.Page}
		k.owners.Set(p.slot, p.entry.EP)
	}
	k.ring0, err = shm.Open(shm.Config{Self: ipc.Kernel, Peers: ring0, Owners: k.owners})
	return err
}

// filesOf maps the slots of the run's processes onto their files.
func (k *kern) filesOf(files []*os.File) map[int]*os.File {
	m := map[int]*os.File{}
	for slot, f := range files {
		if f != nil {
			m[slot] = f
		}
	}
	return m
}

// files are the run files p may map, which the kernel hands it on its
// connection: its own inbox's rings to read and page to write, its own
// ring in the inbox of each process it may send to, to write, and that
// process's page to read, its own pool to write and every other to read,
// its own awake word to write and those of the servers it may send to to
// read. It gets nothing of another sender's ring.
func (k *kern) files(p *proc) runfiles.Files {
	fs := runfiles.Files{Peers: map[int]shm.PeerFiles{}, Pools: map[int]*os.File{}, Awake: map[int]*os.File{},
		Owners: k.ownersRO}
	if k.awake != nil {
		if f := k.awake[p.slot]; f != nil {
			fs.Awake[p.slot] = f
		}
		for _, q := range k.procs[1:] {
			if f := k.awakeRO[q.slot]; f != nil && q != p && k.core.CanSend(p.slot, q.slot) {
				fs.Awake[q.slot] = f
			}
		}
	}
	maps.Copy(fs.Pools, k.filesOf(k.poolsRO))
	if k.pools != nil {
		fs.Pools[p.slot] = k.pools[p.slot]
	}
	if k.inboxFiles != nil {
		fs.Inbox = shm.InboxFiles{Rings: k.inboxRO[p.slot].Rings, Page: k.inboxFiles[p.slot].Page}
		for _, q := range k.procs[1:] {
			if q != p && k.core.CanSend(p.slot, q.slot) {
				fs.Peers[q.slot] = shm.PeerFiles{Ring: k.inboxFiles[q.slot].Rings[p.slot], Page: k.inboxRO[q.slot].Page}
			}
		}
	}
	return fs
}

// makePools creates every server's buffer pool, a sealed memfd the server
// adopts (package pool): pools, like inboxes, outlive a server's restart.
func (k *kern) makePools() error {
	n := len(k.procs) - 1
	k.pools, k.poolsRO = make([]*os.File, len(k.procs)), make([]*os.File, len(k.procs))
	for _, p := range k.procs[1:] {
		c := runfiles.PoolConfig(k.c.Run, p.spec.Name, p.slot, p.entry.EP, n)
		f, err := memfd.Create(c.Path, c.FileSize())
		if err != nil {
			return fmt.Errorf("kernel: pool of %s: %w", p.spec.Name, err)
		}
		k.pools[p.slot] = f
		c.File = f
		pl, err := pool.Create(c)
		if err != nil {
			return err
		}
		pl.Close()
		// Its owner writes it; every process of the run may read it, and
		// only through a read-only descriptor: the inode's mode stops a
		// reader opening its descriptor again for writing through /proc.
		if err := k.give(f, p.slot, k.c.Spec.Sandbox.RunGroup(), 0o640); err != nil {
			return err
		}
		if k.poolsRO[p.slot], err = memfd.ReadOnly(f); err != nil {
			return fmt.Errorf("kernel: %w", err)
		}
	}
	return nil
}

// makeAwake creates the awake word of every server that has one
// (runfiles.HasAwake), a sealed memfd like the inboxes: the server writes
// it, the processes that send to it (its group) read it, through
// read-only descriptors.
func (k *kern) makeAwake() error {
	k.awake, k.awakeRO = make([]*os.File, len(k.procs)), make([]*os.File, len(k.procs))
	for _, p := range k.procs[1:] {
		if !runfiles.HasAwake(p.spec.Role) {
			continue
		}
		f, err := memfd.Create(runfiles.AwakeName(k.c.Run, p.spec.Name), sockbuf.Size)
		if err != nil {
			return fmt.Errorf("kernel: awake word of %s: %w", p.spec.Name, err)
		}
		k.awake[p.slot] = f
		r, err := sockbuf.New(f)
		if err != nil {
			return fmt.Errorf("kernel: %w", err)
		}
		r.Close()
		if err := k.give(f, p.slot, k.c.Spec.Sandbox.Group(p.slot), 0o640); err != nil {
			return err
		}
		if k.awakeRO[p.slot], err = memfd.ReadOnly(f); err != nil {
			return fmt.Errorf("kernel: %w", err)
		}
	}
	return nil
}

// start forks the server in p's slot with a fresh kernel connection, at
// now: `serve` and the server's boot options; its run files wait for it
// on the connection.
func (k *kern) start(p *proc, now time.Time) error {
	o, err := k.c.Spec.Boot(k.c.Run, p.slot, p.entry.EP)
	if err != nil {
		return err
	}
	if k.takeStandby(p, o.Argv(), now) {
		return nil
	}
	args := append([]string{"serve"}, o.Argv()...)
	kend, pend, err := kmsg.Pair()
	if err != nil {
		return err
	}
	// Its files wait on the connection before anything else.
	if err := k.files(p).Send(kend); err != nil {
		unix.Close(kend)
		unix.Close(pend)
		return fmt.Errorf("kernel: start %s: %w", p.spec.Name, err)
	}
	pf := os.NewFile(uintptr(pend), "kernel-conn")
	defer pf.Close()
	cmd, err := spawn.Start(spawn.Spec{
		Path: k.c.Exe, Args: args, Cores: p.spec.Cores,
		Files: []*os.File{pf}, DeathSignal: syscall.SIGKILL, Credential: k.credential(p),
	})
	if err != nil {
		unix.Close(kend)
		return fmt.Errorf("kernel: start %s: %w", p.spec.Name, err)
	}
	go func() {
		err := cmd.Wait()
		k.exits <- exitEvent{p.slot, cmd, err}
		k.kick()
	}()
	err = unix.SetNonblock(kend, true)
	if err == nil {
		err = k.attach(p, kend, cmd, now)
	}
	if err != nil {
		unix.Close(kend)
		cmd.Process.Kill()
		return fmt.Errorf("kernel: start %s: %w", p.spec.Name, err)
	}
	k.c.Log.Printf("started %s (pid %d) endpoint %s on cores %v", p.spec.Name, cmd.Process.Pid, p.entry.EP, p.spec.Cores)
	return nil
}

// attach makes cmd, on the kernel's end kend of its connection, the
// process in p's slot, started at now.
func (k *kern) attach(p *proc, kend int, cmd *exec.Cmd, now time.Time) error {
	if err := unix.EpollCtl(k.epfd, unix.EPOLL_CTL_ADD, kend, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p.slot)}); err != nil {
		return fmt.Errorf("epoll add: %w", err)
	}
	p.fd, p.cmd = kend, cmd
	k.mu.Lock()
	k.core.Launched(p.slot, now)
	k.mu.Unlock()
	return nil
}

// credential is what p is started as: its protection domain, its own
// user and group and the groups of the processes it may send to (package
// sandbox); nil, the kernel's own root, with the sandbox off or for a
// privileged process, which drops to its domain itself once set up.
func (k *kern) credential(p *proc) *syscall.Credential {
	if !k.c.Spec.Sandbox.On() || p.spec.Privileged {
		return nil
	}
	return k.c.Spec.Sandbox.Domain(p.slot, k.core.Peers(p.slot)).Credential()
}

// give hands a run file the kernel made (a memfd it holds) to the process
// in slot, as user, and to group, with mode: the inode's owner, group and
// mode decide who may open a descriptor of it again through
// /proc/PID/fd, and for what. With the sandbox off the file stays root's.
func (k *kern) give(f *os.File, slot, group int, mode os.FileMode) error {
	return k.giveAs(f, k.c.Spec.Sandbox.User(slot), group, mode)
}

// giveAs is give to the user uid.
func (k *kern) giveAs(f *os.File, uid, group int, mode os.FileMode) error {
	if !k.c.Spec.Sandbox.On() {
		return nil
	}
	if err := f.Chown(uid, group); err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	return nil
}

// kick wakes the loop.
func (k *kern) kick() {
	one := [8]byte{1}
	unix.Write(k.evfd, one[:])
}

func (k *kern) loop(ctx context.Context) error {
	events := make([]unix.EpollEvent, 64)
	stopDeadline := time.Time{}
	for {
		if ctx.Err() != nil && !k.stop {
			k.beginStop()
			stopDeadline = time.Now().Add(2 * time.Second)
		}
		if k.stop {
			if k.alive() == 0 {
				return nil
			}
			if time.Now().After(stopDeadline) {
				k.killAll()
				stopDeadline = time.Now().Add(time.Hour)
			}
		}
		n, err := unix.EpollWait(k.epfd, events, k.timeout())
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("kernel: epoll wait: %w", err)
		}
		now := time.Now()
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd < 0 {
				var b [8]byte
				unix.Read(k.evfd, b[:])
				continue
			}
			slot := int(ev.Fd)
			if ev.Events&unix.EPOLLIN != 0 {
				k.receive(slot, now)
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				k.flush(k.procs[slot])
			}
			if ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 && ev.Events&unix.EPOLLIN == 0 {
				k.detach(k.procs[slot]) // dead; its exit event follows
			}
		}
		k.reap(now)
		k.mu.Lock()
		outs := k.core.Expire(now)
		k.mu.Unlock()
		k.deliverAll(outs)
		k.retry(now)
	}
}

// timeout is the epoll wait in ms: until the next alarm, restart or retry.
func (k *kern) timeout() int {
	next := time.Now().Add(time.Second)
	if at, ok := k.core.NextAlarm(); ok && at.Before(next) {
		next = at
	}
	if at, ok := k.core.NextRestart(); ok && at.Before(next) {
		next = at
	}
	if !k.spareDue.IsZero() && k.spareDue.Before(next) {
		next = k.spareDue
	}
	for _, p := range k.procs[1:] {
		if len(p.pending) > 0 && k.ring0 != nil {
			next = time.Now().Add(time.Millisecond) // shm ring 0 was full: poll it
		}
	}
	d := time.Until(next)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// receive reads what slot's connection holds, a bounded batch for fairness.
func (k *kern) receive(slot int, now time.Time) {
	p := k.procs[slot]
	for i := 0; i < 64 && p.fd >= 0; i++ {
		// recvmsg with a control buffer: a Deposit carries a descriptor
		// (anything else that does has it closed and counted).
		n, file, stray, err := kmsg.ReadMsg(p.fd, k.buf[:], k.oob[:], unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return
		}
		if err != nil || n == 0 {
			if file >= 0 {
				unix.Close(file)
			}
			k.detach(p)
			return
		}
		k.stats.Received[slot].Add(1)
		k.mu.Lock()
		if stray > 0 {
			k.core.Refused[ReasonStrayFile] += uint64(stray)
		}
		outs := k.core.HandleFile(slot, k.buf[:min(n, len(k.buf))], n, file, now)
		gone := k.core.TakeReleased()
		k.mu.Unlock()
		closeAll(gone)
		k.deliverAll(outs)
		k.announce()
		for _, o := range outs {
			if d := k.procs[o.To]; d != nil && o.Msg.Src.Slot() == slot && k.congested(d, slot) {
				p.paused = true
				d.waiters = append(d.waiters, slot)
				k.arm(p)
				return
			}
		}
	}
}

// congested says whether the kernel stops reading the source in slot src
// for what it holds for d: d is a server (applications' pairs are refused
// at the bound instead, in deliver) and the pair has reached MaxPending or
// d's whole queue half of MaxQueue.
func (k *kern) congested(d *proc, src int) bool {
	return k.trusted(d) && (d.queued[src] >= MaxPending || len(d.pending) >= MaxQueue/2)
}

// drained says whether the source in slot src, paused on d, may be read
// again: its pair with d has drained to half the bound, and d's whole
// queue to MaxPending (or d is gone).
func (k *kern) drained(d *proc, src int) bool {
	return d.queued[src] <= MaxPending/2 && len(d.pending) <= MaxPending
}

// trusted says whether p is a server of the stack, trusted to read what it
// is sent (only to be slow, or to crash), as opposed to an application.
func (k *kern) trusted(p *proc) bool { return k.core.Class(p.slot) != ipc.ClassApp }

// arm sets what the loop waits for on p's connection: input unless p is
// paused, room to write while messages wait for it.
func (k *kern) arm(p *proc) {
	if p.fd < 0 {
		return
	}
	var ev uint32
	if !p.paused {
		ev |= unix.EPOLLIN
	}
	if p.wantOut {
		ev |= unix.EPOLLOUT
	}
	unix.EpollCtl(k.epfd, unix.EPOLL_CTL_MOD, p.fd, &unix.EpollEvent{Events: ev, Fd: int32(p.slot)})
}

// release resumes the sources paused on p whose pair with p has drained
// (see drained), or all of them once p is gone.
func (k *kern) release(p *proc) {
	w := p.waiters[:0]
	for _, s := range p.waiters {
		q := k.procs[s]
		if q == nil || !q.paused {
			continue
		}
		if !k.drained(p, s) {
			w = append(w, s)
			continue
		}
		q.paused = false
		k.arm(q)
	}
	p.waiters = w
}

func (k *kern) deliverAll(outs []Out) {
	for i := range outs {
		k.deliver(&outs[i])
	}
}

// deliver sends a message on its way. Replies to kernel calls, and in the
// kernel transport every message, go on the destination's connection; in the
// shm transport the kernel's own messages go into ring 0 of its inbox.
func (k *kern) deliver(o *Out) {
	p := k.procs[o.To]
	if p == nil {
		return
	}
	if !k.viaConn(o) && o.Msg.Src != ipc.Kernel {
		// Forwarding between servers in the shm transport: their rings
		// carry it; a process sent through the kernel only what its mask
		// forbids, which Handle refused. Nothing legitimate reaches here.
		k.c.Log.Printf("dropped %s: no forwarding in the shm transport", &o.Msg)
		return
	}
	src := o.from()
	switch {
	case isNotification(o):
		// At most one waits (the core coalesces until flush takes
		// the bits), so it needs no bound; dropping it would leave the
		// bits set and no Notification to carry them, for ever.
	case len(p.pending) >= MaxQueue:
		// A destination that does not read: the kernel keeps no more
		// for it (alarms and replies would otherwise pile up without
		// bound); what it drops is counted.
		k.countRefused(ReasonQueueFull)
		closeFile(o)
		return
	case src != ipc.KernelSlot && p.queued[src] >= MaxPending && !k.trusted(p):
		// An application that does not read what this source sends it:
		// the source is not paused for it (see MaxPending), its
		// message is refused and counted.
		k.countRefused(ReasonPairFull)
		closeFile(o)
		return
	}
	p.pending = append(p.pending, *o)
	p.queued[src]++
	if len(p.pending) == 1 {
		k.flush(p)
	}
}

// closeFile closes the descriptor o carries, if any: o is dropped, or sent
// (the process has its own copy).
func closeFile(o *Out) {
	if fd, ok := o.File(); ok {
		unix.Close(fd)
	}
}

// closeAll closes the descriptors the core let go.
func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// from is the slot o comes from: the kernel's, or the source a forwarded
// message was checked to come from.
func (o *Out) from() int { return o.Msg.Src.Slot() % ipc.MaxSlots }

// isNotification says whether o is the kernel's Notification, whose bits
// flush fills in as it goes out.
func isNotification(o *Out) bool { return o.Msg.Type == ipc.Notification && o.Msg.Src == ipc.Kernel }

// countRefused counts a message the kernel dropped for why.
func (k *kern) countRefused(why Reason) {
	k.mu.Lock()
	k.core.Refused[why]++
	k.mu.Unlock()
}

// viaConn says whether o goes on the destination's kernel connection (every
// message in the kernel transport, and replies to kernel calls) rather than
// into ring 0 of its inbox.
func (k *kern) viaConn(o *Out) bool { return k.ring0 == nil || o.Reply }

// flush sends what waits for p, in order, until a channel is full. A
// Notification takes the bits the core has gathered for p at the moment it
// goes out (and gives them back if it cannot), so every Notify that came
// while it waited rides on it.
func (k *kern) flush(p *proc) {
	for len(p.pending) > 0 {
		o := &p.pending[0]
		m := &o.Msg
		var bits uint64
		if isNotification(o) {
			k.mu.Lock()
			bits = k.core.TakeNotifications(p.slot, m)
			k.mu.Unlock()
		}
		var err error
		if k.viaConn(o) {
			err = k.sendConn(p, o)
		} else {
			err = k.ring0.TrySend(m)
		}
		if errors.Is(err, ipc.ErrWouldBlock) {
			if bits != 0 {
				k.mu.Lock()
				k.core.ReturnNotifications(p.slot, bits)
				k.mu.Unlock()
			}
			if k.viaConn(o) && !p.wantOut {
				p.wantOut = true
				k.arm(p)
			}
			k.release(p)
			return
		}
		if err != nil {
			k.c.Log.Printf("deliver %s to %s: %v", m.Type, p.spec.Name, err)
		}
		closeFile(o)
		p.queued[o.from()]--
		p.pending = p.pending[1:]
	}
	if p.wantOut {
		p.wantOut = false
		k.arm(p)
	}
	k.release(p)
}

// sendConn sends o's message on p's connection, with the descriptor it
// carries attached (SCM_RIGHTS).
func (k *kern) sendConn(p *proc, o *Out) error {
	if p.fd < 0 {
		return ipc.ErrDeadEndpoint
	}
	var b [ipc.MessageSize]byte
	o.Msg.Marshal(b[:])
	var err error
	if fd, ok := o.File(); ok {
		err = unix.Sendmsg(p.fd, b[:], unix.UnixRights(fd), nil, unix.MSG_DONTWAIT)
	} else {
		err = unix.Sendto(p.fd, b[:], unix.MSG_DONTWAIT, nil)
	}
	if err != nil {
		if errors.Is(err, unix.EAGAIN) {
			return ipc.ErrWouldBlock
		}
		return err
	}
	k.stats.Sent[p.slot].Add(1)
	return nil
}

// retry retries full rings and restarts the servers the core says are due.
func (k *kern) retry(now time.Time) {
	for _, p := range k.procs[1:] {
		if len(p.pending) > 0 && k.ring0 != nil {
			k.flush(p)
		}
	}
	k.mu.Lock()
	due := k.core.Due(now)
	k.mu.Unlock()
	for _, slot := range due {
		p := k.procs[slot]
		k.mu.Lock()
		ep := k.core.Started(slot)
		k.mu.Unlock()
		if k.inboxes != nil {
			// What was left for the dead incarnation is not its
			// successor's (the inbox refused new sends since the
			// death). No file of the inbox has a word a peer could
			// have scribbled on that the kernel would need to put
			// back: each is read-only to all but its writer.
			if n := k.inboxes[slot].Discard(); n > 0 {
				k.c.Log.Printf("%s: discarded %d messages left for %s", p.spec.Name, n, ipc.MakeEndpoint(slot, ep.Generation()-1))
			}
			k.owners.Set(slot, ep)
		}
		if err := k.start(p, now); err != nil {
			k.c.Log.Printf("restart %s: %v", p.spec.Name, err)
			k.mu.Lock()
			k.core.Retry(slot, now)
			k.mu.Unlock()
		}
		k.writeStatus()
	}
	k.keepStandby(now)
}

// detach closes a dead process's connection.
func (k *kern) detach(p *proc) {
	if p.fd < 0 {
		return
	}
	unix.EpollCtl(k.epfd, unix.EPOLL_CTL_DEL, p.fd, nil)
	unix.Close(p.fd)
	p.fd = -1
}

// reap handles child exits at now: record why, and tell the core, which
// schedules the restart.
func (k *kern) reap(now time.Time) {
	for {
		select {
		case ev := <-k.exits:
			p := k.procOf(ev)
			if p == nil {
				k.standbyExited(ev, now)
				continue
			}
			k.detach(p)
			p.cmd = nil
			for i := range p.pending {
				closeFile(&p.pending[i])
			}
			p.pending, p.queued = nil, [ipc.MaxSlots]int{}
			p.wantOut, p.paused = false, false
			k.release(p)
			k.mu.Lock()
			delay, again := k.core.Exited(p.slot, now)
			n := k.core.Restarts(p.slot)
			obits := k.core.Obituaries(p.slot)
			gone := k.core.TakeReleased() // what was deposited for it, or by it
			k.mu.Unlock()
			closeAll(gone)
			k.buryInbox(p)
			why := exitReason(ev.err)
			if !again {
				k.c.Log.Printf("%s stopped: %s", p.spec.Name, why)
				continue
			}
			k.deliverAll(obits) // at once, before the restart
			k.c.Log.Printf("%s (slot %d) died: %s; restart %d in %v", p.spec.Name, p.slot, why, n, delay)
			k.writeStatus()
		default:
			return
		}
	}
}

// buryInbox makes p's inbox refuse sends (shm transport): its owner
// becomes the slot's generation 0, which no process has, so a peer's send
// fails at once rather than filling a ring nobody reads, until the restart
// discards what is left and names the new incarnation.
func (k *kern) buryInbox(p *proc) {
	if k.owners != nil {
		k.owners.Set(p.slot, ipc.MakeEndpoint(p.slot, 0))
	}
}

func exitReason(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by signal " + ws.Signal().String()
		}
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return "exited with status 0"
}

// registered runs (under k.mu) when a process registers; announce does the
// rest once the lock is released.
func (k *kern) registered(e *Entry) { k.joined = append(k.joined, e.Slot) }

// announce tells the peers of each restarted process that registered its new
// endpoint, and records the change in the status file.
func (k *kern) announce() {
	if len(k.joined) == 0 {
		return
	}
	for _, slot := range k.joined {
		p := k.procs[slot]
		if k.core.Restarts(slot) == 0 {
			continue
		}
		for _, s := range k.core.Peers(slot) {
			if q := k.procs[s]; q != nil && q.entry.Alive {
				m := ipc.Message{Src: ipc.Kernel, Dst: q.entry.EP}
				kcall.EndpointUpdate{Slot: slot, Endpoint: p.entry.EP}.Encode(&m)
				k.deliver(&Out{To: s, Msg: m})
			}
		}
		k.c.Log.Printf("%s is back as endpoint %s; told %v", p.spec.Name, p.entry.EP, k.core.Peers(slot))
	}
	k.joined = k.joined[:0]
	k.writeStatus()
}

func (k *kern) alive() int {
	n := 0
	for _, p := range k.procs[1:] {
		if p.cmd != nil {
			n++
		}
	}
	return n
}

func (k *kern) beginStop() {
	k.stop = true
	k.mu.Lock()
	k.core.Stop()
	k.mu.Unlock()
	k.dropStandby(false)
	k.c.Log.Printf("stopping %d servers", k.alive())
	for _, p := range k.procs[1:] {
		if p.cmd != nil && p.entry.Alive {
			k.deliver(&Out{To: p.slot, Msg: ipc.Message{Src: ipc.Kernel, Dst: p.entry.EP, Type: ipc.Shutdown}})
		}
	}
}

func (k *kern) killAll() {
	for _, p := range k.procs[1:] {
		if p.cmd != nil {
			k.c.Log.Printf("%s did not stop in time: killing pid %d", p.spec.Name, p.cmd.Process.Pid)
			p.cmd.Process.Kill()
		}
	}
}

func (k *kern) cleanup() {
	k.dropStandby(true)
	for _, p := range k.procs[1:] {
		if p != nil && p.cmd != nil {
			p.cmd.Process.Kill()
		}
	}
	if k.ring0 != nil {
		k.ring0.Close()
	}
	if k.owners != nil {
		k.owners.Close()
	}
	for _, in := range k.inboxes {
		if in != nil {
			in.Close()
		}
	}
	for _, fs := range slices.Concat(k.inboxFiles, k.inboxRO) {
		fs.Close()
	}
	for _, files := range [][]*os.File{k.pools, k.poolsRO, k.awake, k.awakeRO, {k.ownersFile, k.ownersRO}} {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}
	if k.metrics != nil {
		k.metrics.Close()
	}
	shm.RemoveRun(k.c.Run)
	os.Remove(filepath.Join(k.c.StateDir, StatusFile))
	os.Remove(filepath.Join(k.c.StateDir, TargetsFile))
	if k.epfd >= 0 {
		unix.Close(k.epfd)
	}
}

func (k *kern) serveMetrics() error {
	reg := prom.NewRegistry("kernel", "kernel")
	peer := func(slot int) string {
		if p := k.procs[slot%len(k.procs)]; p != nil && slot < len(k.procs) {
			return p.spec.Name
		}
		return ""
	}
	reg.MustRegister(collector.NewTransport("kernel", &k.stats, peer), (*kernelCollector)(k))
	if k.ring0 != nil {
		reg.MustRegister(collector.NewTransport("shm", k.ring0.Stats(), peer))
	}
	s, err := prom.Serve(reg, "127.0.0.1:0")
	if err != nil {
		return err
	}
	k.metrics = s
	return nil
}

type kernelCollector kern

var (
	descRefused  = prometheus.NewDesc("newtsim_kernel_refused_messages_total", "Messages the kernel refused, by reason.", []string{"reason"}, nil)
	descRestarts = prometheus.NewDesc("newtsim_kernel_restarts_total", "Servers restarted after they died.", []string{"server"}, nil)
	descUp       = prometheus.NewDesc("newtsim_kernel_server_up", "1 if the server is running and registered.", []string{"server"}, nil)
	descDeposits = prometheus.NewDesc("newtsim_kernel_deposits", "Descriptors the kernel keeps for the process, deposited by a server and not yet collected.", []string{"server"}, nil)
)

func (c *kernelCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRefused
	ch <- descRestarts
	ch <- descUp
	ch <- descDeposits
}

func (c *kernelCollector) Collect(ch chan<- prometheus.Metric) {
	k := (*kern)(c)
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range Reasons {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(k.core.Refused[r]), string(r))
	}
	for _, p := range k.procs[1:] {
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(k.core.Restarts(p.slot)), p.spec.Name)
		up := 0.0
		if p.entry.Ready {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, p.spec.Name)
		ch <- prometheus.MustNewConstMetric(descDeposits, prometheus.GaugeValue, float64(k.core.Deposits(p.slot)), p.spec.Name)
	}
}

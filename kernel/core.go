// Package kernel is newtsim's microkernel process: an endpoint table, routing
// of kernel messages under per-process privilege masks, notifications,
// alarms, and the reincarnation role that starts, watches and restarts
// every server.
//
// Core is the kernel's logic, pure and deterministic: messages and clock
// readings in, messages to deliver out, and when to restart a server that
// died. Run is the process around it: the seqpacket connections, the epoll
// loop, forking and reaping child processes, and files. The launcher gives
// Run a Spec, every process resolved; the kernel plans nothing itself.
package kernel

import (
	"container/heap"
	"fmt"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
)

// Reason says why the kernel refused a message. Each has a counter.
type Reason string

// Refusal reasons.
const (
	ReasonShort      Reason = "short"
	ReasonOversized  Reason = "oversized"
	ReasonUnknown    Reason = "unknown-type"
	ReasonForged     Reason = "forged-source"
	ReasonForbidden  Reason = "forbidden"
	ReasonDead       Reason = "dead-destination"
	ReasonBadDst     Reason = "bad-destination"
	ReasonBadRequest Reason = "bad-request"
	// The type table's refusals (ipc.MaySend): a type only the kernel
	// sends, and a type the sender's class may not send to the
	// destination's.
	// ReasonQueueFull: a message for a destination that holds MaxQueue
	// undelivered already, dropped.
	ReasonQueueFull Reason = "queue-full"
	// ReasonPairFull: a message from a process to an application that
	// holds MaxPending undelivered from that process already, refused
	// (the source is not paused for an application: see MaxPending).
	ReasonPairFull    Reason = "pair-full"
	ReasonKernelOnly         = Reason(ipc.RefuseKernelOnly)
	ReasonWrongSender        = Reason(ipc.RefuseWrongSender)
	// ReasonStrayFile: a descriptor attached to anything but a Deposit
	// (or more than one to a message), closed; the message itself is
	// handled as if it had none.
	ReasonStrayFile Reason = "stray-file"
	// ReasonDepositsFull: a Deposit for an application that holds
	// MaxDeposits uncollected already, refused and its descriptor closed.
	ReasonDepositsFull Reason = "deposits-full"
	// ReasonNoDeposit: a Collect of what was not deposited for the caller.
	ReasonNoDeposit Reason = "no-deposit"
)

// Reasons lists every refusal reason, for metrics.
var Reasons = []Reason{ReasonShort, ReasonOversized, ReasonUnknown, ReasonForged,
	ReasonForbidden, ReasonDead, ReasonBadDst, ReasonBadRequest, ReasonKernelOnly, ReasonWrongSender, ReasonQueueFull, ReasonPairFull,
	ReasonStrayFile, ReasonDepositsFull, ReasonNoDeposit}

// MaxDeposits bounds the descriptors the kernel keeps for one application
// (Deposit), uncollected: a listener's ring holds 256 accepted
// connections, each with a new region at worst, and an application may
// listen on several ports; one that never collects costs the kernel this
// many descriptors at most, until it dies.
const MaxDeposits = 1024

// Entry is one process in the endpoint table.
type Entry struct {
	Name  string
	Slot  int
	EP    ipc.Endpoint // current incarnation; generation 0 until first started
	Alive bool         // running (started and not yet seen dead)
	Ready bool         // registered since its last start
	Port  int          // metrics port given at Register
}

// Out is a message the kernel must deliver to a slot. Reply marks the answer
// to a kernel call, which goes back on the caller's kernel connection.
type Out struct {
	To    int
	Msg   ipc.Message
	Reply bool
	// file is 1 + a descriptor the message carries (a Collect's Ack), 0
	// none: see File.
	file int
}

// File returns the descriptor o carries attached (SCM_RIGHTS), if any: the
// shell's, handed over with it and closed once sent, or if o is dropped.
func (o *Out) File() (int, bool) { return o.file - 1, o.file > 0 }

// deposit is a descriptor kept for an application (ipc.Deposit).
type deposit struct {
	from int    // the depositor's slot
	id   uint64 // its name for it
	fd   int    // the shell's descriptor
}

// Core is the kernel's state machine.
type Core struct {
	table   [ipc.MaxSlots]*Entry
	byName  map[string]int
	allow   [ipc.MaxSlots]uint64    // allow[src] has bit dst set if src may send to dst
	class   [ipc.MaxSlots]ipc.Class // what each process may send (ipc.MaySend); ClassApp until SetClass
	alarms  alarmHeap
	alarmOf [ipc.MaxSlots]*alarm
	notes   [ipc.MaxSlots]uint64 // pending notification sources per destination
	// deposits are the descriptors kept for each application, until it
	// collects them or it or their depositor dies; attached is the
	// descriptor that came with the message being handled (-1: none),
	// and released those the core let go, for the shell to close
	// (TakeReleased). The core holds descriptors as numbers: it never
	// touches a file.
	deposits [ipc.MaxSlots][]deposit
	attached int
	released []int

	restarts [ipc.MaxSlots]restart // the restart policy's state (restart.go)
	stopping bool                  // no more restarts

	// Refused counts refusals by reason; Forwarded counts delivered
	// messages by source and destination slot.
	Refused   map[Reason]uint64
	Forwarded [ipc.MaxSlots][ipc.MaxSlots]uint64
	// OnRegister, if set, is called when a process registers.
	OnRegister func(e *Entry)
	// RestartDelay is the delay before restarting a server that died
	// soon after its start (see Exited); one that ran a while restarts at
	// once.
	RestartDelay time.Duration
}

// NewCore returns a kernel with only itself in the table.
func NewCore() *Core {
	k := &Core{byName: map[string]int{}, Refused: map[Reason]uint64{}, RestartDelay: DefaultRestartDelay, attached: -1}
	k.class[ipc.KernelSlot] = ipc.ClassKernel
	k.table[ipc.KernelSlot] = &Entry{Name: "kernel", Slot: ipc.KernelSlot, EP: ipc.Kernel, Alive: true, Ready: true}
	k.byName["kernel"] = ipc.KernelSlot
	for s := range k.allow {
		k.allow[ipc.KernelSlot] |= 1 << s
	}
	return k
}

// Add puts a process in the table at slot. It may always call the kernel.
func (k *Core) Add(name string, slot int) error {
	if slot <= ipc.KernelSlot || slot >= ipc.MaxSlots || k.table[slot] != nil {
		return fmt.Errorf("kernel: slot %d for %q taken or out of range", slot, name)
	}
	if _, dup := k.byName[name]; dup {
		return fmt.Errorf("kernel: process %q listed twice", name)
	}
	k.table[slot] = &Entry{Name: name, Slot: slot}
	k.byName[name] = slot
	k.allow[slot] |= 1 << ipc.KernelSlot
	return nil
}

// SetClass says what the process in slot is, for the type table
// (ipc.MaySend): by default, an application.
func (k *Core) SetClass(slot int, c ipc.Class) {
	if slot > ipc.KernelSlot && slot < ipc.MaxSlots && c != ipc.ClassKernel {
		k.class[slot] = c
	}
}

// Class returns the class of the process in slot (ipc.ClassApp for an
// empty or out-of-range slot).
func (k *Core) Class(slot int) ipc.Class {
	if slot < 0 || slot >= ipc.MaxSlots {
		return ipc.ClassApp
	}
	return k.class[slot]
}

// Allow lets src send to dst.
func (k *Core) Allow(src, dst int) { k.allow[src] |= 1 << dst }

// CanSend reports whether src's privilege mask lets it send to dst.
func (k *Core) CanSend(src, dst int) bool {
	return src >= 0 && src < ipc.MaxSlots && dst >= 0 && dst < ipc.MaxSlots && k.allow[src]&(1<<dst) != 0
}

// Entry returns the process in slot, or nil.
func (k *Core) Entry(slot int) *Entry {
	if slot < 0 || slot >= ipc.MaxSlots {
		return nil
	}
	return k.table[slot]
}

// Lookup returns the slot of the named process, or -1.
func (k *Core) Lookup(name string) int {
	if s, ok := k.byName[name]; ok {
		return s
	}
	return -1
}

// Entries returns the table's processes in slot order, the kernel first.
func (k *Core) Entries() []*Entry {
	var es []*Entry
	for _, e := range k.table {
		if e != nil {
			es = append(es, e)
		}
	}
	return es
}

// Started records a new incarnation of slot and returns its endpoint.
func (k *Core) Started(slot int) ipc.Endpoint {
	e := k.table[slot]
	gen := e.EP.Generation() + 1
	if gen > 0xffff {
		gen = 1
	}
	e.EP = ipc.MakeEndpoint(slot, gen)
	e.Alive, e.Ready, e.Port = true, false, 0
	return e.EP
}

// Died records that slot's process is gone: its alarm and pending
// notifications go with it, and so do the descriptors kept for it and
// those it deposited for others (TakeReleased).
func (k *Core) Died(slot int) {
	e := k.table[slot]
	e.Alive, e.Ready = false, false
	if a := k.alarmOf[slot]; a != nil {
		heap.Remove(&k.alarms, a.index)
		k.alarmOf[slot] = nil
	}
	k.notes[slot] = 0
	for _, d := range k.deposits[slot] {
		k.released = append(k.released, d.fd)
	}
	k.deposits[slot] = nil
	for app, ds := range k.deposits {
		kept := ds[:0]
		for _, d := range ds {
			if d.from == slot {
				k.released = append(k.released, d.fd)
			} else {
				kept = append(kept, d)
			}
		}
		k.deposits[app] = kept
	}
}

// Deposits returns how many descriptors the kernel keeps for the process
// in slot.
func (k *Core) Deposits(slot int) int {
	if slot < 0 || slot >= ipc.MaxSlots {
		return 0
	}
	return len(k.deposits[slot])
}

// TakeReleased returns the descriptors the core let go since the last
// call, for the shell to close: refused deposits, stray attachments, and
// the deposits of processes that died.
func (k *Core) TakeReleased() []int {
	r := k.released
	k.released = nil
	return r
}

// Obituaries returns the announcements of the death of slot's process, an
// EndpointDown naming the endpoint it had, for every other process alive:
// its peers forget what they kept for it, and a process waiting on its
// answer stops waiting. Every process is told, not only the dead one's
// peers: a transport keeps sockets for applications it reaches only
// through syscall. Call it after Died (or Exited), before the restart
// gives the slot a new endpoint.
func (k *Core) Obituaries(slot int) []Out {
	dead := k.table[slot]
	var out []Out
	for s, e := range k.table {
		if s == ipc.KernelSlot || s == slot || e == nil || !e.Alive {
			continue
		}
		m := ipc.Message{Src: ipc.Kernel, Dst: e.EP}
		kcall.EndpointDown{Slot: slot, Endpoint: dead.EP}.Encode(&m)
		out = append(out, Out{To: s, Msg: m})
	}
	return out
}

// Peers returns the slots allowed to send to slot (other than the kernel):
// the processes told when slot gets a new endpoint.
func (k *Core) Peers(slot int) []int {
	var ps []int
	for s, e := range k.table {
		if s != ipc.KernelSlot && s != slot && e != nil && k.CanSend(s, slot) {
			ps = append(ps, s)
		}
	}
	return ps
}

func (k *Core) refuse(out []Out, from int, why Reason, errno ipc.Errno, m *ipc.Message) []Out {
	k.Refused[why]++
	if k.table[from] == nil || !k.table[from].Alive {
		return out
	}
	r := ipc.Message{Src: ipc.Kernel, Dst: k.table[from].EP, Seq: m.Seq}
	(&ipc.KernelError{Errno: errno, Type: m.Type, Dst: m.Dst}).Encode(&r)
	// A refused kernel call is answered like any call; a refused forward
	// arrives as an ordinary message.
	return append(out, Out{To: from, Msg: r, Reply: m.Type.IsKernelCall()})
}

// Handle processes one datagram of n bytes (n is its real length; raw holds
// its first bytes) received on slot from's connection at now, and returns
// what to deliver. It never fails: bad input is refused and counted.
func (k *Core) Handle(from int, raw []byte, n int, now time.Time) []Out {
	return k.HandleFile(from, raw, n, -1, now)
}

// HandleFile is Handle for a datagram that carried a descriptor, file (-1:
// none). A Deposit keeps it; anything else, or a refused Deposit, lets it
// go (TakeReleased), and a descriptor attached to anything but a Deposit
// is counted (ReasonStrayFile).
func (k *Core) HandleFile(from int, raw []byte, n int, file int, now time.Time) []Out {
	k.attached = file
	out := k.handle(from, raw, n, now)
	if k.attached >= 0 {
		k.Refused[ReasonStrayFile]++
		k.released = append(k.released, k.attached)
		k.attached = -1
	}
	return out
}

func (k *Core) handle(from int, raw []byte, n int, now time.Time) []Out {
	var out []Out
	var m ipc.Message
	switch {
	case n < ipc.MessageSize:
		k.Refused[ReasonShort]++
		return nil
	case n > ipc.MessageSize:
		k.Refused[ReasonOversized]++
		return nil
	}
	if err := m.Unmarshal(raw[:ipc.MessageSize]); err != nil {
		k.Refused[ReasonShort]++
		return nil
	}
	src := k.table[from]
	if src == nil || !src.Alive {
		return nil
	}
	if m.Src != src.EP {
		return k.refuse(out, from, ReasonForged, ipc.EBADSRC, &m)
	}
	if !m.Type.Known() {
		return k.refuse(out, from, ReasonUnknown, ipc.ENOSYS, &m)
	}
	if m.Dst == ipc.Kernel {
		return k.call(out, src, &m, now)
	}
	return k.forward(out, src, &m)
}

func (k *Core) forward(out []Out, src *Entry, m *ipc.Message) []Out {
	if m.Type.IsKernelCall() && m.Type != ipc.Notify {
		return k.refuse(out, src.Slot, ReasonBadDst, ipc.EINVAL, m)
	}
	if m.Type.KernelOnly() {
		// Only the kernel announces alarms, deaths and restarts, or
		// answers calls: a process passing one off as the kernel's is
		// forging it.
		return k.refuse(out, src.Slot, ReasonKernelOnly, ipc.EPERM, m)
	}
	dslot := m.Dst.Slot()
	dst := k.Entry(dslot)
	if dst == nil || dslot == ipc.KernelSlot {
		return k.refuse(out, src.Slot, ReasonBadDst, ipc.EDEADSRCDST, m)
	}
	if !k.CanSend(src.Slot, dslot) {
		return k.refuse(out, src.Slot, ReasonForbidden, ipc.EPERM, m)
	}
	if why := ipc.MaySend(m.Type, k.class[src.Slot], k.class[dslot]); why != "" {
		return k.refuse(out, src.Slot, Reason(why), ipc.EPERM, m)
	}
	if !dst.Alive || dst.EP != m.Dst {
		return k.refuse(out, src.Slot, ReasonDead, ipc.EDEADSRCDST, m)
	}
	if m.Type == ipc.Notify {
		return k.notify(out, src.Slot, dslot)
	}
	k.Forwarded[src.Slot][dslot]++
	return append(out, Out{To: dslot, Msg: *m})
}

// notify coalesces: the destination gets one Notification naming every
// source that notified it since it last received one.
func (k *Core) notify(out []Out, from, to int) []Out {
	first := k.notes[to] == 0
	k.notes[to] |= 1 << from
	if !first {
		return out
	}
	return append(out, Out{To: to, Msg: ipc.Message{Src: ipc.Kernel, Dst: k.table[to].EP, Type: ipc.Notification}})
}

// TakeNotifications fills a Notification's bitmap at the moment it is
// delivered, clears what it hands over, and returns it. Until then the
// Notification notify made for to is the one every further Notify rides on.
func (k *Core) TakeNotifications(to int, m *ipc.Message) uint64 {
	bits := k.notes[to]
	kcall.Notification{Sources: bits}.Encode(m)
	k.notes[to] = 0
	return bits
}

// ReturnNotifications gives back bits a Notification took but could not
// deliver (its channel was full): it goes out later with them, and with
// whatever came meanwhile.
func (k *Core) ReturnNotifications(to int, bits uint64) { k.notes[to] |= bits }

func (k *Core) call(out []Out, src *Entry, m *ipc.Message, now time.Time) []Out {
	ack := ipc.Message{Src: ipc.Kernel, Dst: src.EP, Type: ipc.Ack, Seq: m.Seq}
	switch m.Type {
	case ipc.Register:
		var r kcall.Register
		if r.Decode(m); r.MetricsPort > 65535 {
			return k.refuse(out, src.Slot, ReasonBadRequest, ipc.EINVAL, m)
		}
		src.Ready, src.Port = true, int(r.MetricsPort)
		if k.OnRegister != nil {
			k.OnRegister(src)
		}
		kcall.Ack{Endpoint: src.EP}.Encode(&ack)
		return append(out, Out{To: src.Slot, Msg: ack, Reply: true})
	case ipc.Lookup:
		s := k.Lookup(m.Name())
		if s < 0 {
			return k.refuse(out, src.Slot, ReasonBadRequest, ipc.ENOENT, m)
		}
		kcall.Ack{Endpoint: k.table[s].EP}.Encode(&ack)
		return append(out, Out{To: src.Slot, Msg: ack, Reply: true})
	case ipc.SetAlarm:
		if a := k.alarmOf[src.Slot]; a != nil {
			heap.Remove(&k.alarms, a.index)
			k.alarmOf[src.Slot] = nil
		}
		var sa kcall.SetAlarm
		if sa.Decode(m); sa.After > 0 && sa.After <= 24*time.Hour {
			a := &alarm{at: now.Add(sa.After), slot: src.Slot, cookie: sa.Cookie}
			heap.Push(&k.alarms, a)
			k.alarmOf[src.Slot] = a
		} else if sa.After != 0 {
			return k.refuse(out, src.Slot, ReasonBadRequest, ipc.EINVAL, m)
		}
		// No Ack: a server sets alarms from its loop, which reads its
		// peers' channel, not the kernel connection, so acks would pile up
		// unread there until the kernel stopped reading the server.
		return out
	case ipc.Deposit:
		return k.deposit(out, src, m)
	case ipc.Collect:
		return k.collect(out, src, m)
	default: // Notify to the kernel, Ack and Error: nothing to do
		return k.refuse(out, src.Slot, ReasonBadRequest, ipc.EINVAL, m)
	}
}

// deposit keeps the descriptor attached to m for the application it
// names, if src may hand it one: a transport (the type table), linked to
// the application by its mask, the application alive in that incarnation,
// under an id not in use, within MaxDeposits. A refused deposit's
// descriptor is let go.
func (k *Core) deposit(out []Out, src *Entry, m *ipc.Message) []Out {
	file := k.attached
	k.attached = -1
	refuse := func(why Reason, errno ipc.Errno) []Out {
		if file >= 0 {
			k.released = append(k.released, file)
		}
		return k.refuse(out, src.Slot, why, errno, m)
	}
	if why := ipc.MaySend(m.Type, k.class[src.Slot], ipc.ClassKernel); why != "" {
		return refuse(Reason(why), ipc.EPERM)
	}
	var d kcall.Deposit
	d.Decode(m)
	app := d.App.Slot()
	if file < 0 || !d.App.Valid() || k.table[app] == nil || k.class[app] != ipc.ClassApp {
		return refuse(ReasonBadRequest, ipc.EINVAL)
	}
	if !k.CanSend(src.Slot, app) {
		return refuse(ReasonForbidden, ipc.EPERM)
	}
	if e := k.table[app]; !e.Alive || e.EP != d.App {
		return refuse(ReasonDead, ipc.EDEADSRCDST)
	}
	for _, x := range k.deposits[app] {
		if x.from == src.Slot && x.id == d.ID {
			return refuse(ReasonBadRequest, ipc.EINVAL) // the id is in use
		}
	}
	if len(k.deposits[app]) >= MaxDeposits {
		return refuse(ReasonDepositsFull, ipc.EAGAIN)
	}
	k.deposits[app] = append(k.deposits[app], deposit{from: src.Slot, id: d.ID, fd: file})
	ack := ipc.Message{Src: ipc.Kernel, Dst: src.EP, Seq: m.Seq}
	kcall.Ack{Endpoint: d.App}.Encode(&ack)
	return append(out, Out{To: src.Slot, Msg: ack, Reply: true})
}

// collect hands src the descriptor deposited for it by the server it
// names under the id it names, attached to the Ack; the kernel keeps it no
// more.
func (k *Core) collect(out []Out, src *Entry, m *ipc.Message) []Out {
	if why := ipc.MaySend(m.Type, k.class[src.Slot], ipc.ClassKernel); why != "" {
		return k.refuse(out, src.Slot, Reason(why), ipc.EPERM, m)
	}
	var c kcall.Collect
	c.Decode(m)
	ds := k.deposits[src.Slot]
	for i, d := range ds {
		if d.from != c.From.Slot() || d.id != c.ID {
			continue
		}
		k.deposits[src.Slot] = append(ds[:i], ds[i+1:]...)
		ack := ipc.Message{Src: ipc.Kernel, Dst: src.EP, Seq: m.Seq}
		kcall.Ack{Endpoint: k.table[d.from].EP}.Encode(&ack)
		return append(out, Out{To: src.Slot, Msg: ack, Reply: true, file: d.fd + 1})
	}
	return k.refuse(out, src.Slot, ReasonNoDeposit, ipc.ENOENT, m)
}

// NextAlarm returns when the earliest alarm is due, and false if none is set.
func (k *Core) NextAlarm() (time.Time, bool) {
	if len(k.alarms) == 0 {
		return time.Time{}, false
	}
	return k.alarms[0].at, true
}

// Expire returns an Alarm message for every alarm due at now.
func (k *Core) Expire(now time.Time) []Out {
	var out []Out
	for len(k.alarms) > 0 && !k.alarms[0].at.After(now) {
		a := heap.Pop(&k.alarms).(*alarm)
		k.alarmOf[a.slot] = nil
		e := k.table[a.slot]
		m := ipc.Message{Src: ipc.Kernel, Dst: e.EP}
		kcall.Alarm{Cookie: a.cookie}.Encode(&m)
		out = append(out, Out{To: a.slot, Msg: m})
	}
	return out
}

type alarm struct {
	at     time.Time
	slot   int
	cookie uint64
	index  int
}

type alarmHeap []*alarm

func (h alarmHeap) Len() int           { return len(h) }
func (h alarmHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h alarmHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *alarmHeap) Push(x any) { a := x.(*alarm); a.index = len(*h); *h = append(*h, a) }
func (h *alarmHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	*h = old[:len(old)-1]
	return a
}

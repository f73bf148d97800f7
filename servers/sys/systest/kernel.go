package systest

import (
	"fmt"
	"os"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/servers/sys"
	"golang.org/x/sys/unix"
)

// Kernel is a fake kernel connection: a Transport whose sends are the
// process's messages to the kernel (SetAlarm, a send the kernel forwards),
// and calls answered at once: Lookup from the run's endpoints (ENOENT for
// a name it does not know); Deposit keeps a copy of the descriptor for the
// test to take (Deposited), refusing one for a process the run does not
// have; Collect is answered from what the test put there (Put), ENOENT
// for what it did not; anything else with Ack.
type Kernel struct {
	*Transport
	endpoints map[string]ipc.Endpoint
	calls     []ipc.Message
	seq       uint32
	kept      map[keptKey]*os.File
}

// keptKey names a descriptor deposited: by whom (slot), for whom, and its
// id.
type keptKey struct {
	from, to int
	id       uint64
}

var _ sys.Kernel = (*Kernel)(nil)

// NewKernel is the kernel connection of the process self, in a run whose
// processes have the given endpoints.
func NewKernel(self ipc.Endpoint, endpoints map[string]ipc.Endpoint) *Kernel {
	return &Kernel{Transport: NewTransport(self), endpoints: endpoints}
}

// Call answers a kernel call.
func (k *Kernel) Call(m *ipc.Message) (ipc.Message, error) {
	r, f, err := k.CallFile(m, nil)
	if f != nil {
		f.Close()
	}
	return r, err
}

// CallFile answers a kernel call that may carry a descriptor, as Call
// does, and Deposit and Collect as the kernel does.
func (k *Kernel) CallFile(m *ipc.Message, give *os.File) (ipc.Message, *os.File, error) {
	k.seq++
	m.Src, m.Dst, m.Seq = k.Self(), ipc.Kernel, k.seq
	k.calls = append(k.calls, *m)
	r := ipc.Message{Src: ipc.Kernel, Dst: m.Src, Seq: m.Seq}
	refuse := func(errno ipc.Errno) (ipc.Message, *os.File, error) {
		e := &ipc.KernelError{Errno: errno, Type: m.Type}
		e.Encode(&r)
		return r, nil, e
	}
	var ack kcall.Ack
	var handed *os.File
	switch m.Type {
	case ipc.Lookup:
		ep, ok := k.endpoints[m.Name()]
		if !ok {
			return refuse(ipc.ENOENT)
		}
		ack.Endpoint = ep
	case ipc.Deposit:
		var d kcall.Deposit
		d.Decode(m)
		if give == nil || !k.known(d.App) {
			return refuse(ipc.EINVAL)
		}
		f, err := dup(give)
		if err != nil {
			return refuse(ipc.EINVAL)
		}
		k.keep(keptKey{m.Src.Slot(), d.App.Slot(), d.ID}, f)
		ack.Endpoint = d.App
	case ipc.Collect:
		var c kcall.Collect
		c.Decode(m)
		key := keptKey{c.From.Slot(), m.Src.Slot(), c.ID}
		if handed = k.kept[key]; handed == nil {
			return refuse(ipc.ENOENT)
		}
		delete(k.kept, key)
		ack.Endpoint = c.From
	}
	ack.Encode(&r)
	return r, handed, nil
}

func (k *Kernel) known(ep ipc.Endpoint) bool {
	for _, e := range k.endpoints {
		if e == ep {
			return true
		}
	}
	return false
}

func (k *Kernel) keep(key keptKey, f *os.File) {
	if k.kept == nil {
		k.kept = map[keptKey]*os.File{}
	}
	if old := k.kept[key]; old != nil {
		old.Close()
	}
	k.kept[key] = f
}

// dup is a descriptor of its own of what f is open on, as the kernel gets
// one through SCM_RIGHTS.
func dup(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("systest: dup %s: %w", f.Name(), derr)
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}

// Deposited takes the descriptor the server deposited for the process
// named to under id (nil if none): the test's now, to map or to close.
func (k *Kernel) Deposited(to ipc.Endpoint, id uint64) *os.File {
	key := keptKey{k.Self().Slot(), to.Slot(), id}
	f := k.kept[key]
	delete(k.kept, key)
	return f
}

// Put leaves f, deposited by the process from under id, for the server to
// collect.
func (k *Kernel) Put(from ipc.Endpoint, id uint64, f *os.File) {
	k.keep(keptKey{from.Slot(), k.Self().Slot(), id}, f)
}

// Calls returns the kernel calls made since the last Calls.
func (k *Kernel) Calls() []ipc.Message {
	c := k.calls
	k.calls = nil
	return c
}

package systest

import (
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/servers/sys"
)

// Kernel is a fake kernel connection: a Transport whose sends are the
// process's messages to the kernel (SetAlarm, a send the kernel forwards),
// and calls answered at once: Lookup from the run's endpoints (ENOENT for
// a name it does not know), anything else with Ack.
type Kernel struct {
	*Transport
	endpoints map[string]ipc.Endpoint
	calls     []ipc.Message
	seq       uint32
}

var _ sys.Kernel = (*Kernel)(nil)

// NewKernel is the kernel connection of the process self, in a run whose
// processes have the given endpoints.
func NewKernel(self ipc.Endpoint, endpoints map[string]ipc.Endpoint) *Kernel {
	return &Kernel{Transport: NewTransport(self), endpoints: endpoints}
}

// Call answers a kernel call.
func (k *Kernel) Call(m *ipc.Message) (ipc.Message, error) {
	k.seq++
	m.Src, m.Dst, m.Seq = k.Self(), ipc.Kernel, k.seq
	k.calls = append(k.calls, *m)
	r := ipc.Message{Src: ipc.Kernel, Dst: m.Src, Seq: m.Seq}
	var ack kcall.Ack
	if m.Type == ipc.Lookup {
		ep, ok := k.endpoints[m.Name()]
		if !ok {
			e := &ipc.KernelError{Errno: ipc.ENOENT, Type: m.Type}
			e.Encode(&r)
			return r, e
		}
		ack.Endpoint = ep
	}
	ack.Encode(&r)
	return r, nil
}

// Calls returns the kernel calls made since the last Calls.
func (k *Kernel) Calls() []ipc.Message {
	c := k.calls
	k.calls = nil
	return c
}

// Package kcall gives the kernel's calls and notifications named fields
// over the 64-byte ipc.Message. Each type's Encode writes the message's
// type and arguments (the header, Src, Dst and Seq, is the sender's to
// set) and Decode reads them back; what the values mean is for the
// receiver to check. A refusal is an ipc.KernelError; a Lookup carries its
// name with ipc.Message.SetName.
package kcall

import (
	"time"

	"github.com/newtsim/newtsim/ipc"
)

// Register tells the kernel the sender is up (ipc.Register). The kernel
// answers with an Ack naming the sender's own endpoint.
type Register struct {
	// MetricsPort is the port the process serves its metrics on; the
	// kernel refuses one above 65535.
	MetricsPort uint64
}

// Encode writes r into m.
func (r Register) Encode(m *ipc.Message) { set(m, ipc.Register, r.MetricsPort) }

// Decode reads r from m.
func (r *Register) Decode(m *ipc.Message) { r.MetricsPort = word(m, 0) }

// Ack is the kernel's successful answer to a call (ipc.Ack).
type Ack struct {
	// Endpoint is what the call asked for: the endpoint looked up, or the
	// registered process's own.
	Endpoint ipc.Endpoint
}

// Encode writes a into m.
func (a Ack) Encode(m *ipc.Message) { set(m, ipc.Ack, uint64(a.Endpoint)) }

// Decode reads a from m.
func (a *Ack) Decode(m *ipc.Message) { a.Endpoint = ipc.Endpoint(word(m, 0)) }

// SetAlarm asks the kernel for an Alarm (ipc.SetAlarm). A process has one
// alarm: a new one replaces the last. It has no answer but an Error for a
// bad delay.
type SetAlarm struct {
	// After is the delay; 0 cancels the sender's alarm. The kernel
	// refuses a negative one or one over a day.
	After time.Duration
	// Cookie comes back in the Alarm.
	Cookie uint64
}

// Encode writes a into m.
func (a SetAlarm) Encode(m *ipc.Message) { set(m, ipc.SetAlarm, uint64(a.After), a.Cookie) }

// Decode reads a from m.
func (a *SetAlarm) Decode(m *ipc.Message) {
	a.After, a.Cookie = time.Duration(word(m, 0)), word(m, 1)
}

// Alarm is an expired alarm (ipc.Alarm).
type Alarm struct {
	// Cookie is the SetAlarm's.
	Cookie uint64
}

// Encode writes a into m.
func (a Alarm) Encode(m *ipc.Message) { set(m, ipc.Alarm, a.Cookie) }

// Decode reads a from m.
func (a *Alarm) Decode(m *ipc.Message) { a.Cookie = word(m, 0) }

// Notification delivers coalesced notifications (ipc.Notification).
type Notification struct {
	// Sources is a bitmap of the slots that notified.
	Sources uint64
}

// Encode writes n into m.
func (n Notification) Encode(m *ipc.Message) { set(m, ipc.Notification, n.Sources) }

// Decode reads n from m.
func (n *Notification) Decode(m *ipc.Message) { n.Sources = word(m, 0) }

// EndpointUpdate announces that a process was restarted
// (ipc.EndpointUpdate).
type EndpointUpdate struct {
	// Slot is the process's slot.
	Slot int
	// Endpoint is its new incarnation's endpoint; a receiver ignores one
	// whose slot is not Slot.
	Endpoint ipc.Endpoint
}

// Encode writes u into m.
func (u EndpointUpdate) Encode(m *ipc.Message) {
	set(m, ipc.EndpointUpdate, uint64(u.Slot), uint64(u.Endpoint))
}

// Decode reads u from m.
func (u *EndpointUpdate) Decode(m *ipc.Message) {
	u.Slot, u.Endpoint = int(word(m, 0)), ipc.Endpoint(word(m, 1))
}

// EndpointDown announces that a process died (ipc.EndpointDown). Its
// peers forget what they kept for it (its sockets, its calls waiting,
// messages for it) and a process waiting on its answer stops waiting; a
// restart, if any, follows with an EndpointUpdate.
type EndpointDown struct {
	// Slot is the process's slot.
	Slot int
	// Endpoint is the incarnation that died; a receiver ignores one whose
	// slot is not Slot.
	Endpoint ipc.Endpoint
}

// Encode writes d into m.
func (d EndpointDown) Encode(m *ipc.Message) {
	set(m, ipc.EndpointDown, uint64(d.Slot), uint64(d.Endpoint))
}

// Decode reads d from m.
func (d *EndpointDown) Decode(m *ipc.Message) {
	d.Slot, d.Endpoint = int(word(m, 0)), ipc.Endpoint(word(m, 1))
}

// Deposit hands the kernel the descriptor attached to the message (SCM_RIGHTS),
// for the application App to collect under ID (ipc.Deposit). The kernel
// answers with Ack.
type Deposit struct {
	// App is the application the descriptor is for: the kernel refuses
	// one the depositor may not send to, or that is not alive.
	App ipc.Endpoint
	// ID names the descriptor among the depositor's for App.
	ID uint64
}

// Encode writes d into m.
func (d Deposit) Encode(m *ipc.Message) { set(m, ipc.Deposit, uint64(d.App), d.ID) }

// Decode reads d from m.
func (d *Deposit) Decode(m *ipc.Message) { d.App, d.ID = ipc.Endpoint(word(m, 0)), word(m, 1) }

// Collect asks the kernel for the descriptor the server From deposited for
// the caller under ID (ipc.Collect). The Ack carries it attached
// (SCM_RIGHTS), and names From's endpoint.
type Collect struct {
	// From is the server that deposited it (its slot is what counts: a
	// server's deposits die with it).
	From ipc.Endpoint
	// ID is the Deposit's.
	ID uint64
}

// Encode writes c into m.
func (c Collect) Encode(m *ipc.Message) { set(m, ipc.Collect, uint64(c.From), c.ID) }

// Decode reads c from m.
func (c *Collect) Decode(m *ipc.Message) { c.From, c.ID = ipc.Endpoint(word(m, 0)), word(m, 1) }

// set writes a type and its arguments, clearing the rest.
func set(m *ipc.Message, t ipc.Type, args ...uint64) {
	m.Type, m.Flags = t, 0
	m.Arg = [ipc.NumArgs]uint64{}
	copy(m.Arg[:], args)
}

func word(m *ipc.Message, i int) uint64 { return m.Arg[i] }

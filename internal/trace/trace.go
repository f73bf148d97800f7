// Package trace is the flight recorder every newtsim process carries: a
// fixed ring of time-stamp-counter stamps of what happened to its messages
// (put in a ring, taken out, the receiver going to sleep and waking, its
// handling beginning and ending). It is off by default, and then costs one
// predictable branch on an atomic bool at each hook; Enable turns it on for
// the life of the process.
//
// Events name processes by endpoint slot and messages by an identifier
// both ends compute alike (a ring's message number on user-space channels,
// a hash of the message on kernel messages), so the puts of one process and
// the takes of another are matched after the fact, from their rings'
// snapshots (package sim/timeline), with no stamp in the message itself.
package trace

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/newtsim/newtsim/internal/tsc"
)

// Kind says what an event records.
type Kind uint8

// Event kinds.
const (
	// Put: a message was published in a ring (or handed to the kernel)
	// for Dst. ID names it for the receiver's Take.
	Put Kind = 1 + iota
	// Take: a message from Src was taken out of the receiver's ring (or
	// read from its kernel connection).
	Take
	// Sleep: the receiver found nothing and went to sleep.
	Sleep
	// Wake: the receiver returned from its sleep.
	Wake
	// Begin: the role's handler began on the message last taken.
	Begin
	// End: the handler returned.
	End
	// Mark: a point the process names by ID (MarkTimed, MarkUntimed).
	Mark
)

// Marks' IDs.
const (
	// MarkTimed: a prober begins the calls it times.
	MarkTimed uint32 = 1 + iota
	// MarkUntimed: it has ended them.
	MarkUntimed
)

var kindNames = [...]string{Put: "put", Take: "take", Sleep: "sleep", Wake: "wake", Begin: "begin", End: "end", Mark: "mark"}

// String names the kind.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind?"
}

// Event is one stamp: 24 bytes.
type Event struct {
	TSC  uint64 // tsc.Read at the event
	ID   uint32 // the message's identifier, for Put and Take
	Type uint16 // the message's ipc.Type, for Put, Take and Begin
	Kind Kind
	Src  uint8 // sender's slot, for Put, Take and Begin
	Dst  uint8 // receiver's slot, for Put and Take
}

// Outside is the slot that names what lies outside the simulated host, in
// events of the frames its nic reads from and writes to its TAP device: a
// benchmark's client, which runs a recorder of its own under this slot. No
// endpoint has it (endpoint slots are below ipc.MaxSlots). Such events name
// a frame by the client's TCP port, which the client knows as its socket's
// local port.
const Outside = 255

// Size is the number of events a process keeps: the most recent Size
// events survive. A power of two: 12 MiB, enough for a few seconds of a
// benchmark's measured run at some 100,000 events a second (a server of the
// packet path at 5,000 requests a second), so that a breakdown follows the
// requests of the whole run, not of its end alone.
const Size = 1 << 19

var (
	on    atomic.Bool
	next  atomic.Uint64
	ring  *[Size]Event
	label struct {
		name, role string
		slot       int
	}
)

// On reports whether the recorder runs. Hooks test it before doing
// anything else: with the recorder off, a hook is this one load and branch.
func On() bool { return on.Load() }

// Enable allocates the ring and turns the recorder on, naming the process
// (its name, role and endpoint slot) for its snapshots. Call it once, at
// start-up, before any hook can run.
func Enable(name, role string, slot int) {
	if ring == nil {
		ring = new([Size]Event)
	}
	label.name, label.role, label.slot = name, role, slot
	on.Store(true)
}

// Disable turns the recorder off; the ring keeps what it holds.
func Disable() { on.Store(false) }

// Record stamps an event now. Several goroutines may record at once: each
// takes its own place in the ring. Only hooks that have seen On call it.
func Record(k Kind, typ uint16, src, dst int, id uint32) { RecordAt(tsc.Read(), k, typ, src, dst, id) }

// Stamp reads the counter for RecordAt.
func Stamp() uint64 { return tsc.Read() }

// RecordAt records an event stamped earlier: a put is stamped before the
// message is published and recorded once it was, so that a sender
// descheduled in between (in a system call, say) cannot stamp its put after
// the receiver took the message.
func RecordAt(at uint64, k Kind, typ uint16, src, dst int, id uint32) {
	r := ring
	if r == nil {
		return
	}
	i := next.Add(1) - 1
	r[i&(Size-1)] = Event{TSC: at, ID: id, Type: typ, Kind: k, Src: uint8(src), Dst: uint8(dst)}
}

// Snapshot is a copy of a process's ring, oldest event first.
type Snapshot struct {
	Process string `json:"process"`
	Role    string `json:"role"`
	Slot    int    `json:"slot"`
	// Recorded counts every event since Enable; Recorded - len(Events)
	// were overwritten.
	Recorded uint64  `json:"recorded"`
	Events   []Event `json:"events"`
}

// Copy copies the ring, oldest first. Events being written while it copies
// may come out torn; the analysis drops what does not match.
func Copy() Snapshot {
	s := Snapshot{Process: label.name, Role: label.role, Slot: label.slot}
	r := ring
	if r == nil {
		return s
	}
	n := next.Load()
	s.Recorded = n
	first := uint64(0)
	if n > Size {
		first = n - Size
	}
	s.Events = make([]Event, 0, n-first)
	for i := first; i < n; i++ {
		e := r[i&(Size-1)]
		if e.Kind != 0 {
			s.Events = append(s.Events, e)
		}
	}
	return s
}

// Path is where a process's metrics server serves its snapshot.
const Path = "/debug/trace"

// Handler serves Copy as JSON (404 while the recorder is off).
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !On() {
			http.Error(w, "trace: the recorder is off (start the run with --trace)", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Copy()) //nolint:errcheck // the client sees a short body
	})
}

// MarshalJSON writes e compactly, as [tsc, kind, type, src, dst, id]: a
// snapshot holds up to Size of them.
func (e Event) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 48)
	b = append(b, '[')
	b = strconv.AppendUint(b, e.TSC, 10)
	for _, v := range [...]uint64{uint64(e.Kind), uint64(e.Type), uint64(e.Src), uint64(e.Dst), uint64(e.ID)} {
		b = append(b, ',')
		b = strconv.AppendUint(b, v, 10)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Event) UnmarshalJSON(b []byte) error {
	var a []uint64
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("trace: event: %w", err)
	}
	if len(a) != 6 {
		return fmt.Errorf("trace: event %v: want 6 numbers", a)
	}
	if a[1] > 255 || a[2] > 65535 || a[3] > 255 || a[4] > 255 || a[5] > 1<<32-1 {
		return fmt.Errorf("trace: event %v out of range", a)
	}
	*e = Event{TSC: a[0], Kind: Kind(a[1]), Type: uint16(a[2]), Src: uint8(a[3]), Dst: uint8(a[4]), ID: uint32(a[5])}
	return nil
}

package timeline

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/newtsim/newtsim/internal/trace"
)

// ChromeEvent is one event of Chrome's trace event format (the JSON that
// Perfetto and chrome://tracing open): times in microseconds.
type ChromeEvent struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	TS   float64        `json:"ts"`
	Dur  float64        `json:"dur,omitempty"`
	PID  int            `json:"pid"`
	TID  int            `json:"tid"`
	ID   string         `json:"id,omitempty"`
	BP   string         `json:"bp,omitempty"`
	Args map[string]any `json:"args,omitempty"`
}

// Chrome is a whole trace file.
type Chrome struct {
	TraceEvents     []ChromeEvent `json:"traceEvents"`
	DisplayTimeUnit string        `json:"displayTimeUnit"`
}

// Threads of each process in the timeline.
const (
	tidLoop  = 1 // the loop: handling ("X") and sleeping ("X")
	tidInbox = 2 // messages waiting for the process (async slices)
)

// BuildChrome lays the snapshots out as a timeline: a process per traced
// server (pid = its slot, named), its handlings and its sleeps as
// complete ("X") slices on its loop's thread, every matched message as an
// async slice from put to take on its receiver's inbox track, with a flow
// arrow from sender to receiver. Times count from the oldest stamp.
func BuildChrome(snaps []trace.Snapshot, msgs []Message, hz float64) Chrome {
	var t0 uint64
	for _, s := range snaps {
		if len(s.Events) > 0 && (t0 == 0 || s.Events[0].TSC < t0) {
			t0 = s.Events[0].TSC
		}
	}
	ts := func(c uint64) float64 { return float64(int64(c-t0)) / hz * 1e6 }
	dur := func(a, b uint64) float64 { return float64(b-a) / hz * 1e6 }
	names := Names(snaps)
	var ev []ChromeEvent
	for _, s := range snaps {
		ev = append(ev,
			ChromeEvent{Name: "process_name", Ph: "M", PID: s.Slot, Args: map[string]any{"name": fmt.Sprintf("%s (%s)", s.Process, s.Role)}},
			ChromeEvent{Name: "process_sort_index", Ph: "M", PID: s.Slot, Args: map[string]any{"sort_index": s.Slot}},
			ChromeEvent{Name: "thread_name", Ph: "M", PID: s.Slot, TID: tidLoop, Args: map[string]any{"name": "loop"}},
			ChromeEvent{Name: "thread_name", Ph: "M", PID: s.Slot, TID: tidInbox, Args: map[string]any{"name": "inbox"}})
		var begin, sleep uint64
		var typ string
		for _, e := range s.Events {
			switch e.Kind {
			case trace.Begin:
				begin, typ = e.TSC, fmt.Sprintf("%s from %s", msgType(e.Type), names[int(e.Src)])
			case trace.End:
				if begin != 0 && e.TSC >= begin {
					ev = append(ev, ChromeEvent{Name: typ, Cat: "handle", Ph: "X", TS: ts(begin), Dur: dur(begin, e.TSC), PID: s.Slot, TID: tidLoop})
				}
				begin = 0
			case trace.Sleep:
				sleep = e.TSC
			case trace.Wake:
				if sleep != 0 && e.TSC >= sleep {
					ev = append(ev, ChromeEvent{Name: "asleep", Cat: "sleep", Ph: "X", TS: ts(sleep), Dur: dur(sleep, e.TSC), PID: s.Slot, TID: tidLoop})
				}
				sleep = 0
			}
		}
	}
	for i, m := range msgs {
		id := fmt.Sprint(i + 1)
		name := fmt.Sprintf("%s %s -> %s", m.Type, names[m.From], names[m.To])
		args := map[string]any{"queued_us": dur(0, m.Queued()), "wake_us": dur(0, m.Wakeup()), "service_us": dur(0, m.Service())}
		ev = append(ev,
			ChromeEvent{Name: name, Cat: "queue", Ph: "b", TS: ts(m.Put), PID: m.To, TID: tidInbox, ID: id, Args: args},
			ChromeEvent{Name: name, Cat: "queue", Ph: "e", TS: ts(m.Take), PID: m.To, TID: tidInbox, ID: id},
			ChromeEvent{Name: "message", Cat: "flow", Ph: "s", TS: ts(m.Put), PID: m.From, TID: tidLoop, ID: id},
			ChromeEvent{Name: "message", Cat: "flow", Ph: "f", BP: "e", TS: ts(max(m.Take, m.Begin)), PID: m.To, TID: tidLoop, ID: id})
	}
	slices.SortStableFunc(ev, func(a, b ChromeEvent) int {
		if a.Ph == "M" || b.Ph == "M" {
			return boolInt(b.Ph == "M") - boolInt(a.Ph == "M")
		}
		switch {
		case a.TS < b.TS:
			return -1
		case a.TS > b.TS:
			return 1
		}
		return 0
	})
	return Chrome{TraceEvents: ev, DisplayTimeUnit: "ns"}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func msgType(t uint16) string { return ipcType(t).String() }

// WriteChrome writes BuildChrome's timeline as JSON.
func WriteChrome(w io.Writer, snaps []trace.Snapshot, msgs []Message, hz float64) error {
	enc := json.NewEncoder(w)
	if err := enc.Encode(BuildChrome(snaps, msgs, hz)); err != nil {
		return fmt.Errorf("timeline: write the chrome trace: %w", err)
	}
	return nil
}

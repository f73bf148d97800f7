// Package timeline turns the trace recorders' snapshots (package
// internal/trace) of a run's processes into what a user reads: messages
// matched across processes (Match), a request's time hop by hop
// (Breakdown), and a timeline in Chrome's trace event format (WriteChrome)
// for Perfetto or chrome://tracing. Fetch gathers the snapshots from a
// running topology. Everything but Fetch is pure: snapshots in, figures
// out.
package timeline

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/internal/tsc"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/kernel"
)

// Message is one message followed from its sender's put to the end of its
// receiver's handling; stamps are time-stamp-counter readings, zero where
// the event was not recorded.
type Message struct {
	From, To int      // endpoint slots
	Type     ipc.Type //
	ID       uint32   // what both ends named it by: a ring's message number, a kernel message's hash, or a client's port (trace.Outside)
	Put      uint64   // the sender published it
	// Sleep and Wake bound the receiver's sleep when the message came in
	// while it slept (Sleep <= Put <= Wake); zero otherwise.
	Sleep, Wake uint64
	Take        uint64 // the receiver took it
	Begin, End  uint64 // the receiver's handler ran on it; zero when no handler did (a reply an application waited for)
}

// Queued is how long the message waited in the ring, besides its
// receiver's wake-up: put to take, less Wakeup.
func (m Message) Queued() uint64 { return m.Take - m.Put - m.Wakeup() }

// Wakeup is the receiver's wake-up latency for this message: from the put
// to the receiver's return from its sleep, when it slept.
func (m Message) Wakeup() uint64 {
	if m.Wake == 0 {
		return 0
	}
	return m.Wake - m.Put
}

// Service is the receiver's handling time.
func (m Message) Service() uint64 {
	if m.Begin == 0 || m.End < m.Begin {
		return 0
	}
	return m.End - m.Begin
}

type key struct {
	src, dst uint8
	id       uint32
}

// Match follows every message whose put and take are both in the
// snapshots. A take is matched with the latest put of the same sender,
// receiver and identifier not yet taken, made before it, among the puts
// made since the receiver's window began when its ring wrapped (an older
// one may have been taken before it). Identifiers repeat only on kernel
// messages (equal messages hash alike), and equal messages are not in
// flight together: a buffer reference is in one message at a time, and a
// caller waits for its call's reply. So the latest put is the message's
// own, and one whose put was lost costs that message alone.
// Messages come out in the order of their puts.
func Match(snaps []trace.Snapshot) []Message {
	puts := map[key][]uint64{}
	start := map[uint8]uint64{} // each process's oldest stamp, where its ring overwrote older ones
	for _, s := range snaps {
		if len(s.Events) > 0 && s.Recorded > uint64(len(s.Events)) {
			start[uint8(s.Slot)] = s.Events[0].TSC
		}
	}
	for _, s := range snaps {
		for _, e := range s.Events {
			if e.Kind == trace.Put && uint8(s.Slot) == e.Src {
				k := key{e.Src, e.Dst, e.ID}
				puts[k] = append(puts[k], e.TSC)
			}
		}
	}
	for k, ts := range puts {
		slices.Sort(ts)
		// Drop the puts older than a wrapped receiver's window: their
		// takes may have been overwritten.
		if st, ok := start[k.dst]; ok {
			i, _ := slices.BinarySearch(ts, st)
			puts[k] = ts[i:]
		}
	}
	used := map[key][]bool{}
	for k, ts := range puts {
		used[k] = make([]bool, len(ts))
	}
	var out []Message
	for _, s := range snaps {
		var sleep, wake uint64
		pending := -1 // the index in out of the last take, until its handler begins
		for _, e := range s.Events {
			switch e.Kind {
			case trace.Sleep:
				sleep, wake = e.TSC, 0
			case trace.Wake:
				if sleep != 0 {
					wake = e.TSC
				}
			case trace.Take:
				pending = -1
				if e.Dst != uint8(s.Slot) {
					continue
				}
				k := key{e.Src, e.Dst, e.ID}
				ts, taken := puts[k], used[k]
				i, _ := slices.BinarySearch(ts, e.TSC+1)
				for i--; i >= 0 && taken[i]; i-- {
				}
				if i < 0 {
					continue // its put is not in the window
				}
				taken[i] = true
				m := Message{From: int(e.Src), To: int(e.Dst), Type: ipc.Type(e.Type), ID: e.ID, Put: ts[i], Take: e.TSC}
				if wake != 0 && sleep <= m.Put && m.Put <= wake {
					m.Sleep, m.Wake = sleep, wake
				}
				out = append(out, m)
				pending = len(out) - 1
			case trace.Begin:
				if pending >= 0 && out[pending].From == int(e.Src) && out[pending].Type == ipc.Type(e.Type) && out[pending].Begin == 0 {
					out[pending].Begin = e.TSC
					continue
				}
				pending = -1
			case trace.End:
				if pending >= 0 && out[pending].Begin != 0 && out[pending].End == 0 {
					out[pending].End = e.TSC
				}
				pending = -1
			}
		}
	}
	slices.SortFunc(out, func(a, b Message) int { return cmp.Compare(a.Put, b.Put) })
	return out
}

// Names maps each traced process's slot to its name, with the kernel's.
func Names(snaps []trace.Snapshot) map[int]string {
	n := map[int]string{ipc.KernelSlot: "kernel"}
	for _, s := range snaps {
		n[s.Slot] = s.Process
	}
	return n
}

// Fetch reads the snapshot of each process from its metrics port (name to
// port), at trace.Path. A process whose recorder is off is an error.
func Fetch(ctx context.Context, ports map[string]int) ([]trace.Snapshot, error) {
	c := &http.Client{Timeout: 30 * time.Second} // a loaded machine serves a ring slowly
	var out []trace.Snapshot
	for _, name := range slices.Sorted(maps.Keys(ports)) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", ports[name], trace.Path), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("timeline: fetch %s's trace: %w", name, err)
		}
		var s trace.Snapshot
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("timeline: fetch %s's trace: %s (is the run started with --trace?)", name, resp.Status)
		}
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("timeline: decode %s's trace: %w", name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// ipcType converts a recorded type back.
func ipcType(t uint16) ipc.Type { return ipc.Type(t) }

// Capture fetches the snapshots of every live server of the run whose
// state is in stateDir (its status file names their metrics ports), and
// measures the time-stamp counter's rate (every process reads the same
// counter).
func Capture(ctx context.Context, stateDir string) ([]trace.Snapshot, float64, error) {
	st, err := kernel.ReadStatus(stateDir)
	if err != nil {
		return nil, 0, err
	}
	ports := map[string]int{}
	for _, p := range st.Processes {
		if p.Slot != ipc.KernelSlot && p.Alive && p.MetricsPort > 0 {
			ports[p.Name] = p.MetricsPort
		}
	}
	if len(ports) == 0 {
		return nil, 0, fmt.Errorf("timeline: no live server with a metrics port in %s", stateDir)
	}
	snaps, err := Fetch(ctx, ports)
	if err != nil {
		return nil, 0, err
	}
	return snaps, tsc.Calibrate(100 * time.Millisecond), nil
}

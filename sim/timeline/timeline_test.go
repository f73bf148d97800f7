package timeline

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/ipc"
)

// hz makes one counter tick a microsecond in these tests.
const hz = 1e6

func put(at uint64, src, dst uint8, id uint32, t ipc.Type) trace.Event {
	return trace.Event{TSC: at, Kind: trace.Put, Src: src, Dst: dst, ID: id, Type: uint16(t)}
}

func take(at uint64, src, dst uint8, id uint32, t ipc.Type) trace.Event {
	return trace.Event{TSC: at, Kind: trace.Take, Src: src, Dst: dst, ID: id, Type: uint16(t)}
}

func begin(at uint64, src uint8, t ipc.Type) trace.Event {
	return trace.Event{TSC: at, Kind: trace.Begin, Src: src, Type: uint16(t)}
}

func end(at uint64) trace.Event    { return trace.Event{TSC: at, Kind: trace.End} }
func sleep(at uint64) trace.Event  { return trace.Event{TSC: at, Kind: trace.Sleep} }
func wakeup(at uint64) trace.Event { return trace.Event{TSC: at, Kind: trace.Wake} }

func snap(name string, slot int, ev ...trace.Event) trace.Snapshot {
	return trace.Snapshot{Process: name, Role: name, Slot: slot, Recorded: uint64(len(ev)), Events: ev}
}

// wrapped marks s as a ring that overwrote older events.
func wrapped(s trace.Snapshot) trace.Snapshot { s.Recorded += trace.Size; return s }

func TestMatch(t *testing.T) {
	const a, b = 1, 2
	fr := ipc.FrameRx
	tests := []struct {
		name  string
		snaps []trace.Snapshot
		// want: queued, wake-up and service of each matched message, in
		// ticks, in put order
		want [][3]uint64
	}{
		{"receiver awake", []trace.Snapshot{
			snap("a", a, put(100, a, b, 0, fr)),
			snap("b", b, sleep(50), wakeup(60), take(103, a, b, 0, fr), begin(104, a, fr), end(110)),
		}, [][3]uint64{{3, 0, 6}}},
		{"receiver asleep", []trace.Snapshot{
			snap("a", a, put(100, a, b, 0, fr)),
			snap("b", b, sleep(90), wakeup(120), take(121, a, b, 0, fr), begin(121, a, fr), end(125)),
		}, [][3]uint64{{1, 20, 4}}},
		{"two in one wake-up, the second queued behind the first", []trace.Snapshot{
			snap("a", a, put(100, a, b, 7, fr), put(101, a, b, 8, fr)),
			snap("b", b, sleep(90), wakeup(110), take(111, a, b, 7, fr), begin(111, a, fr), end(120),
				take(121, a, b, 8, fr), begin(121, a, fr), end(130)),
		}, [][3]uint64{{1, 10, 9}, {11, 9, 9}}},
		{"equal identifiers (kernel messages): each take with the latest put before it", []trace.Snapshot{
			snap("a", a, put(100, a, b, 5, fr), put(200, a, b, 5, fr)),
			snap("b", b, take(105, a, b, 5, fr), take(207, a, b, 5, fr)),
		}, [][3]uint64{{5, 0, 0}, {7, 0, 0}}},
		{"equal identifiers: a message whose take was lost shifts no other", []trace.Snapshot{
			snap("a", a, put(100, a, b, 5, fr), put(200, a, b, 5, fr), put(300, a, b, 5, fr)),
			snap("b", b, take(205, a, b, 5, fr), take(304, a, b, 5, fr)),
		}, [][3]uint64{{5, 0, 0}, {4, 0, 0}}},
		{"a put older than a wrapped receiver's window is left out", []trace.Snapshot{
			snap("a", a, put(10, a, b, 5, fr), put(101, a, b, 5, fr)),
			wrapped(snap("b", b, sleep(50), take(105, a, b, 5, fr))),
		}, [][3]uint64{{4, 0, 0}}},
		{"a put older than a receiver's whole history is kept", []trace.Snapshot{
			snap("a", a, put(10, a, b, 5, fr)),
			snap("b", b, sleep(50), take(105, a, b, 5, fr)),
		}, [][3]uint64{{95, 0, 0}}},
		{"a take whose put was overwritten is left out", []trace.Snapshot{
			snap("a", a, put(200, a, b, 9, fr)),
			snap("b", b, take(105, a, b, 8, fr), take(205, a, b, 9, fr)),
		}, [][3]uint64{{5, 0, 0}}},
		{"a handler that begins on another message is not this one's", []trace.Snapshot{
			snap("a", a, put(100, a, b, 0, fr)),
			snap("b", b, take(103, a, b, 0, fr), begin(104, a, ipc.Ping), end(110)),
		}, [][3]uint64{{3, 0, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Match(tt.snaps)
			if len(got) != len(tt.want) {
				t.Fatalf("matched %d messages, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, m := range got {
				if g := [3]uint64{m.Queued(), m.Wakeup(), m.Service()}; g != tt.want[i] {
					t.Errorf("message %d: queued, wake-up, service = %v, want %v (%+v)", i, g, tt.want[i], m)
				}
			}
		})
	}
}

// A request's path a -> b -> a, with b's buffers going back beside it.
func TestCompute(t *testing.T) {
	const a, b = 1, 2
	var ea, eb []trace.Event
	// Ten requests: a puts at 1000i; b takes 2 later, answers 4 after
	// that and ends its handling 1 later; a takes the answer then. The
	// last request waits 20, not 2.
	for i := range uint64(10) {
		t0 := 1000 * (i + 1)
		q := uint64(2)
		if i == 9 {
			q = 20
		}
		ea = append(ea, put(t0, a, b, uint32(i), ipc.Datagram))
		eb = append(eb, take(t0+q, a, b, uint32(i), ipc.Datagram), begin(t0+q, a, ipc.Datagram),
			put(t0+q+4, b, a, uint32(i), ipc.Datagram), put(t0+q+4, b, a, uint32(100+i), ipc.BufFree), end(t0+q+5))
		ea = append(ea, take(t0+q+5, b, a, uint32(i), ipc.Datagram), take(t0+q+5, b, a, uint32(100+i), ipc.BufFree))
	}
	snaps := []trace.Snapshot{snap("a", a, ea...), snap("b", b, eb...)}
	msgs := Match(snaps)
	if len(msgs) != 30 {
		t.Fatalf("matched %d messages, want 30", len(msgs))
	}
	tests := []struct {
		name     string
		measured float64
		within   bool
		check    string
	}{
		{"adds up", 8.5, true, "within 10%"},
		{"does not", 20, false, "NOT within 10%"},
		{"nothing measured", 0, false, "no measured figure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bd := Compute(msgs, Names(snaps), []string{"a", "b", "a"}, hz, Options{MeasuredUS: tt.measured})
			if len(bd.Hops) != 2 || bd.Requests != 10 || bd.Started != 10 {
				t.Fatalf("%d of %d requests, hops %+v", bd.Requests, bd.Started, bd.Hops)
			}
			// b's service is from its take to its answer's put.
			h := bd.Hops[0]
			if h.Hop != "a -> b" || h.Requests != 10 || h.QueuedUS != 2 || h.QueuedP99US != 20 || h.WakeUS != 0 ||
				h.ServiceUS != 4 || h.TotalUS != 6 || math.Abs(h.TotalMeanUS-7.8) > 1e-9 {
				t.Errorf("a -> b: %+v", h)
			}
			// The answers: 1 queued, no handler (a waits for them); the
			// buffers going back are left out.
			if h := bd.Hops[1]; h.Requests != 10 || h.QueuedUS != 1 || h.ServiceUS != 0 || h.TotalMeanUS != 1 {
				t.Errorf("b -> a: %+v", h)
			}
			// The means add up to the requests' mean, put to take: 8.8.
			if math.Abs(bd.SumUS-8.8) > 1e-9 || bd.SumMedianUS != 7 || bd.RequestMedianUS != 7 || bd.Basis != "mean" || bd.Within10 != tt.within {
				t.Errorf("sum %v (medians %v, %s), within %v; want 8.8, 7, mean, %v", bd.SumUS, bd.SumMedianUS, bd.Basis, bd.Within10, tt.within)
			}
			if !strings.Contains(bd.Check, tt.check) || !strings.Contains(bd.Check, "a -> b holds the most") {
				t.Errorf("check %q lacks %q or the hop holding the time", bd.Check, tt.check)
			}
			if tab := bd.Table(); !strings.Contains(tab, "| a -> b | 10 |") || !strings.Contains(tab, "10 of 10 requests") {
				t.Errorf("table:\n%s", tab)
			}
		})
	}
}

// A message on the first hop that goes no further (a bare ACK) ends its
// way in, and does not take the next request's place.
func TestChainsSkipWhatGoesNowhere(t *testing.T) {
	const a, b, c = 1, 2, 3
	d := ipc.Datagram
	snaps := []trace.Snapshot{
		snap("a", a, put(100, a, b, 0, d), put(200, a, b, 1, d), take(208, b, a, 0, d)),
		snap("b", b, take(101, a, b, 0, d), take(201, a, b, 1, d), put(202, b, c, 0, d), take(206, c, b, 0, d), put(207, b, a, 0, d)),
		snap("c", c, take(203, b, c, 0, d), put(205, c, b, 0, d)),
	}
	cs, started := Chains(Match(snaps), Names(snaps), []string{"a", "b", "c", "b", "a"})
	if started != 2 || len(cs) != 1 || cs[0][0].Put != 200 || cs[0][1].Put != 202 || cs[0][3].Take != 208 {
		t.Fatalf("%d of %d chains: %+v; want the one from 200, through c, back at 208", len(cs), started, cs)
	}
}

// A request that is never answered (a wake-up that was no request) does
// not shift the answers of the requests after it.
func TestChainsUnansweredDoesNotShift(t *testing.T) {
	const a, b = 1, 2
	d := ipc.Datagram
	snaps := []trace.Snapshot{
		snap("a", a, put(100, a, b, 0, d), put(200, a, b, 1, d), take(206, b, a, 0, d), put(300, a, b, 2, d), take(306, b, a, 1, d)),
		snap("b", b, take(101, a, b, 0, d), take(201, a, b, 1, d), put(205, b, a, 0, d), take(301, a, b, 2, d), put(305, b, a, 1, d)),
	}
	cs, started := Chains(Match(snaps), Names(snaps), []string{"a", "b", "a"})
	if started != 3 || len(cs) != 2 || cs[0][0].Put != 200 || cs[0][1].Put != 205 || cs[1][0].Put != 300 || cs[1][1].Put != 305 {
		t.Fatalf("%d of %d chains: %+v; want 200 answered at 205, 300 at 305", len(cs), started, cs)
	}
}

// A put on the way back that nothing new caused (tcp answering on its own,
// say) is not tied to a message that already caused an earlier put, even
// where that earlier put's own way back was not followed.
func TestChainsBackNotFromAnOldCause(t *testing.T) {
	const a, b, c, d = 1, 2, 3, 4
	g := ipc.Datagram
	snaps := []trace.Snapshot{
		snap("a", a, put(100, a, b, 0, g), take(126, b, a, 0, g), take(236, b, a, 1, g)),
		snap("b", b, take(101, a, b, 0, g), put(102, b, c, 0, g),
			put(125, b, a, 0, g), take(127, c, b, 0, g), // an answer before c's message came: not followed
			take(231, c, b, 1, g), put(235, b, a, 1, g)),
		snap("c", c, take(103, b, c, 0, g), put(104, c, d, 0, g), take(121, d, c, 0, g), put(122, c, b, 0, g),
			put(230, c, b, 1, g)), // on its own: d's message at 121 caused the put at 122
		snap("d", d, take(105, c, d, 0, g), put(120, d, c, 0, g)),
	}
	cs, started := Chains(Match(snaps), Names(snaps), []string{"a", "b", "c", "d", "c", "b", "a"})
	if started != 1 || len(cs) != 0 {
		t.Fatalf("%d of %d chains: %+v; want none: the answer at 235 was not caused by d's message", len(cs), started, cs)
	}
}

// On the way back a request is followed from its last hop backwards, and
// the turning point's own calls between arrival and answer are its
// service: here c asks b something (a poll, say) before it answers.
func TestChainsTurningPointWithCallsOfItsOwn(t *testing.T) {
	const a, b, c = 1, 2, 3
	d := ipc.Datagram
	snaps := []trace.Snapshot{
		snap("a", a, put(100, a, b, 0, d), take(150, b, a, 0, d)),
		snap("b", b, take(101, a, b, 0, d), put(102, b, c, 0, d),
			take(111, c, b, 1, d), put(112, b, c, 1, d), // c's own call, answered
			take(121, c, b, 2, d), put(140, b, a, 0, d)), // c's answer, passed on
		snap("c", c, take(103, b, c, 0, d), put(110, c, b, 1, d), take(113, b, c, 1, d), put(120, c, b, 2, d)),
	}
	bd := Compute(Match(snaps), Names(snaps), []string{"a", "b", "c", "b", "a"}, hz, Options{MeasuredUS: 50})
	if bd.Requests != 1 {
		t.Fatalf("followed %d requests: %+v", bd.Requests, bd.Hops)
	}
	// b -> c: queued 1, c's service from 103 to its answer's put at 120.
	if h := bd.Hops[1]; h.QueuedUS != 1 || h.ServiceUS != 17 {
		t.Errorf("b -> c: %+v", h)
	}
	if h := bd.Hops[2]; h.QueuedUS != 1 || h.ServiceUS != 19 {
		t.Errorf("c -> b: %+v", h)
	}
	if bd.SumUS != 50 || !bd.Within10 {
		t.Errorf("sum %v, within %v; want 50 (put at 100 to take at 150)", bd.SumUS, bd.Within10)
	}
}

// From and back to the client, each way back joins a way in of its own
// connection (the client's port names both), not the latest to arrive:
// here B's request came in after A's and A's answer left first.
func TestChainsJoinByConnection(t *testing.T) {
	const o, w = trace.Outside, 8
	const portA, portB = 40000, 40001
	rx, tx := ipc.FrameRx, ipc.FrameTx
	snaps := []trace.Snapshot{
		snap("client", o, put(100, o, w, portA, rx), put(120, o, w, portB, rx), take(210, w, o, portA, tx), take(310, w, o, portB, tx)),
		snap("web", w, take(110, o, w, portA, rx), take(130, o, w, portB, rx), put(200, w, o, portA, tx), put(300, w, o, portB, tx)),
	}
	bd := Compute(Match(snaps), Names(snaps), []string{"client", "web", "client"}, hz, Options{MeasuredUS: 150})
	if bd.Requests != 2 || bd.SumUS != (110+190)/2 || !bd.Within10 {
		t.Fatalf("followed %d requests adding up to %v us; want A's 110 and B's 190: mean 150", bd.Requests, bd.SumUS)
	}
	if bd.ClientRequests != 2 || bd.ClientMeanUS != 150 {
		t.Errorf("the client's stamps: %d requests, mean %v; want 2, 150", bd.ClientRequests, bd.ClientMeanUS)
	}
}

// A connection's answer joins no way in that left the client before the
// connection's answer before it, even where that answer was not followed
// (its way back broke) and the request after it was not followed in.
func TestChainsJoinNotAcrossAnAnswer(t *testing.T) {
	const o, b, c = trace.Outside, 2, 3
	const port = 40000
	rx, tx, d := ipc.FrameRx, ipc.FrameTx, ipc.Datagram
	snaps := []trace.Snapshot{
		snap("client", o, put(100, o, b, port, rx), take(160, b, o, port, tx), put(170, o, b, port, rx), take(260, b, o, port, tx)),
		snap("b", b, take(101, o, b, port, rx), put(102, b, c, 0, d), // the first request, on to c
			put(150, b, o, port, tx),  // answered by b alone: c's answer never comes
			take(171, o, b, port, rx), // the second request goes no further
			take(251, c, b, 1, d), put(255, b, o, port, tx)),
		snap("c", c, take(103, b, c, 0, d), put(250, c, b, 1, d)),
	}
	cs, started := Chains(Match(snaps), Names(snaps), []string{"client", "b", "c", "b", "client"})
	if started != 2 || len(cs) != 0 {
		t.Fatalf("%d of %d chains: %+v; want none: the answer at 260 is not the request of 100's", len(cs), started, cs)
	}
	// The client's own stamps still show both requests: 60 and 90.
	bd := Compute(Match(snaps), Names(snaps), []string{"client", "b", "c", "b", "client"}, hz, Options{MeasuredUS: 75})
	if bd.Requests != 0 || bd.ClientRequests != 2 || bd.ClientMeanUS != 75 || bd.Within10 {
		t.Errorf("followed %d; the client's stamps %d requests, mean %v; within %v; want 0, 2, 75, false",
			bd.Requests, bd.ClientRequests, bd.ClientMeanUS, bd.Within10)
	}
}

// The same loop with the sums of medians and the first process's own time.
func TestComputeClosedLoop(t *testing.T) {
	const a, b = 1, 2
	var ea, eb []trace.Event
	for i := range uint64(10) {
		t0 := 1000 * (i + 1)
		ea = append(ea, put(t0, a, b, uint32(i), ipc.Datagram), take(t0+10, b, a, uint32(i), ipc.Datagram))
		eb = append(eb, take(t0+2, a, b, uint32(i), ipc.Datagram), put(t0+8, b, a, uint32(i), ipc.Datagram))
	}
	snaps := []trace.Snapshot{snap("a", a, ea...), snap("b", b, eb...)}
	bd := Compute(Match(snaps), Names(snaps), []string{"a", "b", "a"}, hz, Options{MeasuredUS: 1000, Median: true, ClosedLoop: true})
	if len(bd.Hops) != 3 {
		t.Fatalf("hops %+v", bd.Hops)
	}
	// a -> b: 2 queued, 6 in b; b -> a: 2 queued. Nine answers are
	// followed by a call, 990 after; the last is not.
	if h := bd.Hops[0]; h.TotalUS != 8 || h.ServiceUS != 6 {
		t.Errorf("a -> b: %+v", h)
	}
	if h := bd.Hops[2]; h.Hop != "a (own time)" || h.Requests != 9 || h.ServiceUS != 990 || h.TotalUS != 990 {
		t.Errorf("own time: %+v", h)
	}
	if bd.Basis != "median" || bd.SumUS != 8+2+990 || bd.RequestMedianUS != 1000 || !bd.Within10 {
		t.Errorf("basis %s, sum %v, request median %v, within %v; want median, 1000, 1000, true", bd.Basis, bd.SumUS, bd.RequestMedianUS, bd.Within10)
	}
	// Timed as a prober does, in batches of 3 calls: every call is 1000
	// from the next.
	bd = Compute(Match(snaps), Names(snaps), []string{"a", "b", "a"}, hz, Options{MeasuredUS: 1000, ClosedLoop: true, Batch: 3})
	if bd.Basis != "batch" || bd.SumUS != 1000 || !bd.Within10 {
		t.Errorf("batch basis %s, sum %v, within %v; want batch, 1000, true", bd.Basis, bd.SumUS, bd.Within10)
	}
}

// The prober's batches are the calls it timed, as it marked them: four
// calls 1000 apart (the fifth's put ends them), then a pass of nine it
// counted but did not time, the last eight 5000 apart, are timed as the
// first four alone.
func TestComputeBatchesOfTimedCalls(t *testing.T) {
	const a, b = 1, 2
	var ea, eb []trace.Event
	t0 := uint64(0)
	for i := range uint64(13) {
		if t0 += 1000; i > 4 {
			t0 += 4000
		}
		if i == 0 {
			ea = append(ea, trace.Event{TSC: t0 - 1, Kind: trace.Mark, ID: trace.MarkTimed})
		}
		ea = append(ea, put(t0, a, b, uint32(i), ipc.Datagram), take(t0+10, b, a, uint32(i), ipc.Datagram))
		if i == 3 {
			ea = append(ea, trace.Event{TSC: t0 + 11, Kind: trace.Mark, ID: trace.MarkUntimed})
		}
		eb = append(eb, take(t0+2, a, b, uint32(i), ipc.Datagram), put(t0+8, b, a, uint32(i), ipc.Datagram))
	}
	snaps := []trace.Snapshot{snap("a", a, ea...), snap("b", b, eb...)}
	from, to, ok := Marked(snaps, "a")
	if !ok || from != 999 || to != 4011 {
		t.Fatalf("marked %d to %d (%v), want 999 to 4011", from, to, ok)
	}
	if _, _, ok := Marked(snaps, "b"); ok {
		t.Error("b marked nothing, yet Marked says it did")
	}
	for _, tt := range []struct {
		from, to uint64
		want     float64
	}{{from, to, 1000}, {0, 0, 5000}} { // unmarked: every call
		bd := Compute(Match(snaps), Names(snaps), []string{"a", "b", "a"}, hz,
			Options{MeasuredUS: 1000, ClosedLoop: true, Batch: 2, TimedFrom: tt.from, TimedTo: tt.to})
		if bd.SumUS != tt.want || bd.Requests != 13 {
			t.Errorf("timed %d to %d: sum %v of %d calls, want %v of 13", tt.from, tt.to, bd.SumUS, bd.Requests, tt.want)
		}
	}
}

func TestChrome(t *testing.T) {
	const a, b = 1, 2
	snaps := []trace.Snapshot{
		snap("nic", a, sleep(900), wakeup(950), take(960, b, a, 3, ipc.FrameTx), begin(961, b, ipc.FrameTx), end(970),
			put(1000, a, b, 0, ipc.FrameRx)),
		snap("driver", b, put(955, b, a, 3, ipc.FrameTx), sleep(990), wakeup(1010), take(1011, a, b, 0, ipc.FrameRx),
			begin(1012, a, ipc.FrameRx), end(1020)),
	}
	var buf bytes.Buffer
	if err := WriteChrome(&buf, snaps, Match(snaps), hz); err != nil {
		t.Fatal(err)
	}
	var tr struct {
		TraceEvents []map[string]any `json:"traceEvents"`
	}
	if err := json.Unmarshal(buf.Bytes(), &tr); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	count := map[string]int{}
	named := map[float64]string{}
	for _, e := range tr.TraceEvents {
		ph, pid := e["ph"].(string), e["pid"].(float64)
		count[ph]++
		if ph == "M" && e["name"] == "process_name" {
			named[pid] = e["args"].(map[string]any)["name"].(string)
		}
		if ph == "X" && e["cat"] == "handle" && e["dur"].(float64) <= 0 {
			t.Errorf("a handling without a duration: %v", e)
		}
	}
	if named[a] != "nic (nic)" || named[b] != "driver (driver)" {
		t.Errorf("process names %v", named)
	}
	// Two handlings and two sleeps; two messages, each an async slice
	// (b, e) and a flow (s, f).
	for ph, n := range map[string]int{"X": 4, "b": 2, "e": 2, "s": 2, "f": 2} {
		if count[ph] != n {
			t.Errorf("%d events of phase %s, want %d (all: %v)", count[ph], ph, n, count)
		}
	}
}

func TestSVG(t *testing.T) {
	const a, b = 1, 2
	snaps := []trace.Snapshot{
		snap("driver", b, put(955, b, a, 3, ipc.FrameTx), sleep(990), wakeup(1010), take(1011, a, b, 0, ipc.FrameRx),
			begin(1012, a, ipc.FrameRx), end(1020), take(2001, a, b, 1, ipc.FrameRx)),
		snap("nic", a, sleep(900), wakeup(950), take(960, b, a, 3, ipc.FrameTx), begin(961, b, ipc.FrameTx), end(970),
			put(1000, a, b, 0, ipc.FrameRx), put(2000, a, b, 1, ipc.FrameRx)),
	}
	msgs := Match(snaps)
	// The last frame up has no 30us after it in the record: the one before.
	start, ok := Window(msgs, Names(snaps), "nic", ipc.FrameRx, 30*time.Microsecond, hz)
	if !ok || start != 999 {
		t.Fatalf("window from %d (%v), want 999, just before the put at 1000", start, ok)
	}
	var buf bytes.Buffer
	if err := WriteSVG(&buf, snaps, msgs, hz, start, 30*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&buf)
	var lanes []string
	rects := 0
	inLane := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			inLane = e.Name.Local == "text" && len(e.Attr) > 0 && e.Attr[0].Value == "8"
			if e.Name.Local == "rect" {
				rects++
			}
		case xml.EndElement:
			inLane = false
		case xml.CharData:
			if inLane {
				lanes = append(lanes, string(e))
			}
		}
	}
	// The nic's lane first (the packet path bottom up); the background,
	// and the driver's sleep and handling in the window (the nic's are
	// before it).
	if len(lanes) != 2 || lanes[0] != "nic" || lanes[1] != "driver" || rects != 3 {
		t.Errorf("lanes %v, %d rects; want nic, driver and 3", lanes, rects)
	}
}

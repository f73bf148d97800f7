package bench

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/sim/timeline"
)

func TestBreakdownPaths(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"http message", requestPath("message", "web", 1),
			[]string{"nic", "driver", "pf", "ip", "tcp", "syscall", "web", "syscall", "tcp", "ip", "pf", "driver", "nic"}},
		{"http message, ten in flight", requestPath("message", "web", 10),
			[]string{"nic", "driver", "pf", "ip", "tcp", "syscall", "web", "syscall", "tcp", "ip", "pf", "driver", "nic"}},
		{"http exposed", requestPath("exposed", "web", 1),
			[]string{"nic", "driver", "pf", "ip", "tcp", "web", "tcp", "ip", "pf", "driver", "nic"}},
		{"http exposed, ten in flight", requestPath("exposed", "web", 10),
			[]string{"nic", "driver", "pf", "ip", "tcp", "ip", "pf", "driver", "nic"}},
		{"from the client", clientPath(requestPath("message-direct", "web", 1)),
			[]string{"client", "nic", "driver", "pf", "ip", "tcp", "web", "tcp", "ip", "pf", "driver", "nic", "client"}},
		{"eagain message", callPath("message", "app"), []string{"app", "syscall", "tcp", "syscall", "app"}},
		{"eagain direct", callPath("message-direct", "app"), []string{"app", "tcp", "app"}},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// TestBreakdownCheck: a breakdown whose hops add up to less than 90% (or
// more than 110%) of the measured mean fails the report's check; one
// within passes; one with nothing measured is no check.
func TestBreakdownCheck(t *testing.T) {
	const a, b = 1, 2
	// Ten requests, each 10 ticks (us) from a's put to its answer's take.
	var ea, eb []trace.Event
	for i := range uint64(10) {
		t0 := 1000 * (i + 1)
		ea = append(ea, trace.Event{TSC: t0, Kind: trace.Put, Src: a, Dst: b, ID: uint32(i)},
			trace.Event{TSC: t0 + 10, Kind: trace.Take, Src: b, Dst: a, ID: uint32(i)})
		eb = append(eb, trace.Event{TSC: t0 + 3, Kind: trace.Take, Src: a, Dst: b, ID: uint32(i)},
			trace.Event{TSC: t0 + 8, Kind: trace.Put, Src: b, Dst: a, ID: uint32(i)})
	}
	snaps := []trace.Snapshot{{Process: "a", Slot: a, Recorded: 20, Events: ea}, {Process: "b", Slot: b, Recorded: 20, Events: eb}}
	tests := []struct {
		measured float64
		met      bool
	}{
		{10 / 0.89, false}, // the hops hold 89% of the mean
		{10 / 0.5, false},
		{10 / 0.91, true},
		{10, true},
		{10 / 1.09, true},
		{10 / 1.11, false},
	}
	for _, tt := range tests {
		bd := timeline.Compute(timeline.Match(snaps), timeline.Names(snaps), []string{"a", "b", "a"}, 1e6,
			timeline.Options{MeasuredUS: tt.measured})
		if bd.Requests != 10 || bd.SumUS != 10 {
			t.Fatalf("followed %d requests adding up to %v us, want 10 and 10", bd.Requests, bd.SumUS)
		}
		r := &HTTPReport{Breakdowns: []CellBreakdown{{Server: "s", Workload: "w", Breakdown: bd}}}
		r.judge()
		c := r.Checks[len(r.Checks)-1]
		if !strings.Contains(c.Name, "breakdown") || c.Met != tt.met || math.Abs(c.Value-10/tt.measured) > 1e-9 {
			t.Errorf("measured %.2f: check %+v, want met %v", tt.measured, c, tt.met)
		}
		if want := map[bool]string{true: ": within 10%", false: ": NOT within 10%"}[tt.met]; !strings.Contains(bd.Check, want) {
			t.Errorf("measured %.2f: %q lacks %q", tt.measured, bd.Check, want)
		}
	}
	r := &HTTPReport{Breakdowns: []CellBreakdown{{Server: "s", Workload: "w"}}}
	r.judge()
	for _, c := range r.Checks {
		if strings.Contains(c.Name, "breakdown") {
			t.Errorf("a check %+v of a breakdown with no measured figure", c)
		}
	}
}

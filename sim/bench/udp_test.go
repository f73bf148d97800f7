package bench

import (
	"strings"
	"testing"

	"github.com/newtsim/newtsim/sim/bench/probe"
)

// The report gives each stream row's throughput beside its unpaced
// stream, as a fraction of Linux's, and says so when the unpaced stream
// itself delivered enough or no trial did down to the floor.
func TestStreamReport(t *testing.T) {
	s := probe.Search{Trial: 5000, Deliver: 0.99, Resolution: 0.05}
	row := func(name string, th probe.Throughput) StreamRow {
		th.Search = s
		return StreamRow{Name: name, StreamResult: probe.StreamResult{Sent: 10000, Received: 4000, Offered: 20000}, Throughput: &th}
	}
	rep := &Report{Bench: "udp", Streams: []StreamRow{
		row("message-shm", probe.Throughput{Ceiling: 20000, Floor: 1250, Rate: 5000, Target: 5100, Mbits: 2.56,
			At: probe.StreamResult{Sent: 5000, Received: 4990}, Trials: make([]probe.TrialResult, 6)}),
		row("message-kernel", probe.Throughput{Ceiling: 20000, Floor: 1250, Trials: make([]probe.TrialResult, 4)}),
		row("monolith", probe.Throughput{Ceiling: 20000, Floor: 1250, Rate: 20000, Unpaced: true, At: probe.StreamResult{Sent: 10000, Received: 9950}}),
		row("linux", probe.Throughput{Ceiling: 20000, Floor: 1250, Rate: 40000, Target: 40000, At: probe.StreamResult{Sent: 5000, Received: 5000}}),
	}}
	rep.Notes = streamNotes(rep.Streams, UDPOptions{Size: 64, Search: s})
	rep.Checks = streamChecks(rep.Streams, s)
	if len(rep.Checks) != 1 || rep.Checks[0].Value != 0.4 || rep.Checks[0].Met {
		t.Errorf("checks %+v, want message-shm's unpaced 4000 of 10000, not met", rep.Checks)
	}
	rep.Streams[0].Received = 9900 // 99%: met, whatever the search found
	if c := streamChecks(rep.Streams, s); len(c) != 1 || !c[0].Met {
		t.Errorf("checks %+v with 9900 of 10000 delivered unpaced, want met", c)
	}
	rep.Checks = streamChecks(rep.Streams[1:], s)
	if len(rep.Checks) != 0 {
		t.Errorf("checks %+v without a message-shm row, want none", rep.Checks)
	}
	rep.Streams[0] = row("message-shm", probe.Throughput{Ceiling: 20000, Floor: 1250, Rate: 5000, Target: 5100, Mbits: 2.56,
		At: probe.StreamResult{Sent: 5000, Received: 4990}, Trials: make([]probe.TrialResult, 6)})
	md := rep.Table()
	for _, want := range []string{
		"| message-shm | 5000 | 5100 | 2.56 | 0.125 | 4990 of 5000 | 20000, 1250 | 6 |",
		"| message-kernel | < 1250 (floor) | - | 0.00 | 0.000 | 0 of 0 | 20000, 1250 | 4 |",
		"| monolith | ≥ 20000 (unpaced) |",
		"| linux | 40000 | 40000 | 0.00 | 1.000 |",
		"| message-shm | 0 | 4000 of 10000 | 20000 |",
		"stream message-shm: throughput 5000 datagrams/s offered",
		"; 0.125 of Linux's",
		"stream message-kernel: throughput below the floor, 1250 datagrams/s",
		"stream monolith: throughput at least the unpaced rate, 20000 datagrams/s",
		"delivered at least 99% of them",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}

package bench

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/bench/probe"
	"github.com/newtsim/newtsim/sim/timeline"
)

// This file is the benchmarks' --breakdown: the simulated host's servers
// run with their trace recorders on (package internal/trace), and once a
// measured run ends its processes' rings are read, their messages matched
// and laid along the request's path, one row per hop (package
// sim/timeline). The rows' sum is compared with what the load generator
// measured.

// CellBreakdown is the breakdown of one measured cell.
type CellBreakdown struct {
	Server   string `json:"server"`
	Workload string `json:"workload"`
	// Measured says what MeasuredMeanUS is.
	Measured string `json:"measured"`
	timeline.Breakdown
}

// requestPath is the processes a request crosses on the simulated host, in
// order, from the nic to the application app and back, for a socket
// library backend with inFlight requests at once: the message backend goes
// through syscall, the others reach tcp directly. With exposed sockets and
// more than one request in flight the path turns at tcp: a busy
// application finds a request in its socket's shared buffer with no message
// from tcp, and one doorbell sends several answers, so the application's
// turn is tcp's service on the hop "ip -> tcp" (docs/LATENCY.md).
func requestPath(backend, app string, inFlight int) []string {
	in := []string{"nic", "driver", "pf", "ip", "tcp"}
	if backend == "message" {
		in = append(in, "syscall")
	}
	path := append([]string{}, in...)
	if backend != "exposed" || inFlight <= 1 {
		path = append(path, app)
	} else {
		in = in[:len(in)-1]
	}
	for i := len(in) - 1; i >= 0; i-- {
		path = append(path, in[i])
	}
	return path
}

// callPath is the processes a socket call from app crosses and back.
func callPath(backend, app string) []string {
	if backend == "message-direct" {
		return []string{app, "tcp", app}
	}
	return []string{app, "syscall", "tcp", "syscall", app}
}

// clientPath is path from and back to the client: the client's own
// snapshot stamps its requests as messages to the nic and its responses as
// messages from it.
func clientPath(path []string) []string {
	return append(append([]string{clientName}, path...), clientName)
}

// clientName is the client's process name in the breakdown (its snapshot's).
const clientName = "client"

// traceBreakdown reads the rings of the run whose state is in stateDir,
// with more snapshots recorded elsewhere (the client's), and breaks its
// requests down along path.
func traceBreakdown(ctx context.Context, stateDir string, more []trace.Snapshot, path []string, o timeline.Options) (timeline.Breakdown, error) {
	snaps, hz, err := timeline.Capture(ctx, stateDir)
	if err != nil {
		return timeline.Breakdown{}, fmt.Errorf("breakdown: %w", err)
	}
	snaps = append(snaps, more...)
	if o.Batch > 0 {
		// The calls the prober timed, as it marked them.
		o.TimedFrom, o.TimedTo, _ = timeline.Marked(snaps, path[0])
	}
	return timeline.Compute(timeline.Match(snaps), timeline.Names(snaps), path, hz, o), nil
}

// processSlot is the endpoint slot of the process name of the run whose
// state is in stateDir.
func processSlot(stateDir, name string) (int, error) {
	st, err := kernel.ReadStatus(stateDir)
	if err != nil {
		return 0, fmt.Errorf("breakdown: %w", err)
	}
	for _, p := range st.Processes {
		if p.Name == name {
			return p.Slot, nil
		}
	}
	return 0, fmt.Errorf("breakdown: no process %q in %s", name, stateDir)
}

// httpBreakdown adds the breakdown of the cell just measured on side to
// the report; a Linux server has no trace to read.
func (r *HTTPReport) httpBreakdown(ctx context.Context, side *httpSide, w HTTPWorkload, cell HTTPCell, progress io.Writer) error {
	if side.state == "" {
		return nil
	}
	path, more := requestPath(side.server.Backend, "web", r.Connections), []trace.Snapshot(nil)
	measured := "the load generator's mean latency over the measured run (Linux client in a namespace, over the TAP); " +
		"the traced hops start and end at the nic, so the client's side and the TAP are not in them"
	if cell.clientTrace != nil {
		path, more = clientPath(path), []trace.Snapshot{*cell.clientTrace}
		measured = "the load generator's mean latency over the measured run (Linux client in a namespace, over the TAP), " +
			"from a request's first byte written to its response read in full; the client stamps both, " +
			"so the first and last hops hold the client's side, Linux's TCP and the TAP"
	}
	b, err := traceBreakdown(ctx, side.state, more, path, timeline.Options{MeasuredUS: us(cell.Report.Latency.Mean)})
	if err != nil {
		return fmt.Errorf("bench http: %s, %s: %w", w.Name, side.server.Name, err)
	}
	cb := CellBreakdown{Server: side.server.Name, Workload: w.Name, Breakdown: b, Measured: measured}
	r.Breakdowns = append(r.Breakdowns, cb)
	if r.Breakdown == nil {
		r.Breakdown = &cb
	}
	r.Notes = append(r.Notes, fmt.Sprintf("breakdown of %s on %s: %s", w.Name, side.server.Name, b.Check))
	printBreakdown(progress, cb)
	return nil
}

// eagainBreakdown adds the breakdown of an eagain row measured on the run
// whose state is in stateDir.
func (r *EagainReport) eagainBreakdown(ctx context.Context, row, backend, stateDir string, res probe.EagainResult, progress io.Writer) error {
	batch := 0
	if res.Batches > 0 {
		batch = res.RoundTrips / res.Batches
	}
	b, err := traceBreakdown(ctx, stateDir, nil, callPath(backend, "app"),
		timeline.Options{MeasuredUS: res.NS / 1e3, ClosedLoop: true, Batch: batch})
	if err != nil {
		return fmt.Errorf("bench eagain: %s: %w", row, err)
	}
	cb := CellBreakdown{Server: row, Workload: "recvfrom-eagain", Breakdown: b,
		Measured: "the probe's time per call (the median over batches of each batch's mean), against the traced calls timed alike"}
	r.Breakdowns = append(r.Breakdowns, cb)
	if r.Breakdown == nil {
		r.Breakdown = &cb
	}
	r.Notes = append(r.Notes, fmt.Sprintf("breakdown of %s: %s", row, b.Check))
	printBreakdown(progress, cb)
	return nil
}

// breakdownChecks are the report's checks of its breakdowns: each traced
// cell's hops add up to its measured figure within 10%.
func breakdownChecks(bs []CellBreakdown) []Check {
	var cs []Check
	for _, cb := range bs {
		if cb.MeasuredMeanUS <= 0 {
			continue
		}
		cs = append(cs, Check{Name: fmt.Sprintf("%s on %s: the breakdown's hops added up (%s) / the measured figure",
			cb.Workload, cb.Server, cb.Basis), Value: cb.SumUS / cb.MeasuredMeanUS, Target: "0.9 to 1.1", Met: cb.Within10})
	}
	return cs
}

// printBreakdown writes a cell's breakdown as a table.
func printBreakdown(w io.Writer, cb CellBreakdown) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, "\nbreakdown: %s, %s (measured: %s; window %.0f ms)\n%s\n", cb.Server, cb.Workload, cb.Measured, cb.WindowMS,
		strings.TrimRight(cb.Table(), "\n"))
}

// breakdownMarkdown is the report's breakdown section, empty without one.
func breakdownMarkdown(bs []CellBreakdown) string {
	var sb strings.Builder
	for _, cb := range bs {
		fmt.Fprintf(&sb, "\n## Breakdown: %s, %s\n\nMeasured: %s. Window: the followed requests span %.0f ms.\n\n%s",
			cb.Server, cb.Workload, cb.Measured, cb.WindowMS, cb.Table())
	}
	return sb.String()
}

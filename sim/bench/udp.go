package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/sim/bench/probe"
	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/machine"
	"github.com/newtsim/newtsim/sim/topology"
)

// UDPOptions configure the UDP benchmark.
type UDPOptions struct {
	CPUs     []int     // nil: every online CPU
	Progress io.Writer // a line per row as it runs; nil for none
	Log      *os.File  // the processes' logs; nil: discarded
	Command  string    // recorded in the report
	Size     int       // datagram size; 0: 64 bytes
	// Search is the streams' throughput search: Trial 0 takes
	// probe.DefaultTrial, Deliver 0 probe.DefaultDeliver (1 is RFC 2544's
	// zero loss), Resolution 0 probe.DefaultResolution.
	Search probe.Search
}

// UDP runs `newtsim bench udp`: round trips of a datagram between two
// applications, through the multiserver stack with the message backend
// (over user-space channels, and over kernel messages), through a
// monolithic host (the same engines in one process, sim/host) and through
// Linux's loopback, in one run; then one-way streams over the same paths. The applications on the simulated host talk over
// its loopback interface: client, syscall, udp, ip and back.
func UDP(ctx context.Context, o UDPOptions) (*Report, error) {
	cpus, log, done, err := prepare("udp", o.CPUs, o.Log)
	if err != nil {
		return nil, err
	}
	defer done()
	o.Log = log
	if o.Size == 0 {
		o.Size = 64
	}
	if o.Search.Trial == 0 {
		o.Search.Trial = probe.DefaultTrial
	}
	o.Search = o.Search.Defaults()
	a, b := cpus[0], cpus[1]
	dir, err := os.MkdirTemp("", "newtsim-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rep := &Report{Bench: "udp", Command: o.Command, Time: time.Now().UTC(), Machine: machine.Detect(),
		CorePlan: fmt.Sprintf("client alone on CPU %d; the echo application and the stack as the derived plan puts them (CPU %d here)", a, b)}
	size := strconv.Itoa(o.Size)
	for _, tr := range []topology.Transport{topology.Shm, topology.Kernel} {
		out := filepath.Join(dir, "udp-"+string(tr)+".json")
		t := topology.Default()
		t.Name, t.Transport = "bench-udp", tr
		t.Processes = append(t.Processes,
			topology.Process{Name: "echo", Role: "udpecho", Args: []string{"--port", "7"}},
			topology.Process{Name: "client", Role: "udpping", Cores: []int{a},
				Args: []string{"--target", "127.0.0.1:7", "--size", size, "--out", out}})
		t.Links = append(t.Links, topology.Link{A: "echo", B: "syscall"}, topology.Link{A: "client", B: "syscall"})
		h, err := launch.Start(ctx, launch.Options{StateDir: filepath.Join(dir, "state"), Topology: t, CPUs: cpus, Log: o.Log})
		if err != nil {
			return nil, fmt.Errorf("bench udp: %s: %w", tr, err)
		}
		res, err := readResult(out, 60*time.Second, nil)
		plan := h.Plan.Summary()
		h.Stop()
		if err != nil {
			return nil, fmt.Errorf("bench udp: %s: %w", tr, err)
		}
		name := "message-" + string(tr)
		rep.Rows = append(rep.Rows, Row{Name: name, Sample: res.Sample, Placement: plan, Wait: "as planned",
			What: fmt.Sprintf("client send+recv of %d B to the echo app, each call a message to syscall (then udp), over %s", o.Size, tr)})
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "  %-16s %10.0f ns %10.0f cycles\n", name, res.NS, res.Cycles)
		}
	}
	out := filepath.Join(dir, "udp-monolith.json")
	if err := monolithUDP("udp-ping-monolith", out, a, b, o); err != nil {
		return nil, fmt.Errorf("bench udp: monolith: %w", err)
	}
	mres, err := readResult(out, 5*time.Second, nil)
	if err != nil {
		return nil, err
	}
	rep.Rows = append(rep.Rows, Row{Name: "monolith", Sample: mres.Sample, Placement: monolithPlacement(a, b), Wait: "block",
		What: fmt.Sprintf("the same client and echo program as goroutines of one process, over the loopback of a monolithic "+
			"host (the ip and udp engines linked in the process, sim/host; every call a function call), %d B", o.Size)})
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "  %-16s %10.0f ns %10.0f cycles\n", "monolith", mres.NS, mres.Cycles)
	}
	out = filepath.Join(dir, "udp-linux.json")
	if err := linuxUDP(out, a, b, o); err != nil {
		return nil, fmt.Errorf("bench udp: linux: %w", err)
	}
	res, err := readResult(out, 5*time.Second, nil)
	if err != nil {
		return nil, err
	}
	rep.Rows = append(rep.Rows, Row{Name: "linux", Sample: res.Sample, Placement: fmt.Sprintf("client=%d echo=%d", a, b),
		Wait: "block", What: fmt.Sprintf("the same client and echo program on Linux UDP sockets over loopback, %d B", o.Size)})
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "  %-16s %10.0f ns %10.0f cycles\n", "linux", res.NS, res.Cycles)
	}
	for _, r := range rep.Rows {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %.0f round trips per second (one at a time)", r.Name, 1e9/r.NS))
	}
	if err := udpStreams(ctx, rep, dir, cpus, o); err != nil {
		return nil, err
	}
	rep.Notes = append(rep.Notes, streamNotes(rep.Streams, o)...)
	rep.Checks = append(rep.Checks, streamChecks(rep.Streams, o.Search)...)
	return rep, nil
}

// streamChecks judges issue 11's target for the message backend's stream,
// "at least 99% of datagrams delivered by message-shm", on the stream the
// issue set it on: the unpaced one, a sender on a core of its own against
// a sink that shares the stack's. The throughput search says at what
// offered rate message-shm delivers that share (the notes, beside
// Linux's); a check there would be met by the search's construction.
func streamChecks(rows []StreamRow, s probe.Search) []Check {
	for _, r := range rows {
		if r.Name != "message-shm" {
			continue
		}
		v := 0.0
		if r.Sent > 0 {
			v = float64(r.Received-r.Corrupt) / float64(r.Sent)
		}
		return []Check{{Name: "stream, unpaced: message-shm delivered", Value: v,
			Target: fmt.Sprintf(">= %.4g", s.Deliver), Met: r.Sent > 0 && v >= s.Deliver-1e-9}}
	}
	return nil
}

// streamNotes describe the streams and give each row's throughput as a
// fraction of Linux's.
func streamNotes(rows []StreamRow, o UDPOptions) []string {
	s := o.Search
	notes := []string{fmt.Sprintf("streams, unpaced: %d datagrams of %d B sent as fast as the sender's socket calls return, then an end-of-stream datagram "+
		"repeated until the sink answers it with its count; offered is the sender's rate, datagrams per second the sink's, first to last datagram; what the sink's receive queue could not hold "+
		"(256 datagrams or 212992 bytes, as Linux's default receive buffer holds 256 such datagrams) is lost and shows as received < sent",
		probe.StreamCount, o.Size),
		fmt.Sprintf("streams, throughput: the highest offered rate at which a trial stream of %d datagrams, paced evenly, delivered at least %.4g%% of them intact "+
			"(RFC 2544's throughput with a loss tolerance of %.4g%%), the rate as the sender achieved it (about the pacer's target, or less where the sender fell behind): the targets halve from the unpaced stream's offered rate (a rate that lost more) to a pass, "+
			"then bisect until the lowest rate that failed is within %.4g%% of the highest that passed; the floor is 1/%d of the unpaced rate (0: none passed there). "+
			"The sender paces by the clock, sleeping to %v before a datagram is due and spinning after, never more than %d datagrams behind; "+
			"a trial that passed while the sender offered less than its target by more than the resolution (it was stalled) is run again, once. "+
			"The sink's queue hides a shortfall: a trial of %d passes if the sink kept up with %.0f%% of the offered rate, the rest held in its 256 places or lost within the tolerance",
			s.Trial, 100*s.Deliver, 100*(1-s.Deliver), 100*s.Resolution, probe.FloorDivisor, probe.SleepMargin, probe.PaceLag,
			s.Trial, 100*(1-(256+(1-s.Deliver)*float64(s.Trial))/float64(s.Trial)))}
	linux := linuxThroughput(rows)
	for _, r := range rows {
		t := r.Throughput
		if t == nil {
			continue
		}
		note := fmt.Sprintf("stream %s: throughput %s", r.Name, formatThroughput(*t))
		if linux != nil && r.Name != "linux" && linux.Rate > 0 {
			note += fmt.Sprintf("; %.3f of Linux's", t.Rate/linux.Rate)
		}
		notes = append(notes, note)
	}
	return notes
}

// formatThroughput says what a search found.
func formatThroughput(t probe.Throughput) string {
	switch {
	case t.Unpaced:
		return fmt.Sprintf("at least the unpaced rate, %.0f datagrams/s (%.2f Mbit/s of payload): the unpaced stream delivered %d of %d", t.Rate, t.Mbits, t.At.Received, t.At.Sent)
	case t.Rate == 0:
		return fmt.Sprintf("below the floor, %.0f datagrams/s: no trial delivered enough (%d trials)", t.Floor, len(t.Trials))
	}
	return fmt.Sprintf("%.0f datagrams/s offered (%.2f Mbit/s of payload; the pacer's target %.0f), %d of %d delivered there; %d trials in %.1f s",
		t.Rate, t.Mbits, t.Target, t.At.Received, t.At.Sent, len(t.Trials), t.Seconds)
}

// udpStreams measures a one-way stream and its throughput through the
// stack on each transport, through a monolithic host and through Linux.
func udpStreams(ctx context.Context, rep *Report, dir string, cpus []int, o UDPOptions) error {
	a, b := cpus[0], cpus[1]
	for _, tr := range []topology.Transport{topology.Shm, topology.Kernel} {
		out := filepath.Join(dir, "stream-"+string(tr)+".json")
		hold := filepath.Join(dir, "stream-"+string(tr)+"-unpaced.json")
		t := topology.Default()
		t.Name, t.Transport = "bench-udp-stream", tr
		t.Processes = append(t.Processes,
			topology.Process{Name: "sink", Role: "udpsink", Args: []string{"--target", "127.0.0.1:9000"}},
			topology.Process{Name: "blaster", Role: "udpblast", Cores: []int{a},
				Args: append([]string{"--target", "127.0.0.1:9000", "--out", out, "--hold", hold}, blastArgs(o)...)})
		t.Links = append(t.Links, topology.Link{A: "sink", B: "syscall"}, topology.Link{A: "blaster", B: "syscall"})
		h, err := launch.Start(ctx, launch.Options{StateDir: filepath.Join(dir, "state"), Topology: t, CPUs: cpus, Log: o.Log})
		if err != nil {
			return fmt.Errorf("bench udp: stream %s: %w", tr, err)
		}
		row, err := stackStream(h, out, hold)
		h.Stop()
		if err != nil {
			return fmt.Errorf("bench udp: stream %s: %w", tr, err)
		}
		row.Name = "message-" + string(tr)
		rep.Streams = append(rep.Streams, row)
		rep.Notes = append(rep.Notes, fmt.Sprintf("stream %s: dropped on the simulated host: %s; over the search's trials: %s",
			row.Name, formatDrops(row.Drops), formatDrops(row.SearchDrops)))
		streamProgress(o.Progress, row)
	}
	out := filepath.Join(dir, "stream-monolith.json")
	if err := monolithUDP("udp-stream-monolith", out, a, b, o); err != nil {
		return fmt.Errorf("bench udp: monolith stream: %w", err)
	}
	res, err := readStreamReport(out, 5*time.Second)
	if err != nil {
		return fmt.Errorf("bench udp: monolith stream: %w", err)
	}
	row := StreamRow{Name: "monolith", StreamResult: res.StreamResult, Throughput: res.Throughput, Placement: monolithPlacement(a, b)}
	rep.Streams = append(rep.Streams, row)
	streamProgress(o.Progress, row)
	res, err = linuxStream(dir, a, b, o)
	if err != nil {
		return fmt.Errorf("bench udp: linux stream: %w", err)
	}
	row = StreamRow{Name: "linux", StreamResult: res.StreamResult, Throughput: res.Throughput, Placement: fmt.Sprintf("blaster=%d sink=%d", a, b)}
	rep.Streams = append(rep.Streams, row)
	streamProgress(o.Progress, row)
	return nil
}

// stackStream reads a stream row through the simulated host h: the
// blaster's unpaced stream from hold, the drop counters then, and, once
// hold is removed and the search has run, the report from out and what
// the counters gained over the search.
func stackStream(h *launch.Handle, out, hold string) (StreamRow, error) {
	row := StreamRow{Placement: h.Plan.Summary()}
	u, err := readStream(hold, 120*time.Second)
	if err != nil {
		return row, err
	}
	row.Drops = runDrops(h.Status)
	if err := os.Remove(hold); err != nil {
		return row, err
	}
	res, err := readStreamReport(out, searchFor)
	if err != nil {
		return row, err
	}
	if res.StreamResult != u {
		return row, fmt.Errorf("the blaster's unpaced stream changed after it held: %+v, then %+v", u, res.StreamResult)
	}
	row.StreamResult, row.Throughput = res.StreamResult, res.Throughput
	row.SearchDrops = dropsSince(row.Drops, runDrops(h.Status))
	return row, nil
}

// searchFor is how long bench udp waits for a throughput search.
const searchFor = 10 * time.Minute

// blastArgs are a blaster role's stream and search arguments.
func blastArgs(o UDPOptions) []string {
	return []string{"--count", strconv.Itoa(probe.StreamCount), "--size", strconv.Itoa(o.Size),
		"--trial", strconv.Itoa(o.Search.Trial), "--deliver", strconv.FormatFloat(o.Search.Deliver, 'g', -1, 64),
		"--resolution", strconv.FormatFloat(o.Search.Resolution, 'g', -1, 64)}
}

// streamProgress prints a stream row's line.
func streamProgress(w io.Writer, r StreamRow) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, "  stream %-14s unpaced: %d of %d, offered %.0f/s, received %.0f/s", r.Name, r.Received, r.Sent, r.Offered, r.PerSec)
	if r.Drops != nil {
		fmt.Fprintf(w, " (dropped: %s)", formatDrops(r.Drops))
	}
	fmt.Fprintln(w)
	if r.Throughput != nil {
		fmt.Fprintf(w, "  %-21s throughput %s\n", "", formatThroughput(*r.Throughput))
	}
}

// monolithUDP runs a monolith mode of bench peer (both sides in one
// process, on a monolithic host) on CPUs a and b, its result in out.
func monolithUDP(mode, out string, a, b int, o UDPOptions) error {
	cmd, err := startPeerOn([]int{a, b}, o.Log, nil, probe.PeerOptions{Mode: mode, Out: out, Size: o.Size, Search: o.Search})
	if err != nil {
		return err
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %v", mode, exitErr(err))
	}
	return nil
}

// monolithPlacement is where a monolith row ran.
func monolithPlacement(a, b int) string {
	return fmt.Sprintf("one process on CPUs %d,%d: both sides and the host's loop as goroutines", a, b)
}

// linuxStream runs the same sink and blaster on Linux sockets, the blaster
// pinned to bc and the sink to sc.
func linuxStream(dir string, bc, sc int, o UDPOptions) (probe.StreamReport, error) {
	out := filepath.Join(dir, "stream-linux.json")
	err := peerPair(sc, bc, o.Log, socket.SOCK_DGRAM, 0,
		probe.PeerOptions{Mode: "udp-sink-linux"},
		probe.PeerOptions{Mode: "udp-blast-linux", Size: o.Size, Out: out, Search: o.Search})
	if err != nil {
		return probe.StreamReport{}, err
	}
	return readStreamReport(out, 5*time.Second)
}

// linuxUDP runs the echo program and the client on Linux sockets, each in
// a pinned process: the echo program on a socket opened for it on a port
// the kernel picks (see loopbackSocket), the client given its address.
func linuxUDP(out string, pc, ec int, o UDPOptions) error {
	sock, addr, err := loopbackSocket(socket.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	echo, err := startPeer(ec, o.Log, []*os.File{sock}, probe.PeerOptions{Mode: "udp-echo-linux"})
	sock.Close() // the echo program holds it now
	if err != nil {
		return err
	}
	defer func() { echo.Process.Kill(); echo.Wait() }()
	ping, err := startPeer(pc, o.Log, nil, probe.PeerOptions{Mode: "udp-ping-linux", File: addr.String(), Out: out, Size: o.Size})
	if err != nil {
		return err
	}
	if err := ping.Wait(); err != nil {
		return fmt.Errorf("the client: %v", exitErr(err))
	}
	return nil
}

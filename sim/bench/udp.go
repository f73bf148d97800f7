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
	rep.Notes = append(rep.Notes, fmt.Sprintf("streams: %d datagrams of %d B sent as fast as the sender's socket calls allow, then an end-of-stream datagram "+
		"repeated until the sink answers it; rate from the sink's first to last datagram; what the sink's receive queue could not hold "+
		"(256 datagrams or 212992 bytes, as Linux's default receive buffer holds 256 such datagrams) is lost and shows as received < sent",
		probe.StreamCount, o.Size))
	return rep, nil
}

// udpStreams measures a one-way stream through the stack on each transport
// and through Linux.
func udpStreams(ctx context.Context, rep *Report, dir string, cpus []int, o UDPOptions) error {
	a, b := cpus[0], cpus[1]
	count, size := strconv.Itoa(probe.StreamCount), strconv.Itoa(o.Size)
	for _, tr := range []topology.Transport{topology.Shm, topology.Kernel} {
		out := filepath.Join(dir, "stream-"+string(tr)+".json")
		t := topology.Default()
		t.Name, t.Transport = "bench-udp-stream", tr
		t.Processes = append(t.Processes,
			topology.Process{Name: "sink", Role: "udpsink", Args: []string{"--target", "127.0.0.1:9000", "--count", count, "--out", out}},
			topology.Process{Name: "blaster", Role: "udpblast", Cores: []int{a},
				Args: []string{"--target", "127.0.0.1:9000", "--count", count, "--size", size}})
		t.Links = append(t.Links, topology.Link{A: "sink", B: "syscall"}, topology.Link{A: "blaster", B: "syscall"})
		h, err := launch.Start(ctx, launch.Options{StateDir: filepath.Join(dir, "state"), Topology: t, CPUs: cpus, Log: o.Log})
		if err != nil {
			return fmt.Errorf("bench udp: stream %s: %w", tr, err)
		}
		res, err := readStream(out, 120*time.Second)
		plan := h.Plan.Summary()
		drops := runDrops(h.Status)
		h.Stop()
		if err != nil {
			return fmt.Errorf("bench udp: stream %s: %w", tr, err)
		}
		row := StreamRow{Name: "message-" + string(tr), StreamResult: res, Placement: plan, Drops: drops}
		rep.Streams = append(rep.Streams, row)
		rep.Notes = append(rep.Notes, fmt.Sprintf("stream %s: dropped on the simulated host: %s", row.Name, formatDrops(drops)))
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "  stream %-9s %10.0f datagrams/s (%d of %d; dropped: %s)\n", tr, res.PerSec, res.Received, res.Sent, formatDrops(drops))
		}
	}
	out := filepath.Join(dir, "stream-monolith.json")
	if err := monolithUDP("udp-stream-monolith", out, a, b, o); err != nil {
		return fmt.Errorf("bench udp: monolith stream: %w", err)
	}
	res, err := readStream(out, 5*time.Second)
	if err != nil {
		return fmt.Errorf("bench udp: monolith stream: %w", err)
	}
	rep.Streams = append(rep.Streams, StreamRow{Name: "monolith", StreamResult: res, Placement: monolithPlacement(a, b)})
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "  stream %-9s %10.0f datagrams/s (%d of %d)\n", "monolith", res.PerSec, res.Received, res.Sent)
	}
	res, err = linuxStream(dir, a, b, o)
	if err != nil {
		return fmt.Errorf("bench udp: linux stream: %w", err)
	}
	rep.Streams = append(rep.Streams, StreamRow{Name: "linux", StreamResult: res, Placement: fmt.Sprintf("blaster=%d sink=%d", a, b)})
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "  stream %-9s %10.0f datagrams/s (%d of %d)\n", "linux", res.PerSec, res.Received, res.Sent)
	}
	return nil
}

// monolithUDP runs a monolith mode of bench peer (both sides in one
// process, on a monolithic host) on CPUs a and b, its result in out.
func monolithUDP(mode, out string, a, b int, o UDPOptions) error {
	cmd, err := startPeerOn([]int{a, b}, o.Log, nil, probe.PeerOptions{Mode: mode, Out: out, Size: o.Size})
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
func linuxStream(dir string, bc, sc int, o UDPOptions) (probe.StreamResult, error) {
	out := filepath.Join(dir, "stream-linux.json")
	err := peerPair(sc, bc, o.Log, socket.SOCK_DGRAM, 0,
		probe.PeerOptions{Mode: "udp-sink-linux", Out: out},
		probe.PeerOptions{Mode: "udp-blast-linux", Size: o.Size})
	if err != nil {
		return probe.StreamResult{}, err
	}
	return readStream(out, 5*time.Second)
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

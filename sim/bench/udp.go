package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/apps/udpecho"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/machine"
	"github.com/newtsim/newtsim/sim/topology"
)

// The udpping role measures UDP round trips to an echo service through the
// socket library's message backend, from an application process of the
// simulated host.

type udpPing struct {
	target netip.AddrPort
	size   int
	out    string
}

// UDPPingRole starts the udpping role: the measuring side of the UDP round-trip benchmark.
func UDPPingRole(s *sys.Server) (sys.Handler, error) {
	p := &udpPing{}
	fs := flag.NewFlagSet("udpping", flag.ContinueOnError)
	target := fs.String("target", "127.0.0.1:7", "the echo service")
	fs.IntVar(&p.size, "size", 64, "datagram size in bytes")
	fs.StringVar(&p.out, "out", "", "file to write the result to")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	var err error
	if p.target, err = netip.ParseAddrPort(*target); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *udpPing) Handle(*sys.Server, *ipc.Message) error { return nil }

// Run measures, writes the result, then serves until shut down.
func (p *udpPing) Run(s *sys.Server) error {
	api, err := socket.Open(socket.Config{Backend: "message", Conn: s})
	if err != nil {
		return err
	}
	sample, err := UDPRoundTrips(api, p.target, p.size)
	if err != nil {
		return err
	}
	if err := writeSample(p.out, sample); err != nil {
		return err
	}
	return s.Serve(p)
}

// UDPRoundTrips measures round trips of size-byte datagrams to an echo
// service through api, any backend. It first waits (up to 10 s) for the
// service to answer at all, since it may still be starting.
func UDPRoundTrips(api socket.API, target netip.AddrPort, size int) (Sample, error) {
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return Sample{}, err
	}
	defer api.Close(fd)
	if err := api.Connect(fd, target); err != nil {
		return Sample{}, err
	}
	out, in := make([]byte, size), make([]byte, size+1)
	deadline := time.Now().Add(10 * time.Second)
	for ready := false; !ready; {
		if time.Now().After(deadline) {
			return Sample{}, fmt.Errorf("bench: no echo from %s", target)
		}
		if _, err := api.Send(fd, out, 0); err != nil {
			return Sample{}, err
		}
		for try := 0; try < 50 && !ready; try++ {
			_, err := api.Recv(fd, in, socket.MSG_DONTWAIT)
			switch {
			case err == nil:
				ready = true
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ECONNREFUSED):
				time.Sleep(time.Millisecond)
			default:
				return Sample{}, err
			}
		}
	}
	return Measure(DefaultBudget, func(int) error {
		if _, err := api.Send(fd, out, 0); err != nil {
			return err
		}
		n, err := api.Recv(fd, in, 0)
		if err == nil && n != size {
			err = fmt.Errorf("bench: echo of %d bytes came back as %d", size, n)
		}
		return err
	})
}

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
// (over user-space channels, and over kernel messages) and through Linux's
// loopback, in one run. The applications on the simulated host talk over
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
	out := filepath.Join(dir, "udp-linux.json")
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
	rep.Notes = append(rep.Notes, fmt.Sprintf("streams: %d datagrams of %d B sent as fast as the sender's socket calls allow; "+
		"rate from the sink's first to last datagram; what the sink's queue could not hold is lost and shows as received < sent",
		streamCount, o.Size))
	return rep, nil
}

// streamCount is how many datagrams a stream sends.
const streamCount = 10000

// udpStreams measures a one-way stream through the stack on each transport
// and through Linux.
func udpStreams(ctx context.Context, rep *Report, dir string, cpus []int, o UDPOptions) error {
	a, b := cpus[0], cpus[1]
	count, size := strconv.Itoa(streamCount), strconv.Itoa(o.Size)
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
		h.Stop()
		if err != nil {
			return fmt.Errorf("bench udp: stream %s: %w", tr, err)
		}
		rep.Streams = append(rep.Streams, StreamRow{Name: "message-" + string(tr), StreamResult: res, Placement: plan})
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "  stream %-9s %10.0f datagrams/s (%d of %d)\n", tr, res.PerSec, res.Received, res.Sent)
		}
	}
	res, err := linuxStream(dir, a, b, o)
	if err != nil {
		return fmt.Errorf("bench udp: linux stream: %w", err)
	}
	rep.Streams = append(rep.Streams, StreamRow{Name: "linux", StreamResult: res, Placement: fmt.Sprintf("blaster=%d sink=%d", a, b)})
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "  stream %-9s %10.0f datagrams/s (%d of %d)\n", "linux", res.PerSec, res.Received, res.Sent)
	}
	return nil
}

// linuxStream runs the same sink and blaster on Linux sockets, the blaster
// pinned to bc and the sink to sc.
func linuxStream(dir string, bc, sc int, o UDPOptions) (StreamResult, error) {
	out := filepath.Join(dir, "stream-linux.json")
	err := peerPair(sc, bc, o.Log, socket.SOCK_DGRAM, 0,
		PeerOptions{Mode: "udp-sink-linux", Out: out},
		PeerOptions{Mode: "udp-blast-linux", Size: o.Size})
	if err != nil {
		return StreamResult{}, err
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
	echo, err := startPeer(ec, o.Log, []*os.File{sock}, PeerOptions{Mode: "udp-echo-linux"})
	sock.Close() // the echo program holds it now
	if err != nil {
		return err
	}
	defer func() { echo.Process.Kill(); echo.Wait() }()
	ping, err := startPeer(pc, o.Log, nil, PeerOptions{Mode: "udp-ping-linux", File: addr.String(), Out: out, Size: o.Size})
	if err != nil {
		return err
	}
	if err := ping.Wait(); err != nil {
		return fmt.Errorf("the client: %v", exitErr(err))
	}
	return nil
}

// udpPeer runs the Linux side of bench udp for PeerMain: the echo program
// and the sink on the bound socket at peerSocket, the client and the
// blaster sending to target.
func udpPeer(mode, target, out string, size int) error {
	switch mode {
	case "udp-echo-linux":
		return udpecho.Echo(socket.Linux{}, peerSocket)
	case "udp-sink-linux":
		r, err := sinkOn(socket.Linux{}, peerSocket, streamCount)
		if err != nil {
			return err
		}
		return writeJSON(out, r)
	}
	ap, err := netip.ParseAddrPort(target)
	if err != nil {
		return fmt.Errorf("bench: %s: the server's address: %w", mode, err)
	}
	switch mode {
	case "udp-ping-linux":
		s, err := UDPRoundTrips(socket.Linux{}, ap, size)
		if err != nil {
			return err
		}
		return writeSample(out, s)
	case "udp-blast-linux":
		return Blast(socket.Linux{}, ap, streamCount, size)
	}
	return fmt.Errorf("bench: unknown mode %q", mode)
}

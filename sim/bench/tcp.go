package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/internal/procstat"
	"github.com/newtsim/newtsim/internal/stats"
	"github.com/newtsim/newtsim/sim/bench/probe"
	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/machine"
	"github.com/newtsim/newtsim/sim/topology"
)

// BulkRow is one measured bulk transfer: the median of its repetitions,
// each a new connection moving Bytes, every byte checked.
type BulkRow struct {
	Name      string  `json:"name"`
	Mbits     float64 `json:"mbit_per_s"` // median over the repetitions
	MinMbits  float64 `json:"min_mbit_per_s"`
	MaxMbits  float64 `json:"max_mbit_per_s"`
	Seconds   float64 `json:"seconds"` // the median repetition's
	Bytes     int64   `json:"bytes"`   // per repetition
	Reps      int     `json:"reps"`
	Placement string  `json:"placement"`
	What      string  `json:"what"`
	// For the simulated host's rows: what its processes on the stack's
	// core (all but the sending application) were accounted per MiB
	// moved, over every repetition, CPU time and context switches
	// (internal/procstat, read once the host is up and once the sink has
	// its last byte); and the switches times the CPU a switch costs on
	// that core (the report's switch_hop): what the split into
	// processes costs a MiB before any server does its work.
	StackCPUUSPerMiB    float64  `json:"stack_cpu_us_per_mib,omitempty"`
	SwitchesPerMiB      float64  `json:"context_switches_per_mib,omitempty"`
	SwitchFloorUSPerMiB *float64 `json:"switch_floor_us_per_mib,omitempty"`
}

// ConnRow is one measured connection set-up rate.
type ConnRow struct {
	Name string `json:"name"`
	probe.TCPConnResult
	Placement string `json:"placement"`
	What      string `json:"what"`
}

// TCPOptions configure the TCP benchmark. Zero fields take defaults.
type TCPOptions struct {
	CPUs       []int     // nil: every online CPU
	Progress   io.Writer // a line per row as it runs; nil for none
	Log        *os.File  // the processes' logs; nil: discarded
	Command    string    // recorded in the report
	Bytes      int64     // bulk bytes per repetition, every row; 0: 256 MB
	LinuxBytes int64     // the Linux row's instead; 0: Bytes, the same transfer side by side
	Conns      int       // connections timed on the simulated host; 0: 2000
	LinuxConns int       // the same on Linux; 0: 20000
	Reps       int       // bulk repetitions; 0: 5
	// Transports are the simulated host's rows: message-<transport>
	// each; nil: shm alone.
	Transports []topology.Transport
}

func (o *TCPOptions) defaults() {
	if o.Bytes == 0 {
		o.Bytes = 256 << 20
	}
	if o.LinuxBytes == 0 {
		// The same transfer on every row: a shorter one on the simulated
		// host weighed its start (slow start, the first touch of its
		// buffers) more: 32 MB moved at 0.55-0.85 of a 256 MB transfer's
		// rate there.
		o.LinuxBytes = o.Bytes
	}
	if o.Conns == 0 {
		o.Conns = 2000
	}
	if o.LinuxConns == 0 {
		o.LinuxConns = 20000
	}
	if o.Reps == 0 {
		o.Reps = 5
	}
	if o.Transports == nil {
		o.Transports = []topology.Transport{topology.Shm}
	}
}

// TCP runs `newtsim bench tcp`: bulk throughput and connection set-up
// rate between two applications, through the multiserver stack with the
// message backend (the applications on the simulated host talk over its
// loopback: application, syscall, tcp, ip, tcp, syscall, application) and
// through Linux's loopback with the same application code, in one run;
// and bulk throughput through the multiserver stack with the exposed
// backend and through a monolithic host (the same engines in one
// process).
func TCP(ctx context.Context, o TCPOptions) (*Report, error) {
	cpus, log, done, err := prepare("tcp", o.CPUs, o.Log)
	if err != nil {
		return nil, err
	}
	defer done()
	o.Log = log
	o.defaults()
	a, b := cpus[0], cpus[1]
	dir, err := os.MkdirTemp("", "newtsim-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rep := &Report{Bench: "tcp", Command: o.Command, Time: time.Now().UTC(), Machine: machine.Detect(),
		CorePlan: fmt.Sprintf("the sending or connecting application alone on CPU %d; the receiving or accepting "+
			"application and the stack as the derived plan puts them (CPU %d here); on Linux the two applications "+
			"on CPUs %d and %d", a, b, a, b)}
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format, args...)
		}
	}

	// What a hop between processes costs on the stack's core.
	if hop, err := measureSwitchHop(b, o.Log); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the cost of a switch between processes on CPU %d was not measured: %v", b, err))
	} else {
		rep.SwitchHop = hop
	}

	// Bulk transfers.
	for _, tr := range o.Transports {
		name := "message-" + string(tr)
		row, err := stackBulk(ctx, dir, cpus, tr, "message", o)
		if err != nil {
			return nil, fmt.Errorf("bench tcp: bulk %s: %w", name, err)
		}
		rep.Bulk = append(rep.Bulk, row)
		progress("  bulk %-15s %10.1f Mbit/s (%d x %d B)\n", name, row.Mbits, row.Reps, row.Bytes)
	}
	for _, f := range []struct {
		name string
		run  func() (BulkRow, error)
	}{
		{"exposed", func() (BulkRow, error) { return stackBulk(ctx, dir, cpus, topology.Shm, "exposed", o) }},
		{"monolith", func() (BulkRow, error) { return monolithBulk(ctx, dir, a, b, o) }},
		{"linux", func() (BulkRow, error) { return linuxBulk(dir, a, b, o) }},
	} {
		row, err := f.run()
		if err != nil {
			return nil, fmt.Errorf("bench tcp: bulk %s: %w", f.name, err)
		}
		rep.Bulk = append(rep.Bulk, row)
		progress("  bulk %-15s %10.1f Mbit/s (%d x %d B)\n", f.name, row.Mbits, row.Reps, row.Bytes)
	}

	// Connection set-up.
	for _, tr := range o.Transports {
		name := "message-" + string(tr)
		row, err := messageConns(ctx, dir, cpus, tr, o)
		if err != nil {
			return nil, fmt.Errorf("bench tcp: connections %s: %w", name, err)
		}
		rep.Conns = append(rep.Conns, row)
		progress("  conns %-14s %10.0f per second (%d)\n", name, row.PerSec, row.Conns)
	}
	crow, err := linuxConns(dir, a, b, o)
	if err != nil {
		return nil, fmt.Errorf("bench tcp: connections linux: %w", err)
	}
	rep.Conns = append(rep.Conns, crow)
	progress("  conns %-14s %10.0f per second (%d)\n", "linux", crow.PerSec, crow.Conns)

	if l := bulkRow(rep, "linux"); l != nil {
		for _, r := range rep.Bulk {
			if r.Name != "linux" && l.Mbits > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("bulk: %s moves %.3f of Linux's throughput (%.1f / %.1f Mbit/s)",
					r.Name, r.Mbits/l.Mbits, r.Mbits, l.Mbits))
			}
		}
		if m := bulkRow(rep, "message-shm"); m != nil {
			// Issue 11's target for the message backend's bulk stream.
			v := 0.0
			if l.Mbits > 0 {
				v = m.Mbits / l.Mbits
			}
			rep.Checks = append(rep.Checks, Check{Name: "bulk: message-shm Mbit/s / linux Mbit/s", Value: v,
				Target: ">= 0.25", Met: l.Mbits > 0 && v >= 0.25})
		}
	}
	rep.setBulkFloors(0.25)
	if l := connRow(rep, "linux"); l != nil {
		for _, r := range rep.Conns {
			if r.Name != "linux" && l.PerSec > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("connections: %s sets up %.3f of Linux's rate (%.0f / %.0f per second)",
					r.Name, r.PerSec/l.PerSec, r.PerSec, l.PerSec))
			}
		}
	}
	return rep, nil
}

func bulkRow(rep *Report, name string) *BulkRow {
	for i := range rep.Bulk {
		if rep.Bulk[i].Name == name {
			return &rep.Bulk[i]
		}
	}
	return nil
}

func connRow(rep *Report, name string) *ConnRow {
	for i := range rep.Conns {
		if rep.Conns[i].Name == name {
			return &rep.Conns[i]
		}
	}
	return nil
}

// stackTopology is the simulated host with two applications linked to
// syscall: server (placed by the derived plan) and client (pinned to core).
func stackTopology(name string, tr topology.Transport, core int, server, client topology.Process) *topology.Topology {
	t := topology.Default()
	t.Name, t.Transport = name, tr
	client.Cores = []int{core}
	t.Processes = append(t.Processes, server, client)
	t.Links = append(t.Links, topology.Link{A: server.Name, B: "syscall"}, topology.Link{A: client.Name, B: "syscall"})
	return t
}

// summarizeBulk makes a row of checked repetitions.
func summarizeBulk(name string, rs []probe.TCPStreamResult, size int64, placement, what string) BulkRow {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Mbits < rs[j].Mbits })
	mid := rs[len(rs)/2]
	mbits := make([]float64, len(rs))
	for i, r := range rs {
		mbits[i] = r.Mbits
	}
	return BulkRow{Name: name, Mbits: stats.Median(mbits), MinMbits: rs[0].Mbits, MaxMbits: rs[len(rs)-1].Mbits,
		Seconds: mid.Seconds, Bytes: size, Reps: len(rs), Placement: placement, What: what}
}

// stackBulk moves o.Bytes from a tcpsource to a tcpsink on a simulated
// host, both on the socket library's backend (message or exposed), o.Reps
// times, each in a fresh run of the host. The row is message-TRANSPORT,
// or exposed.
func stackBulk(ctx context.Context, dir string, cpus []int, tr topology.Transport, backend string, o TCPOptions) (BulkRow, error) {
	var rs []probe.TCPStreamResult
	var plan string
	var used procstat.Usage // the stack's core's, over every repetition
	name, path := "message-"+string(tr), "app, syscall, tcp, ip, tcp, syscall, app"
	if backend == "exposed" {
		name, path = "exposed", "app, tcp through the exposed socket buffers, ip, tcp, app"
	}
	for k := 0; k < o.Reps; k++ {
		if err := ctx.Err(); err != nil {
			return BulkRow{}, err
		}
		out := filepath.Join(dir, fmt.Sprintf("bulk-%s-%d.json", name, k))
		ready := filepath.Join(dir, fmt.Sprintf("bulk-%s-%d.port", name, k))
		t := stackTopology("bench-tcp-bulk", tr, cpus[0],
			topology.Process{Name: "sink", Role: "tcpsink", Args: []string{"--target", "127.0.0.1:0", "--ready", ready, "--out", out,
				"--backend", backend}},
			topology.Process{Name: "source", Role: "tcpsource", Args: []string{"--target", "127.0.0.1:0", "--ready", ready,
				"--bytes", strconv.FormatInt(o.Bytes, 10), "--backend", backend}})
		if backend == "exposed" {
			t.Links = append(t.Links, topology.Link{A: "sink", B: "tcp"}, topology.Link{A: "source", B: "tcp"})
		}
		state := filepath.Join(dir, "state")
		h, err := launch.Start(ctx, launch.Options{StateDir: state, Topology: t, CPUs: cpus, Log: o.Log})
		if err != nil {
			return BulkRow{}, err
		}
		before := stackUsage(h.Status, "source")
		var r probe.TCPStreamResult
		err = awaitJSON(out, 60*time.Second+time.Duration(o.Bytes/(1<<20))*time.Second, nil, &r)
		used = used.Add(sumUsage(usageDeltas(before, stackUsage(h.Status, "source"))))
		plan = h.Plan.Summary()
		h.Stop()
		if err == nil {
			err = r.Verify(o.Bytes)
		}
		if err != nil {
			return BulkRow{}, fmt.Errorf("repetition %d: %w", k+1, err)
		}
		rs = append(rs, r)
	}
	row := summarizeBulk(name, rs, o.Bytes, plan,
		fmt.Sprintf("source app writes %d B in 64 KiB sends to the sink app over the host's loopback "+
			"(%s; %s), which reads and checks every byte; accept to end of file; "+
			"median of %d connections, each in a fresh run of the host", o.Bytes, path, tr, o.Reps))
	row.setCost(used.CPU, used.Switches, o.Bytes*int64(o.Reps))
	return row, nil
}

// monolithBulk runs the same source and sink as goroutines of one process
// over the loopback of a monolithic host (the engines linked in that
// process, sim/host), the process on CPUs a and b, o.Reps times, each in
// a fresh process.
func monolithBulk(ctx context.Context, dir string, a, b int, o TCPOptions) (BulkRow, error) {
	var rs []probe.TCPStreamResult
	for k := 0; k < o.Reps; k++ {
		if err := ctx.Err(); err != nil {
			return BulkRow{}, err
		}
		out := filepath.Join(dir, fmt.Sprintf("bulk-monolith-%d.json", k))
		cmd, err := startPeerOn([]int{a, b}, o.Log, nil, probe.PeerOptions{Mode: "tcp-bulk-monolith", Out: out, Size: int(o.Bytes)})
		if err == nil {
			err = cmd.Wait()
		}
		var r probe.TCPStreamResult
		if err == nil {
			err = awaitJSON(out, 5*time.Second, nil, &r)
		}
		if err == nil {
			err = r.Verify(o.Bytes)
		}
		if err != nil {
			return BulkRow{}, fmt.Errorf("repetition %d: %w", k+1, err)
		}
		rs = append(rs, r)
	}
	return summarizeBulk("monolith", rs, o.Bytes, fmt.Sprintf("one process on CPUs %d,%d: source, sink and the host's loop as goroutines", a, b),
		fmt.Sprintf("the same source and sink as goroutines of one process, each with a socket API of its own, over the loopback "+
			"of a monolithic host (ip and tcp engines linked in the process, sim/host: app, tcp, ip, tcp, app, every call a "+
			"function call), %d B; median of %d connections, each in a fresh process", o.Bytes, o.Reps)), nil
}

// messageConns times o.Conns connections from a tcpconnect to a tcpaccept
// on a simulated host.
func messageConns(ctx context.Context, dir string, cpus []int, tr topology.Transport, o TCPOptions) (ConnRow, error) {
	out := filepath.Join(dir, "conns-"+string(tr)+".json")
	ready := filepath.Join(dir, "conns-"+string(tr)+".port")
	count := strconv.Itoa(o.Conns)
	t := stackTopology("bench-tcp-conns", tr, cpus[0],
		topology.Process{Name: "acceptor", Role: "tcpaccept", Args: []string{"--target", "127.0.0.1:0", "--ready", ready, "--count", count}},
		topology.Process{Name: "connector", Role: "tcpconnect", Args: []string{"--target", "127.0.0.1:0", "--ready", ready,
			"--count", count, "--out", out}})
	h, err := launch.Start(ctx, launch.Options{StateDir: filepath.Join(dir, "state"), Topology: t, CPUs: cpus, Log: o.Log})
	if err != nil {
		return ConnRow{}, err
	}
	var r probe.TCPConnResult
	err = awaitJSON(out, 60*time.Second+time.Duration(o.Conns)*10*time.Millisecond, nil, &r)
	plan := h.Plan.Summary()
	h.Stop()
	if err == nil && r.Error != "" {
		err = errors.New(r.Error)
	}
	if err != nil {
		return ConnRow{}, err
	}
	return ConnRow{Name: "message-" + string(tr), TCPConnResult: r, Placement: plan,
		What: fmt.Sprintf("client app connects over the host's loopback (%s), the server app accepts and closes, the client "+
			"reads the end of file and closes; %d in a row, median of %d batches' rates; the default 60 s TIME-WAIT, "+
			"on the server's side", tr, r.Conns, r.Batches)}, nil
}

// linuxBulk runs the same sink and source on Linux sockets, each in a
// pinned process, o.Reps times.
func linuxBulk(dir string, sc, kc int, o TCPOptions) (BulkRow, error) {
	var rs []probe.TCPStreamResult
	for k := 0; k < o.Reps; k++ {
		out := filepath.Join(dir, fmt.Sprintf("bulk-linux-%d.json", k))
		var r probe.TCPStreamResult
		err := peerPair(kc, sc, o.Log, socket.SOCK_STREAM, probe.SinkBacklog,
			probe.PeerOptions{Mode: "tcp-sink-linux", Out: out},
			probe.PeerOptions{Mode: "tcp-source-linux", Size: int(o.LinuxBytes)})
		if err == nil {
			err = awaitJSON(out, 5*time.Second, nil, &r)
		}
		if err == nil {
			err = r.Verify(o.LinuxBytes)
		}
		if err != nil {
			return BulkRow{}, fmt.Errorf("repetition %d: %w", k+1, err)
		}
		rs = append(rs, r)
	}
	return summarizeBulk("linux", rs, o.LinuxBytes, fmt.Sprintf("source=%d sink=%d", sc, kc),
		fmt.Sprintf("the same source and sink on Linux TCP sockets over loopback, %d B; median of %d connections", o.LinuxBytes, o.Reps)), nil
}

// linuxConns runs the same acceptor and connector on Linux sockets.
func linuxConns(dir string, cc, ac int, o TCPOptions) (ConnRow, error) {
	out := filepath.Join(dir, "conns-linux.json")
	var r probe.TCPConnResult
	err := peerPair(ac, cc, o.Log, socket.SOCK_STREAM, probe.AcceptBacklog,
		probe.PeerOptions{Mode: "tcp-accept-linux", Size: o.LinuxConns},
		probe.PeerOptions{Mode: "tcp-connect-linux", Out: out, Size: o.LinuxConns})
	if err == nil {
		err = awaitJSON(out, 5*time.Second, nil, &r)
	}
	if err == nil && r.Error != "" {
		err = errors.New(r.Error)
	}
	if err != nil {
		return ConnRow{}, err
	}
	return ConnRow{Name: "linux", TCPConnResult: r, Placement: fmt.Sprintf("client=%d server=%d", cc, ac),
		What: fmt.Sprintf("the same client and server on Linux TCP sockets over loopback; %d in a row, median of %d batches' rates",
			r.Conns, r.Batches)}, nil
}

// loopbackSocket opens the socket of a Linux row's server side on Linux's
// loopback, on a port the kernel picks: a stream socket listening with
// backlog, or for socket.SOCK_DGRAM a bound datagram socket. It returns
// the socket as a file to hand the server side as its descriptor 3, where
// PeerMain looks for it, and the address to give the client side.
func loopbackSocket(typ, backlog int) (*os.File, netip.AddrPort, error) {
	api := socket.Linux{}
	local := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0)
	var fd socket.FD
	var err error
	if typ == socket.SOCK_STREAM {
		fd, err = probe.Listen(api, local, backlog)
	} else {
		fd, err = api.Socket(socket.AF_INET, typ, 0)
		if err == nil {
			if err = api.Bind(fd, local); err != nil {
				api.Close(fd)
			}
		}
	}
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("bench: the server side's socket: %w", err)
	}
	addr, err := api.LocalAddr(fd)
	if err != nil {
		api.Close(fd)
		return nil, netip.AddrPort{}, fmt.Errorf("bench: the server side's socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "bench-socket-"+addr.String()), addr, nil
}

// peerPair runs a Linux measurement: it opens the server side's socket of
// type typ on the loopback (see loopbackSocket), starts the server side on
// core sc with it, then the client side on core cc with the socket's
// address as client.File, and waits for both.
func peerPair(sc, cc int, log *os.File, typ, backlog int, server, client probe.PeerOptions) error {
	sock, addr, err := loopbackSocket(typ, backlog)
	if err != nil {
		return err
	}
	srv, err := startPeer(sc, log, []*os.File{sock}, server)
	sock.Close() // the server side holds it now
	if err != nil {
		return err
	}
	client.File = addr.String()
	cli, err := startPeer(cc, log, nil, client)
	if err != nil {
		srv.Process.Kill()
		srv.Wait()
		return err
	}
	cerr := cli.Wait()
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	var serr error
	select {
	case serr = <-done:
	case <-time.After(10 * time.Second):
		srv.Process.Kill()
		serr = fmt.Errorf("did not finish: %v", <-done)
	}
	if cerr != nil || serr != nil {
		return fmt.Errorf("client side: %v; server side: %v", exitErr(cerr), exitErr(serr))
	}
	return nil
}

func exitErr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.String() + " (its log is in the bench's log)"
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}

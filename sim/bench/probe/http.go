package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/newtsim/newtsim/apps/httpd"
	"github.com/newtsim/newtsim/apps/loadgen"
	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/nic/pcap"
	"github.com/newtsim/newtsim/nic/tap"
	"github.com/newtsim/newtsim/sim/host"
)

// The processes of `newtsim bench http` that run outside the simulated
// host: the client (the loadgen package on Linux's sockets, standing in
// for the talk's client machines) and httpd-linux (the httpd program on
// Linux's sockets, as a process of its own), each started inside a network
// namespace with `ip netns exec`; and httpd-monolith (the httpd program on
// a monolithic host, sim/host: the simulated host's engines in one
// process), which attaches to a TAP device in the client's namespace.

// HTTPPeerOptions configure `newtsim bench http-peer`.
type HTTPPeerOptions struct {
	// Mode is "loadgen" (the client), "httpd" (httpd-linux) or
	// "monolith" (httpd-monolith).
	Mode string
	// Config is the client's configuration file (JSON, an
	// HTTPClientConfig), for loadgen.
	Config string
	// Addr and Dir are where httpd listens and what it serves.
	Addr, Dir string
	// For monolith: the host's address and subnet (such as
	// 198.18.0.2/24), the TAP device it attaches to and the namespace
	// file that holds it, and where it writes its MonolithNote once
	// httpd listens.
	Host, Ifname, NetNS, Ready string
	// Pcap, for monolith, records every frame the host sends and
	// receives in this file; "" for none.
	Pcap string
	// NoTSO, for monolith, opens the TAP without TCP segmentation
	// offload: every frame the host sends fits the MTU.
	NoTSO bool
}

// MonolithNote is what httpd-monolith writes once httpd listens: the
// port, and the loopback port of its metrics (the host's tcp engine's,
// as newtsim_tcp_*).
type MonolithNote struct {
	Port        uint16 `json:"port"`
	MetricsPort int    `json:"metrics_port"`
}

// HTTPClientConfig is what the client is told to do.
type HTTPClientConfig struct {
	Target          string        `json:"target"` // the server's address and port
	Path            string        `json:"path"`
	Connections     int           `json:"connections"`
	RequestsPerConn int           `json:"requests_per_conn"` // 0: keep-alive for the whole run
	Warmup          time.Duration `json:"warmup_ns"`         // a run not measured, first
	Duration        time.Duration `json:"duration_ns"`       // the measured run
	Timeout         time.Duration `json:"timeout_ns"`        // a request not answered within it fails
	// Probe bounds how long the client tries to connect before the load,
	// while the server may still be starting.
	Probe time.Duration `json:"probe_ns"`
	Out   string        `json:"out"` // where the result goes
	// TracePeer, for a breakdown, is the endpoint slot of the simulated
	// host's nic: the client runs a trace recorder and stamps its requests
	// and responses as messages to and from it (loadgen.Config.TracePeer).
	// 0: no recorder.
	TracePeer int `json:"trace_peer,omitempty"`
}

// HTTPClientResult is what the client writes.
type HTTPClientResult struct {
	Warmup loadgen.Report `json:"warmup"`
	Report loadgen.Report `json:"report"`
	Error  string         `json:"error,omitempty"`
	// Trace is the client's recorder's events of the measured run, with
	// TracePeer.
	Trace *trace.Snapshot `json:"trace,omitempty"`
}

// Lines the client prints on its standard output, for the driver to count
// the server's system calls over the measured run alone.
const (
	// HTTPMeasureLine says the warm-up is over and the measured run starts.
	HTTPMeasureLine = "measure"
	// HTTPDoneLine says the measured run is over.
	HTTPDoneLine = "done"
)

// HTTPPeerMain runs one of bench http's processes.
func HTTPPeerMain(o HTTPPeerOptions) error {
	switch o.Mode {
	case "loadgen":
		return httpClient(o.Config)
	case "httpd":
		return httpdLinux(o.Addr, o.Dir)
	case "monolith":
		return httpdMonolith(o)
	}
	return fmt.Errorf("bench http-peer: unknown mode %q (loadgen, httpd or monolith)", o.Mode)
}

// httpClient probes the server, warms up, prints HTTPMeasureLine, runs
// the measured load, prints HTTPDoneLine and writes its result.
func httpClient(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var c HTTPClientConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("bench http-peer: %s: %w", path, err)
	}
	target, err := netip.ParseAddrPort(c.Target)
	if err != nil {
		return err
	}
	var res HTTPClientResult
	err = func() error {
		if err := probeServer(c.Target, c.Probe); err != nil {
			return err
		}
		cfg := loadgen.Config{API: socket.Linux{}, Target: target, Path: c.Path, Connections: c.Connections,
			RequestsPerConn: c.RequestsPerConn, Timeout: c.Timeout, TracePeer: c.TracePeer}
		if c.TracePeer > 0 {
			trace.Enable("client", "loadgen", trace.Outside)
		}
		ctx := context.Background()
		if c.Warmup > 0 {
			cfg.Duration = c.Warmup
			if res.Warmup, err = loadgen.Run(ctx, cfg); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
		fmt.Println(HTTPMeasureLine)
		cfg.Duration = c.Duration
		from := trace.Stamp()
		res.Report, err = loadgen.Run(ctx, cfg)
		fmt.Println(HTTPDoneLine)
		if c.TracePeer > 0 {
			res.Trace = measuredTrace(from)
		}
		return err
	}()
	if err != nil {
		res.Error = err.Error()
	}
	return writeJSON(c.Out, res)
}

// measuredTrace is the client's recorder's events since from, the start of
// the measured run: the warm-up's stamps are no measured request's.
func measuredTrace(from uint64) *trace.Snapshot {
	s := trace.Copy()
	s.Events = slices.DeleteFunc(s.Events, func(e trace.Event) bool { return e.TSC < from })
	return &s
}

// probeServer connects to target until it accepts, or gives up after d.
func probeServer(target string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", target, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server at %s did not accept a connection within %v: %w", target, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpdLinux serves dir on addr with the httpd program on Linux's sockets
// until SIGTERM or SIGINT.
func httpdLinux(addr, dir string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("bench http-peer: --addr: %w", err)
	}
	srv, err := httpd.New(httpd.Config{API: socket.Linux{}, Addr: ap, Files: os.DirFS(dir),
		Log: log.New(os.Stderr, "httpd-linux: ", log.Lmicroseconds)})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err = srv.Serve(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// monolithMAC is httpd-monolith's MAC address, as `newtsim host`'s.
var monolithMAC = [6]byte{0x02, 0, 0x5e, 0, 0, 2}

// stateOnSignal has the process log the host's state (host.WriteState)
// and every goroutine's stack on SIGUSR1, from now on for as long as it
// lives: what the benchmark asks for when a cell of httpd-monolith served
// nothing. A host whose loop is wedged shows it in the stacks (the host's
// lock held, a goroutine parked for good); WriteState waits for that
// lock, so the stacks go first.
func stateOnSignal(h *host.Host, logger *log.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	go func() {
		for range ch {
			var b strings.Builder
			pprof.Lookup("goroutine").WriteTo(&b, 1)
			logger.Printf("SIGUSR1: goroutines:\n%s", b.String())
			b.Reset()
			h.WriteState(&b)
			logger.Printf("SIGUSR1: the host's state:\n%s", b.String())
		}
	}()
}

// httpdMonolith serves o.Dir with the httpd program on a monolithic host
// attached to the TAP device o.Ifname in the namespace o.NetNS, until
// SIGTERM or SIGINT: the same engines as the simulated host's servers,
// linked in one process, behind the same kind of TAP, and the same httpd
// as on every other row.
func httpdMonolith(o HTTPPeerOptions) error {
	pfx, err := netip.ParsePrefix(o.Host)
	if err != nil {
		return fmt.Errorf("bench http-peer: --host: %w", err)
	}
	ap, err := netip.ParseAddrPort(o.Addr)
	if err != nil {
		return fmt.Errorf("bench http-peer: --addr: %w", err)
	}
	dev, err := tap.OpenIn(o.NetNS, o.Ifname, !o.NoTSO)
	if err != nil {
		return err
	}
	defer dev.Close()
	var pw *pcap.Writer
	if o.Pcap != "" {
		if pw, err = pcap.Create(o.Pcap); err != nil {
			return err
		}
		defer pw.Close()
	}
	h, err := host.New(host.Config{MAC: monolithMAC, Addr: pfx, Pcap: pw, TSO: dev.TSO()}, dev.Write)
	if err != nil {
		return err
	}
	reg := prom.NewRegistry("monolith", "httpd-monolith")
	h.Register(reg)
	ps, err := prom.Serve(reg, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ps.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- host.Serve(ctx, h, dev) }()
	logger := log.New(os.Stderr, "httpd-monolith: ", log.Lmicroseconds)
	stateOnSignal(h, logger)
	srv, err := httpd.New(httpd.Config{API: h.API(), Addr: ap, Files: os.DirFS(o.Dir), Log: logger})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteJSON(o.Ready, MonolithNote{Port: srv.Addr().Port(), MetricsPort: ps.Port}); err != nil {
		return err
	}
	failed := make(chan error, 1)
	go func() {
		if err := <-served; err != nil && ctx.Err() == nil {
			failed <- err
			stop()
		}
	}()
	err = srv.Serve(ctx)
	logger.Printf("stopped; the host's drops: %v", h.Drops())
	select {
	case herr := <-failed:
		return fmt.Errorf("bench http-peer: the monolithic host stopped: %w", herr)
	default:
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

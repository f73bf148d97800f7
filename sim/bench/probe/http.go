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
	"syscall"
	"time"

	"github.com/newtsim/newtsim/apps/httpd"
	"github.com/newtsim/newtsim/apps/loadgen"
	"github.com/newtsim/newtsim/apps/socket"
)

// The processes of `newtsim bench http` that run outside the simulated
// host, each started inside a network namespace with `ip netns exec`:
// the client (the loadgen package on Linux's sockets, standing in for the
// talk's client machines) and httpd-linux (the httpd program on Linux's
// sockets, as a process of its own).

// HTTPPeerOptions configure `newtsim bench http-peer`.
type HTTPPeerOptions struct {
	// Mode is "loadgen" (the client) or "httpd" (httpd-linux).
	Mode string
	// Config is the client's configuration file (JSON, an
	// HTTPClientConfig), for loadgen.
	Config string
	// Addr and Dir are where httpd listens and what it serves.
	Addr, Dir string
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
}

// HTTPClientResult is what the client writes.
type HTTPClientResult struct {
	Warmup loadgen.Report `json:"warmup"`
	Report loadgen.Report `json:"report"`
	Error  string         `json:"error,omitempty"`
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
	}
	return fmt.Errorf("bench http-peer: unknown mode %q (loadgen or httpd)", o.Mode)
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
			RequestsPerConn: c.RequestsPerConn, Timeout: c.Timeout}
		ctx := context.Background()
		if c.Warmup > 0 {
			cfg.Duration = c.Warmup
			if res.Warmup, err = loadgen.Run(ctx, cfg); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
		fmt.Println(HTTPMeasureLine)
		cfg.Duration = c.Duration
		res.Report, err = loadgen.Run(ctx, cfg)
		fmt.Println(HTTPDoneLine)
		return err
	}()
	if err != nil {
		res.Error = err.Error()
	}
	return writeJSON(c.Out, res)
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

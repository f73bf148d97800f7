package host

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/apps/loadgen"
	"github.com/newtsim/newtsim/apps/ready"
	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/servers/sys"
)

// The clienthost role is a remote client machine, as the NewtOS
// evaluation's: a whole host in one process (the monolithic stack) on the
// far end of a `wire` from a multiserver host's nic, running the load
// generator against a server there. Frames come from the nic as FrameRx
// messages in its buffers and go to it the same way in this process's
// own; the nic's link model shapes the wire in its direction.

// ClientResult is what the clienthost role writes: the load generator's
// report, or why it could not run.
type ClientResult struct {
	Warmup loadgen.Report    `json:"warmup"`
	Report loadgen.Report    `json:"report"`
	Error  string            `json:"error,omitempty"`
	Drops  map[string]uint64 `json:"drops"`
}

type clientHost struct {
	peer    string
	frames  chan []byte
	h       *Host
	lg      loadgen.Config
	out     string
	control string
	ready   string
	s       *sys.Server
	// rxFull counts the frames off the wire that found the host's
	// receive queue full, as the client machine's NIC counts them.
	rxFull prometheus.Counter
}

// ClientCell is one load a controlled clienthost runs (--control DIR): the
// driver writes cell-N.json; the host warms up, creates cell-N.measure as
// its measured run starts, and writes cell-N.result.json (a ClientResult,
// with the warm-up's report in Warmup) when it ends.
type ClientCell struct {
	Path            string        `json:"path"`
	Connections     int           `json:"connections"`
	RequestsPerConn int           `json:"requests_per_conn"`
	Warmup          time.Duration `json:"warmup_ns"`
	Duration        time.Duration `json:"duration_ns"`
	Timeout         time.Duration `json:"timeout_ns"`
}

// CellPath names a controlled clienthost's files for cell n: the
// configuration, the measuring marker and the result.
func CellPath(dir string, n int, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf("cell-%d%s", n, suffix))
}

// ClientHost starts the clienthost role: a whole monolithic host (the same engines in one process) on the far end of a wire, as a remote client machine.
func ClientHost(s *sys.Server) (sys.Handler, error) {
	c := &clientHost{frames: make(chan []byte, 1024), s: s}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "nic",
		Name: "dropped_frames_total", Help: "Frames the device dropped, by reason."}, []string{"reason"})
	s.Registry.MustRegister(dropped)
	c.rxFull = dropped.WithLabelValues("rx-full")
	fs := flag.NewFlagSet("clienthost", flag.ContinueOnError)
	addr := fs.String("addr", "198.18.1.1/24", "the host's address and subnet")
	mac := fs.String("mac", "02:00:00:00:02:01", "the host's MAC address")
	fs.StringVar(&c.peer, "wire-peer", "nic", "the nic at the other end of the wire")
	target := fs.String("target", "198.18.1.2:80", "the HTTP server")
	fs.StringVar(&c.lg.Path, "path", "/", "the path to request")
	fs.IntVar(&c.lg.Requests, "requests", 1000, "requests to make")
	fs.IntVar(&c.lg.Connections, "connections", 4, "connections at once")
	fs.IntVar(&c.lg.RequestsPerConn, "requests-per-conn", 10, "requests per connection (0: keep-alive for ever)")
	fs.DurationVar(&c.lg.Timeout, "timeout", 10*time.Second, "a request's time-out")
	fs.StringVar(&c.out, "out", "", "where to write the result (JSON)")
	fs.StringVar(&c.control, "control", "", "run the loads a driver writes into this directory, one after another (ClientCell)")
	fs.StringVar(&c.ready, "ready", "", "wait first for the server's note in this file (package ready; httpd --ready "+
		"writes it) and load the port in it at --target's address")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	a, err := netip.ParsePrefix(*addr)
	if err != nil {
		return nil, fmt.Errorf("clienthost: --addr: %w", err)
	}
	hw, err := net.ParseMAC(*mac)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("clienthost: --mac %q: %v", *mac, err)
	}
	if c.lg.Target, err = netip.ParseAddrPort(*target); err != nil {
		return nil, fmt.Errorf("clienthost: --target: %w", err)
	}
	s.SendFromGoroutines() // frames go out from the host's loop and the application's calls
	c.h, err = New(Config{MAC: [6]byte(hw), Addr: a}, c.send)
	return c, err
}

// send puts a frame on the wire: a buffer of ours, to the nic. The host's
// tcp has no TSO (the wire has none), so segSize is always 0.
func (c *clientHost) send(frame []byte, _ int) error {
	// No buffer, or the nic's ring is full: the frame is lost, as on a
	// full NIC ring, and TCP sends it again.
	var m ipc.Message
	packet.Frame{Type: ipc.FrameRx}.Encode(&m)
	c.s.TrySendCopy(c.peer, &m, frame)
	return nil
}

// Handle takes the frames the nic sends over the wire.
func (c *clientHost) Handle(s *sys.Server, m *ipc.Message) error {
	if m.Type != ipc.FrameRx {
		return nil
	}
	var fr packet.Frame
	fr.Decode(m)
	b, err := s.Buffer(m, fr.Buf)
	if err != nil {
		return nil
	}
	f := append([]byte(nil), b...)
	s.Release(fr.Buf)
	select {
	case c.frames <- f:
	default: // the host is behind: dropped, as by a full RX ring
		c.rxFull.Inc()
	}
	return nil
}

// Read hands the host's loop the next frame off the wire.
func (c *clientHost) Read(b []byte) (int, error) { return copy(b, <-c.frames), nil }

// Write sends a frame.
func (c *clientHost) Write(frame []byte, segSize int) error { return c.send(frame, segSize) }

// readyWait bounds how long a clienthost waits for its server's note.
const readyWait = time.Minute

// Run starts the host and the load generator, then serves the wire.
func (c *clientHost) Run(s *sys.Server) error {
	ctx := context.Background()
	go Serve(ctx, c.h, c)
	if c.control != "" {
		go c.controlled(ctx)
		return s.Serve(c)
	}
	go func() {
		c.lg.API = c.h.API()
		var rep loadgen.Report
		err := c.awaitServer()
		if err == nil {
			rep, err = loadgen.Run(ctx, c.lg)
		}
		res := ClientResult{Report: rep, Drops: c.h.Drops()}
		if err != nil {
			res.Error = err.Error()
		}
		if c.out != "" {
			if err := sys.WriteResult(c.out, res); err != nil {
				c.s.Log.Printf("%v", err)
			}
		}
	}()
	return s.Serve(c)
}

// awaitServer waits for the server's note with --ready, and takes its port.
func (c *clientHost) awaitServer() error {
	if c.ready == "" {
		return nil
	}
	port, err := ready.Await(c.ready, readyWait)
	if err != nil {
		return fmt.Errorf("clienthost: %w", err)
	}
	c.lg.Target = netip.AddrPortFrom(c.lg.Target.Addr(), port)
	return nil
}

// controlled runs the cells a driver writes, in order, for as long as the
// process lives.
func (c *clientHost) controlled(ctx context.Context) {
	api := c.h.API()
	if err := c.awaitServer(); err != nil {
		c.s.Log.Printf("%v", err)
	}
	for n := 1; ; n++ {
		var cell ClientCell
		for {
			b, err := os.ReadFile(CellPath(c.control, n, ".json"))
			if err == nil && json.Unmarshal(b, &cell) == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cfg := loadgen.Config{API: api, Target: c.lg.Target, Path: cell.Path, Connections: cell.Connections,
			RequestsPerConn: cell.RequestsPerConn, Timeout: cell.Timeout}
		var res ClientResult
		err := func() error {
			if cell.Warmup > 0 {
				cfg.Duration = cell.Warmup
				var err error
				if res.Warmup, err = loadgen.Run(ctx, cfg); err != nil {
					return fmt.Errorf("warm-up: %w", err)
				}
			}
			if err := os.WriteFile(CellPath(c.control, n, ".measure"), nil, 0o644); err != nil {
				return err
			}
			cfg.Duration = cell.Duration
			var err error
			res.Report, err = loadgen.Run(ctx, cfg)
			return err
		}()
		if err != nil {
			res.Error = err.Error()
		}
		res.Drops = c.h.Drops()
		if err := sys.WriteResult(CellPath(c.control, n, ".result.json"), res); err != nil {
			c.s.Log.Printf("%v", err)
		}
	}
}

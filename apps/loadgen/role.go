package loadgen

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/apps/ready"
	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
)

// The loadgen role runs the load generator as an application of the
// simulated host, on any backend of the socket library.

// RoleResult is what the loadgen role writes.
type RoleResult struct {
	Report Report `json:"report"`
	Error  string `json:"error,omitempty"`
}

type role struct {
	backend, out string
	c            Config
	delay        time.Duration
	ready        string
}

// Role starts the loadgen role: the load generator as an application of the simulated host.
func Role(s *sys.Server) (sys.Handler, error) {
	r := &role{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&r.backend, "backend", "message", "the socket library's backend: message or exposed")
	target := fs.String("target", "127.0.0.1:80", "the HTTP server")
	fs.StringVar(&r.c.Path, "path", "/", "the path to request")
	fs.IntVar(&r.c.Requests, "requests", 1000, "requests to make")
	fs.IntVar(&r.c.Connections, "connections", 4, "connections at once")
	fs.IntVar(&r.c.RequestsPerConn, "requests-per-conn", 10, "requests per connection (0: keep-alive for ever)")
	fs.DurationVar(&r.c.Timeout, "timeout", 10*time.Second, "a request's time-out")
	fs.DurationVar(&r.delay, "delay", 200*time.Millisecond, "wait this long first, for the server to start (without --ready)")
	fs.StringVar(&r.ready, "ready", "", "wait instead for the server's note in this file (package ready; httpd --ready "+
		"writes it) and load the port in it at --target's address")
	fs.StringVar(&r.out, "out", "", "where to write the result (JSON)")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	var err error
	if r.c.Target, err = netip.ParseAddrPort(*target); err != nil {
		return nil, fmt.Errorf("loadgen: --target: %w", err)
	}
	return r, nil
}

func (r *role) Handle(*sys.Server, *ipc.Message) error { return nil }

// readyWait bounds how long the role waits for its server's note.
const readyWait = time.Minute

// await waits for the server: for its note with --ready, else for --delay.
func (r *role) await() error {
	if r.ready == "" {
		time.Sleep(r.delay)
		return nil
	}
	port, err := ready.Await(r.ready, readyWait)
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	r.c.Target = netip.AddrPortFrom(r.c.Target.Addr(), port)
	return nil
}

// Run loads the server, writes the report, then serves until shut down.
func (r *role) Run(s *sys.Server) error {
	var res RoleResult
	api, err := socket.Open(socket.Config{Backend: r.backend, Conn: s})
	if err == nil {
		err = r.await()
	}
	if err == nil {
		r.c.API = api
		res.Report, err = Run(context.Background(), r.c)
	}
	if err != nil {
		res.Error = err.Error()
	}
	if r.out != "" {
		if err := sys.WriteResult(r.out, res); err != nil {
			return err
		}
	}
	return s.Serve(r)
}

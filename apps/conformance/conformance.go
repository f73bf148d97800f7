// Package conformance runs the socket library's conformance suite
// (apps/socket/socktest) inside an application process of the simulated
// host, on the `message` backend, and writes each case's result to a file:
// the same table of calls that `go test` runs on Linux.
package conformance

import (
	"flag"
	"net/netip"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/apps/socket/socktest"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
)

type app struct {
	out     string
	backend string
	env     socktest.Env
}

// Role starts the socktest role: the socket conformance suite as an application.
func Role(s *sys.Server) (sys.Handler, error) {
	a := &app{}
	fs := flag.NewFlagSet("socktest", flag.ContinueOnError)
	fs.StringVar(&a.out, "out", "", "where to write the results (JSON: case name to failure, \"\" when it passed)")
	fs.StringVar(&a.backend, "backend", "message", "the socket library's backend: message or exposed")
	addr := fs.String("addr", "127.0.0.1", "the host's address the sockets use")
	port := fs.Uint("closed-port", 9, "a port nothing listens on, for UDP and TCP")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(*addr)
	if err != nil {
		return nil, err
	}
	a.env = socktest.Env{Addr: ip, ClosedPort: uint16(*port)}
	return a, nil
}

func (a *app) Handle(*sys.Server, *ipc.Message) error { return nil }

// Run runs the suite, writes the results, then serves until shut down.
func (a *app) Run(s *sys.Server) error {
	api, err := socket.Open(socket.Config{Backend: a.backend, Conn: s})
	if err != nil {
		return err
	}
	results := map[string]string{}
	for _, c := range socktest.AllCases() {
		s.Log.Printf("case %q", c.Name)
		for name, failure := range socktest.Run([]socktest.Case{c}, api, a.env) {
			results[name] = failure
		}
	}
	if err := sys.WriteResult(a.out, results); err != nil {
		return err
	}
	return s.Serve(a)
}

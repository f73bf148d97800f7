package probe

import (
	"flag"
	"net/netip"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
)

// onHost is one side of a measured pair run as a role on the simulated
// host: its Run opens the socket API's message backend, does the side, and
// then serves until shut down; it has no use for the messages the loop
// does not answer itself.
type onHost func(s *sys.Server, api socket.API) error

// Handle ignores what the loop hands it.
func (onHost) Handle(*sys.Server, *ipc.Message) error { return nil }

// Run does the side on the message backend, then serves until shut down.
func (side onHost) Run(s *sys.Server) error { return onBackend{side, "message"}.Run(s) }

// onBackend is an onHost side on a backend of the socket library named
// (message, or exposed for a process linked to tcp too).
type onBackend struct {
	side    onHost
	backend string
}

// Handle ignores what the loop hands it.
func (onBackend) Handle(*sys.Server, *ipc.Message) error { return nil }

// Run does the side, then serves until shut down.
func (b onBackend) Run(s *sys.Server) error {
	api, err := socket.Open(socket.Config{Backend: b.backend, Conn: s})
	if err != nil {
		return err
	}
	if err := b.side(s, api); err != nil {
		return err
	}
	return s.Serve(b)
}

// parseTarget parses a role's arguments with fs, to which it adds the
// flag --target (the listening side's address, with usage), and returns
// the target.
func parseTarget(fs *flag.FlagSet, args []string, usage string) (netip.AddrPort, error) {
	target := fs.String("target", "127.0.0.1:9000", usage)
	if err := fs.Parse(args); err != nil {
		return netip.AddrPort{}, err
	}
	return netip.ParseAddrPort(*target)
}

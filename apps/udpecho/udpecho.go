// Package udpecho is a UDP echo application written against the socket
// library, so the same program runs on any backend. As a role (`udpecho`)
// it runs on the simulated host with the `message` backend: every call a
// message to the syscall server.
package udpecho

import (
	"flag"
	"net/netip"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
)

// Serve answers every datagram on port with the same bytes, until a call
// fails.
func Serve(api socket.API, port uint16) error {
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer api.Close(fd)
	if err := api.Bind(fd, netip.AddrPortFrom(netip.IPv4Unspecified(), port)); err != nil {
		return err
	}
	return Echo(api, fd)
}

// Echo answers every datagram on fd, a bound datagram socket, with the same
// bytes, until a call fails.
func Echo(api socket.API, fd socket.FD) error {
	buf := make([]byte, 2048)
	for {
		n, from, err := api.RecvFrom(fd, buf, 0)
		if err != nil {
			return err
		}
		if _, err := api.SendTo(fd, buf[:n], 0, from); err != nil {
			return err
		}
	}
}

type app struct{ port uint16 }

// Role starts the udpecho role: a UDP echo server on the socket API.
func Role(s *sys.Server) (sys.Handler, error) {
	fs := flag.NewFlagSet("udpecho", flag.ContinueOnError)
	port := fs.Uint("port", 7, "the port to echo on")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	return &app{port: uint16(*port)}, nil
}

// Handle is never reached: the application's loop is Run.
func (a *app) Handle(*sys.Server, *ipc.Message) error { return nil }

// Run serves echo over the message backend.
func (a *app) Run(s *sys.Server) error {
	api, err := socket.Open(socket.Config{Backend: "message", Conn: s})
	if err != nil {
		return err
	}
	return Serve(api, a.port)
}

package probe

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
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

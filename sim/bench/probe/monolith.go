package probe

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/apps/udpecho"
	"github.com/newtsim/newtsim/sim/host"
)

// The monolith rows of bench tcp and bench udp: the same measuring code
// as every other row, its two sides goroutines of one process over the
// loopback of a monolithic host (sim/host: the ip, udp and tcp engines
// linked in that process), each side with a socket API of its own, as two
// processes of the simulated host have. The path is the message rows':
// application, tcp (or udp), ip's loopback, tcp (or udp), application;
// with every call a function call under the host's lock in place of a
// message to a server.

// monolithAddr is the monolithic host's address; the rows use its
// loopback.
var monolithAddr = netip.MustParsePrefix("198.18.0.2/24")

// loopback is the address both sides of a monolith row use.
var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// monolith starts a host with no wire and returns it with the function
// that stops it.
func monolith() (*host.Host, func(), error) {
	h, err := host.New(host.Config{MAC: monolithMAC, Addr: monolithAddr}, func([]byte, int) error { return nil })
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- host.Serve(ctx, h, nil) }()
	return h, func() { cancel(); <-done }, nil
}

// monolithPeer runs a monolith mode of PeerMain: tcp-bulk-monolith (a
// source sends size bytes to a sink, which checks them), udp-stream-monolith
// (a blaster sends StreamCount datagrams of size bytes to a sink, then
// searches for its throughput) or udp-ping-monolith (round trips of size
// bytes to the echo program).
func monolithPeer(o PeerOptions) error {
	mode, out, size := o.Mode, o.Out, o.Size
	h, stop, err := monolith()
	if err != nil {
		return err
	}
	defer stop()
	switch mode {
	case "tcp-bulk-monolith":
		r, err := monolithBulk(h, int64(size))
		if err != nil {
			r.Error = err.Error()
		}
		return writeJSON(out, r)
	case "udp-stream-monolith":
		r, err := monolithStream(h, StreamOptions{Count: StreamCount, Size: size, Search: o.Search})
		if err != nil {
			return err
		}
		return writeJSON(out, r)
	case "udp-ping-monolith":
		s, err := monolithPing(h, size)
		if err != nil {
			return err
		}
		return writeSample(out, s)
	}
	return fmt.Errorf("bench: unknown mode %q", mode)
}

// monolithBulk moves size bytes from a source to a sink over the host's
// loopback.
func monolithBulk(h *host.Host, size int64) (TCPStreamResult, error) {
	sink := h.API()
	ln, err := Listen(sink, netip.AddrPortFrom(loopback, 0), SinkBacklog)
	if err != nil {
		return TCPStreamResult{FirstBad: -1}, fmt.Errorf("bench: sink: %w", err)
	}
	addr, err := sink.LocalAddr(ln)
	if err != nil {
		return TCPStreamResult{FirstBad: -1}, err
	}
	type result struct {
		r   TCPStreamResult
		err error
	}
	got := make(chan result, 1)
	go func() {
		r, err := TCPSink(sink, ln, 30*time.Second)
		got <- result{r, err}
	}()
	serr := TCPSource(h.API(), addr, size)
	res := <-got
	if res.err == nil && serr != nil {
		res.err = serr
	}
	return res.r, res.err
}

// monolithStream runs a blaster's streams to a sink over the host's
// loopback.
func monolithStream(h *host.Host, o StreamOptions) (StreamReport, error) {
	sink := h.API()
	fd, err := sink.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return StreamReport{}, err
	}
	defer sink.Close(fd)
	if err := sink.Bind(fd, netip.AddrPortFrom(loopback, 0)); err != nil {
		return StreamReport{}, err
	}
	addr, err := sink.LocalAddr(fd)
	if err != nil {
		return StreamReport{}, err
	}
	got := make(chan error, 1)
	go func() { got <- sinkOn(sink, fd) }()
	r, err := Blast(h.API(), addr, o)
	if err != nil {
		return r, err // the sink gives up after streamIdle, or ends with the process
	}
	return r, <-got
}

// monolithPing measures round trips to the echo program over the host's
// loopback.
func monolithPing(h *host.Host, size int) (Sample, error) {
	echo := h.API()
	fd, err := echo.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return Sample{}, err
	}
	if err := echo.Bind(fd, netip.AddrPortFrom(loopback, 0)); err != nil {
		return Sample{}, err
	}
	addr, err := echo.LocalAddr(fd)
	if err != nil {
		return Sample{}, err
	}
	go udpecho.Echo(echo, fd) // ends with the process
	return UDPRoundTrips(h.API(), addr, size)
}

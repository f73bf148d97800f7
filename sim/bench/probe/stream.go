package probe

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/servers/sys"
)

// A one-way stream: a blaster sends datagrams as fast as its socket calls
// let it, a sink counts what arrives and over how long. The sink echoes
// datagrams that start with "probe" (hello), so the blaster knows it is
// listening before the stream starts, and stops at the first that starts
// with "end of stream" (bye), which it echoes too: the blaster sends it
// after its last datagram, and again until the sink answers, waiting
// twice as long each time from handshakeEvery up to a second (a bye that
// finds the sink's queue full is dropped there, as the stream's datagrams
// are; one that finds the sink gone is counted by udp as no-socket).
// The path is first in, first out, so the datagrams sent before bye have
// arrived or been dropped when it arrives; a stall on the way (a loaded
// machine, a server waiting) delays them but does not count them lost.
// A datagram's first 8 bytes are its number, below 1<<56, so neither
// marker is ever taken for one.

var (
	hello = []byte("probe")
	bye   = []byte("end of stream")
)

// Stream timing: how long the blaster first waits for an answer to hello
// or bye, how long it tries bye, and how long a sink that has received
// some of the stream waits for more (or for bye) before it counts the
// rest lost: only a blaster that died, or a path that stopped, takes it
// there.
const (
	handshakeEvery = 20 * time.Millisecond
	byeFor         = 60 * time.Second
	streamIdle     = 30 * time.Second
)

// StreamResult is what a sink measured.
type StreamResult struct {
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	Corrupt  int     `json:"corrupt"` // received but not as sent`
	Seconds  float64 `json:"seconds"` // first to last datagram of the stream
	PerSec   float64 `json:"datagrams_per_s"`
}

// StreamCount is how many datagrams a stream of `newtsim bench udp` sends.
const StreamCount = 10000

// Sink receives a stream of count datagrams on port, until its end (bye)
// or streamIdle with nothing, and returns how many came and how fast.
func Sink(api socket.API, port uint16, count int) (StreamResult, error) {
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return StreamResult{}, err
	}
	defer api.Close(fd)
	if err := api.Bind(fd, netip.AddrPortFrom(netip.IPv4Unspecified(), port)); err != nil {
		return StreamResult{}, err
	}
	return sinkOn(api, fd, count)
}

// sinkOn is Sink on fd, a bound datagram socket.
func sinkOn(api socket.API, fd socket.FD, count int) (StreamResult, error) {
	return sinkIdle(api, fd, count, streamIdle)
}

// sinkIdle is sinkOn, giving up on the rest of a started stream after idle
// with nothing.
func sinkIdle(api socket.API, fd socket.FD, count int, idle time.Duration) (StreamResult, error) {
	buf := make([]byte, 2048)
	var r StreamResult
	var first, last time.Time
	for {
		p := []socket.PollFD{{FD: fd, Events: socket.POLLIN}}
		n, err := api.Poll(p, idle)
		if err != nil {
			return r, err
		}
		if n == 0 {
			if r.Received > 0 {
				break // the blaster or the path is gone: the rest was lost
			}
			continue
		}
		k, from, err := api.RecvFrom(fd, buf, 0)
		if err != nil {
			return r, err
		}
		if bytes.HasPrefix(buf[:k], hello) {
			api.SendTo(fd, buf[:k], 0, from)
			continue
		}
		if bytes.HasPrefix(buf[:k], bye) {
			api.SendTo(fd, buf[:k], 0, from)
			break
		}
		if r.Received == 0 {
			first = time.Now()
		}
		last = time.Now()
		r.Received++
		if k < 8 || !bytes.Equal(buf[:k], payload(binary.BigEndian.Uint64(buf[:8]), k)) {
			r.Corrupt++
		}
	}
	r.Sent = count
	r.Seconds = last.Sub(first).Seconds()
	if r.Seconds > 0 {
		r.PerSec = float64(r.Received-1) / r.Seconds
	}
	return r, nil
}

// Blast waits for the sink to answer a probe, then sends count datagrams
// of size bytes to it, then the end of the stream until the sink answers.
func Blast(api socket.API, target netip.AddrPort, count, size int) error {
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer api.Close(fd)
	if err := api.Connect(fd, target); err != nil {
		return err
	}
	if err := handshake(api, fd, hello, false, 10*time.Second); err != nil {
		return fmt.Errorf("bench: no sink at %s: %w", target, err)
	}
	for i := 0; i < count; i++ {
		if _, err := api.Send(fd, payload(uint64(i), max(size, 8)), 0); err != nil && !errors.Is(err, unix.ECONNREFUSED) {
			return err
		}
	}
	if err := handshake(api, fd, bye, true, byeFor); err != nil {
		return fmt.Errorf("bench: the sink at %s did not answer the end of the stream: %w", target, err)
	}
	return nil
}

// handshake sends msg on fd, a connected socket, until an answer that
// starts with it comes back, or for at most limit: every handshakeEvery,
// or with backoff, after twice as long each time, up to a second.
func handshake(api socket.API, fd socket.FD, msg []byte, backoff bool, limit time.Duration) error {
	in := make([]byte, 2048)
	deadline := time.Now().Add(limit)
	wait := handshakeEvery
	for time.Now().Before(deadline) {
		if _, err := api.Send(fd, msg, 0); err != nil && !errors.Is(err, unix.ECONNREFUSED) {
			return err
		}
		p := []socket.PollFD{{FD: fd, Events: socket.POLLIN}}
		n, _ := api.Poll(p, wait)
		if backoff {
			wait = min(2*wait, time.Second)
		}
		if n == 0 {
			continue
		}
		k, err := api.Recv(fd, in, 0)
		switch {
		case err == nil && bytes.HasPrefix(in[:k], msg):
			return nil
		case err != nil && !errors.Is(err, unix.ECONNREFUSED):
			return err
		}
	}
	return fmt.Errorf("no answer in %v", limit)
}

// payload is datagram number seq of a stream: the number, a SHA-256 of it,
// then bytes of it, cut to size, so a sink can tell any change.
func payload(seq uint64, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b, seq)
	sum := sha256.Sum256(b[:8])
	n := copy(b[8:], sum[:])
	for i := 8 + n; i < size; i++ {
		b[i] = byte(seq)
	}
	return b
}

// The udpsink and udpblast roles run the stream on the simulated host.
// UDPSinkRole starts the udpsink role: the receiving side of the UDP stream benchmark.
var UDPSinkRole sys.Starter = newStreamRole(true)

// UDPBlastRole starts the udpblast role: the sending side of the UDP stream benchmark.
var UDPBlastRole sys.Starter = newStreamRole(false)

type streamRole struct {
	sink   bool
	target netip.AddrPort
	count  int
	size   int
	out    string
}

func newStreamRole(sink bool) sys.Starter {
	return func(s *sys.Server) (sys.Handler, error) {
		r := &streamRole{sink: sink}
		fs := flag.NewFlagSet("udpstream", flag.ContinueOnError)
		fs.IntVar(&r.count, "count", 20000, "datagrams to send")
		fs.IntVar(&r.size, "size", 64, "datagram size")
		fs.StringVar(&r.out, "out", "", "where the sink writes its result")
		var err error
		r.target, err = parseTarget(fs, s.Opts.Args, "the sink's address (the sink listens on its port)")
		return onHost(r.run), err
	}
}

// run streams.
func (r *streamRole) run(s *sys.Server, api socket.API) error {
	if r.sink {
		res, err := Sink(api, r.target.Port(), r.count)
		if err != nil {
			return err
		}
		if err := writeJSON(r.out, res); err != nil {
			return err
		}
	} else if err := Blast(api, r.target, r.count, r.size); err != nil {
		return err
	}
	return nil
}

package probe

import (
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

// A TCP bulk stream: a source connects and writes a known byte sequence,
// then closes; a sink accepts one connection, reads to end of file,
// checks every byte against the same sequence and times it. The same
// functions run on every backend of the socket library.

// streamWord is the stream's 8-byte word j, stored little-endian: a
// function of j, different for every j (an odd multiplier is a bijection),
// so the sink checks what it reads without a copy of what was sent, and a
// byte lost, doubled or out of place shows. Words, not bytes, keep the
// check and the fill cheap beside what they measure: at a byte a time they
// ran at about 1 GB/s, less than Linux's loopback carries.
func streamWord(j int64) uint64 { return (uint64(j) + 1) * 0x9e3779b97f4a7c15 }

// streamByte is byte i of the stream.
func streamByte(i int64) byte { return byte(streamWord(i>>3) >> (8 * (i & 7))) }

// fillStream writes the stream's bytes from offset off into b.
func fillStream(b []byte, off int64) {
	i := 0
	for ; i < len(b) && (off+int64(i))&7 != 0; i++ {
		b[i] = streamByte(off + int64(i))
	}
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], streamWord((off+int64(i))>>3))
	}
	for ; i < len(b); i++ {
		b[i] = streamByte(off + int64(i))
	}
}

// checkStream counts the bytes of b that are not the stream's bytes from
// offset off, and returns the index in b of the first (-1 if none).
func checkStream(b []byte, off int64) (bad int64, first int) {
	first = -1
	byByte := func(from, to int) {
		for i := from; i < to; i++ {
			if b[i] != streamByte(off+int64(i)) {
				if first < 0 {
					first = i
				}
				bad++
			}
		}
	}
	i := 0
	for ; i < len(b) && (off+int64(i))&7 != 0; i++ {
		byByte(i, i+1)
	}
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != streamWord((off+int64(i))>>3) {
			byByte(i, i+8)
		}
	}
	byByte(i, len(b))
	return bad, first
}

// TCPStreamResult is what a sink measured.
type TCPStreamResult struct {
	Bytes      int64   `json:"bytes"`
	Mismatches int64   `json:"mismatches"` // bytes not as sent
	FirstBad   int64   `json:"first_bad"`  // offset of the first, -1 if none
	Seconds    float64 `json:"seconds"`    // accept to end of file
	Mbits      float64 `json:"mbit_per_s"` // payload throughput
	EOF        bool    `json:"eof"`        // the stream ended with end of file
	Error      string  `json:"error,omitempty"`
}

// Verify turns a sink's result into an error unless every one of size
// bytes came, as sent, then the end of file.
func (r TCPStreamResult) Verify(size int64) error {
	switch {
	case r.Error != "":
		return fmt.Errorf("sink: %s (after %d bytes)", r.Error, r.Bytes)
	case r.Mismatches != 0:
		return fmt.Errorf("sink: %d bytes not as sent, the first at offset %d", r.Mismatches, r.FirstBad)
	case r.Bytes != size || !r.EOF:
		return fmt.Errorf("sink: %d bytes of %d (end of file: %v)", r.Bytes, size, r.EOF)
	}
	return nil
}

// waitFD polls one descriptor for events, for at most timeout.
func waitFD(api socket.API, fd socket.FD, events int16, timeout time.Duration) error {
	p := []socket.PollFD{{FD: fd, Events: events}}
	n, err := api.Poll(p, timeout)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("bench: nothing ready on %d within %v", fd, timeout)
	}
	return nil
}

// Listen opens a stream socket listening on addr; port 0 takes one the
// stack picks, which LocalAddr tells.
func Listen(api socket.API, addr netip.AddrPort, backlog int) (socket.FD, error) {
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return -1, err
	}
	api.SetsockoptInt(fd, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	if err := api.Bind(fd, addr); err != nil {
		api.Close(fd)
		return -1, fmt.Errorf("bind %v: %w", addr, err)
	}
	if err := api.Listen(fd, backlog); err != nil {
		api.Close(fd)
		return -1, fmt.Errorf("listen on %v: %w", addr, err)
	}
	return fd, nil
}

// SinkBacklog is the backlog of a sink's listening socket.
const SinkBacklog = 8

// TCPSink accepts one connection on ln, a listening socket, reads the
// connection to end of file and checks it, and closes ln. It gives up
// after idle with nothing read. The listener stays open until the stream
// ends: on the exposed backend, closing it at once broke the connection
// just accepted (the source's send failed with EPIPE after about 320 kB
// and the sink waited for ever).
func TCPSink(api socket.API, ln socket.FD, idle time.Duration) (TCPStreamResult, error) {
	r := TCPStreamResult{FirstBad: -1}
	fd, _, err := api.Accept(ln)
	defer api.Close(ln)
	if err != nil {
		return r, fmt.Errorf("bench: sink: accept: %w", err)
	}
	defer api.Close(fd)
	if err := api.SetNonblock(fd, true); err != nil {
		return r, err
	}
	start := time.Now()
	buf := make([]byte, 64<<10)
	for {
		n, err := api.Recv(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) {
			if err := waitFD(api, fd, socket.POLLIN, idle); err != nil {
				return r, err
			}
			continue
		}
		if err != nil {
			r.Error = err.Error()
			break
		}
		if n == 0 {
			r.EOF = true
			break
		}
		if bad, first := checkStream(buf[:n], r.Bytes); bad > 0 {
			if r.FirstBad < 0 {
				r.FirstBad = r.Bytes + int64(first)
			}
			r.Mismatches += bad
		}
		r.Bytes += int64(n)
	}
	r.Seconds = time.Since(start).Seconds()
	if r.Seconds > 0 {
		r.Mbits = float64(r.Bytes) * 8 / r.Seconds / 1e6
	}
	return r, nil
}

// TCPSource connects to target, writes size bytes of the stream and
// closes. The sink must be listening already.
func TCPSource(api socket.API, target netip.AddrPort, size int64) error {
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return fmt.Errorf("bench: source: %w", err)
	}
	defer api.Close(fd)
	if err := api.Connect(fd, target); err != nil {
		return fmt.Errorf("bench: source: connect %v: %w", target, err)
	}
	buf := make([]byte, 64<<10)
	for off := int64(0); off < size; {
		n := min(int64(len(buf)), size-off)
		fillStream(buf[:n], off)
		k, err := api.Send(fd, buf[:n], 0)
		if err != nil {
			return fmt.Errorf("bench: source: send at %d: %w", off, err)
		}
		off += int64(k)
	}
	return nil
}

// The tcpsink and tcpsource roles run the stream on a simulated host.
// TCPSinkRole starts the tcpsink role: the receiving side of the TCP bulk benchmark.
var TCPSinkRole sys.Starter = newTCPStreamRole(true)

// TCPSourceRole starts the tcpsource role: the sending side of the TCP bulk benchmark.
var TCPSourceRole sys.Starter = newTCPStreamRole(false)

type tcpStreamRole struct {
	sink   bool
	target netip.AddrPort
	size   int64
	out    string
	ready  string
}

func newTCPStreamRole(sink bool) sys.Starter {
	return func(s *sys.Server) (sys.Handler, error) {
		r := &tcpStreamRole{sink: sink}
		fs := flag.NewFlagSet("tcpstream", flag.ContinueOnError)
		fs.Int64Var(&r.size, "bytes", 10<<20, "bytes the source sends")
		fs.StringVar(&r.out, "out", "", "where the sink writes its result")
		fs.StringVar(&r.ready, "ready", "", readyUsage)
		backend := fs.String("backend", "message", "the socket library's backend: message, or exposed (the process linked to tcp too)")
		var err error
		r.target, err = parseTarget(fs, s.Opts.Args, "the sink's address (the sink listens on its port; 0: one the stack picks)")
		return onBackend{r.run, *backend}, err
	}
}

// run streams.
func (r *tcpStreamRole) run(s *sys.Server, api socket.API) error {
	if r.sink {
		res, err := func() (TCPStreamResult, error) {
			ln, err := listenReady(api, r.target.Port(), SinkBacklog, r.ready)
			if err != nil {
				return TCPStreamResult{FirstBad: -1}, fmt.Errorf("bench: sink: %w", err)
			}
			return TCPSink(api, ln, time.Minute)
		}()
		if err != nil {
			res.Error = err.Error()
		}
		if err := writeJSON(r.out, res); err != nil {
			return err
		}
	} else if err := r.source(api); err != nil {
		s.Log.Printf("%v", err)
	}
	return nil
}

func (r *tcpStreamRole) source(api socket.API) error {
	target, err := awaitListener(r.target, r.ready)
	if err != nil {
		return fmt.Errorf("bench: source: %w", err)
	}
	return TCPSource(api, target, r.size)
}

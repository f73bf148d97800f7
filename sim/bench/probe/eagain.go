package probe

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/sim/syscount"
)

// The measuring side of the recvfrom-EAGAIN experiment (`newtsim bench
// eagain`): one connected TCP socket with nothing to read, and a
// non-blocking recvfrom called over and over on it.

// EagainResult is what the measuring application found.
type EagainResult struct {
	Sample
	Calls    int64   `json:"calls"`
	Eagain   int64   `json:"eagain"`
	Syscalls uint64  `json:"syscalls"` // on the measuring thread, in the counted pass
	Counted  int     `json:"counted"`  // calls in the counted pass
	PerCall  float64 `json:"syscalls_per_call"`
	Error    string  `json:"error,omitempty"`
}

// connectedPair makes a connected TCP socket pair on the loopback of api's
// host and returns the client side, non-blocking, and a clean-up.
func connectedPair(api socket.API) (socket.FD, func(), error) {
	var fds []socket.FD
	done := func() {
		for _, fd := range fds {
			api.Close(fd)
		}
	}
	ln, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return -1, done, err
	}
	fds = append(fds, ln)
	if err := api.Bind(ln, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		return -1, done, err
	}
	if err := api.Listen(ln, 4); err != nil {
		return -1, done, err
	}
	addr, err := api.LocalAddr(ln)
	if err != nil {
		return -1, done, err
	}
	c, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return -1, done, err
	}
	fds = append(fds, c)
	if err := api.Connect(c, addr); err != nil {
		return -1, done, fmt.Errorf("connect: %w", err)
	}
	srv, _, err := api.Accept(ln)
	if err != nil {
		return -1, done, fmt.Errorf("accept: %w", err)
	}
	fds = append(fds, srv)
	return c, done, api.SetNonblock(c, true)
}

// MeasureEagain calls a non-blocking recvfrom on a connected TCP socket
// with nothing to read: first in timed batches, then a counted pass in
// which the kernel counts the real system calls of the calling thread
// (counting slows every system call down, so the timed batches run with
// the counter off). The goroutine keeps its thread throughout.
func MeasureEagain(api socket.API, b Budget, counted int) (EagainResult, error) {
	var r EagainResult
	fd, done, err := connectedPair(api)
	defer done()
	if err != nil {
		return r, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 64)
	call := func(int) error {
		r.Calls++
		_, _, err := api.RecvFrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) {
			r.Eagain++
			return nil
		}
		return fmt.Errorf("recvfrom on an idle socket: %v, want EAGAIN", err)
	}
	if r.Sample, err = Measure(b, call); err != nil {
		return r, err
	}
	ctr, err := syscount.Open()
	if err != nil {
		return r, err
	}
	defer ctr.Close()
	if err := ctr.Start(); err != nil {
		return r, err
	}
	for i := range counted {
		if err := call(i); err != nil {
			return r, err
		}
	}
	n, err := ctr.Stop()
	if err != nil {
		return r, err
	}
	r.Syscalls, r.Counted = n, counted
	r.PerCall = float64(n) / float64(counted)
	return r, nil
}

// The eagain role measures on the simulated host (or, with --backend
// linux, on Linux's own sockets from a process of the same run).

type eagainRole struct {
	backend, out string
	counted      int
}

// EagainRole starts the eagain role: the measuring side of `bench eagain`.
func EagainRole(s *sys.Server) (sys.Handler, error) {
	r := &eagainRole{}
	fs := flag.NewFlagSet("eagain", flag.ContinueOnError)
	fs.StringVar(&r.backend, "backend", "message", "linux, message, message-direct or exposed")
	fs.StringVar(&r.out, "out", "", "where to write the result")
	fs.IntVar(&r.counted, "counted", 2000, "calls in the pass whose system calls the kernel counts")
	return r, fs.Parse(s.Opts.Args)
}

func (r *eagainRole) Handle(*sys.Server, *ipc.Message) error { return nil }

// Run measures, writes the result, then serves until shut down.
func (r *eagainRole) Run(s *sys.Server) error {
	res, err := func() (EagainResult, error) {
		api, err := socket.Open(socket.Config{Backend: r.backend, Conn: s})
		if err != nil {
			return EagainResult{}, err
		}
		return MeasureEagain(api, DefaultBudget, r.counted)
	}()
	if err != nil {
		res.Error = err.Error()
	}
	if err := writeJSON(r.out, res); err != nil {
		return err
	}
	return s.Serve(r)
}

package loadgen

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
)

// connState is where a connection slot is in its life.
type connState int

const (
	idle       connState = iota // no socket
	connecting                  // connect in progress
	connected
)

// pending is a request queued or sent on a connection, awaiting its
// response.
type pending struct {
	begin  int64     // offset in the connection's stream of its first byte
	queued time.Time // when it was queued
	start  time.Time // when its first byte was written; zero until then
}

// conn is a connection slot: the connection open in it, if any, and where
// that connection is in writing requests and reading responses.
type conn struct {
	fd    socket.FD
	state connState
	since time.Time // when the connect began

	// quota is how many requests of the budget the connection holds and
	// has not queued: at first one, or RequestsPerConn where that is set,
	// so that the requests divide into connections exactly.
	quota    int
	requests int       // requests queued on this connection
	inflight []pending // queued or sent, oldest first
	out      [][]byte  // bytes queued and not yet written
	queued   int64     // bytes queued so far
	sent     int64     // bytes written so far
	partial  []byte    // the start of a response head, while incomplete
	inBody   bool      // head read, reading its body
	head     response  // the head of the response being read
	left     int64     // body bytes still to read; -1 for all until EOF
	port     uint16    // the local port, where the run is traced
}

// reset empties the slot, keeping its buffers.
func (c *conn) reset() {
	clear(c.out)
	*c = conn{
		fd:       -1,
		inflight: c.inflight[:0],
		out:      c.out[:0],
		partial:  c.partial[:0],
	}
}

// timesOutAt returns when the connection times out, if it can: its connect,
// or its oldest request, timeout after it began.
func (c *conn) timesOutAt(timeout time.Duration) (time.Time, bool) {
	switch {
	case c.state == connecting:
		return c.since.Add(timeout), true
	case c.state == connected && len(c.inflight) > 0:
		t := c.inflight[0].start
		if t.IsZero() {
			t = c.inflight[0].queued
		}
		return t.Add(timeout), true
	}
	return time.Time{}, false
}

// open opens a connection in the idle slot c, giving it its quota of the
// budget.
func (r *runner) open(c *conn, now time.Time) error {
	fd, err := r.api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return fmt.Errorf("loadgen: socket: %w", err)
	}
	if err := r.api.SetNonblock(fd, true); err != nil {
		r.api.Close(fd)
		return fmt.Errorf("loadgen: set non-blocking: %w", err)
	}
	// Pipelined requests must not wait on Nagle's algorithm, but a backend
	// without TCP_NODELAY still carries the load, so its error is ignored.
	_ = r.api.SetsockoptInt(fd, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
	c.fd, c.state, c.since = fd, connecting, now
	if !r.unlimited {
		c.quota = 1
		if r.cfg.RequestsPerConn > 0 {
			c.quota = min(r.cfg.RequestsPerConn, r.budget)
		}
		r.budget -= c.quota
	}
	switch err := r.api.Connect(fd, r.cfg.Target); {
	case err == nil:
		return r.check(c, r.established(c))
	case errors.Is(err, unix.EINPROGRESS):
		return nil
	default:
		return r.check(c, connectFailure(r.cfg.Target, err))
	}
}

// handle handles the events revents of connection c.
func (r *runner) handle(c *conn, revents int16) error {
	var err error
	switch c.state {
	case connecting:
		err = r.connectDone(c)
	case connected:
		if revents&(socket.POLLIN|socket.POLLHUP|socket.POLLERR) != 0 {
			err = r.read(c)
		}
		if err == nil && c.state == connected && revents&socket.POLLOUT != 0 {
			err = r.flush(c)
		}
	}
	return r.check(c, err)
}

// check fails c where err is a failure, and returns any other error, which
// ends the run.
func (r *runner) check(c *conn, err error) error {
	var f *failure
	if errors.As(err, &f) {
		r.fail(c, f.kind)
		return nil
	}
	return err
}

// connectDone reads the result of a non-blocking connect.
func (r *runner) connectDone(c *conn) error {
	v, err := r.api.GetsockoptInt(c.fd, socket.SOL_SOCKET, socket.SO_ERROR)
	if err != nil {
		return fmt.Errorf("loadgen: getsockopt SO_ERROR: %w", err)
	}
	if v != 0 {
		return connectFailure(r.cfg.Target, unix.Errno(v))
	}
	return r.established(c)
}

// established starts a connection that has just connected.
func (r *runner) established(c *conn) error {
	r.opened++
	c.state = connected
	if r.traced {
		r.tracePort(c)
	}
	return r.fill(c)
}

// fail closes c after a failure of kind k. The requests in flight on it
// fail; where the connect failed, the request it was for does (the first of
// its quota), so that a server that fails every connect still ends a run.
func (r *runner) fail(c *conn, k kind) {
	n := len(c.inflight)
	if c.state == connecting {
		n = 1
		c.quota = max(c.quota-1, 0)
	}
	c.inflight = c.inflight[:0]
	r.errs[k] += int64(n)
	r.failed += int64(n)
	r.closeConn(c)
}

// closeConn closes c's connection, leaving the slot idle. The requests in
// flight on it and the rest of its quota go back to the budget, to be sent
// on another connection.
func (r *runner) closeConn(c *conn) {
	if !r.unlimited {
		r.budget += len(c.inflight) + c.quota
	}
	// A close that fails still frees the descriptor on every backend that
	// follows Linux; there is nothing else to do about it.
	_ = r.api.Close(c.fd)
	c.reset()
}

package httpd

import (
	"errors"
	"net/http"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
)

// connState is where a connection is in its life.
type connState int

const (
	// stateRead waits for a request, or the rest of one.
	stateRead connState = iota
	// stateWrite waits for the socket to take the queued responses.
	stateWrite
	// stateLinger has sent the last response and shut the write side; it
	// reads and drops what the client still sends until the client closes,
	// so that the close does not reset the connection under the response.
	stateLinger
	// stateClosed is done; the server drops it at the end of the round.
	stateClosed
)

// conn is one client connection.
type conn struct {
	fd    socket.FD
	peer  netip.AddrPort
	state connState
	// since is when the current wait began: the request's first byte, the
	// last response written (idle), the last write progress, the linger.
	since time.Time
	// lastIn is when the connection last received, or was accepted.
	lastIn time.Time
	// served tells that a request has been parsed whole.
	served bool

	in  []byte // received; in[off:] is not parsed yet
	off int
	eof bool // the client shut its side

	hdr        []byte   // queued response headers and small bodies
	queue      []queued // queued responses, in order
	iov        [][]byte // what Writev has still to take
	closeAfter bool     // end the connection once the queue is written
}

// queued is one response: its header is hdr up to hdrEnd, from the end of
// the one before; its body, if not in hdr, is body.
type queued struct {
	hdrEnd int
	body   []byte
}

func (s *Server) newConn(fd socket.FD, peer netip.AddrPort, now time.Time) *conn {
	var c *conn
	if n := len(s.free); n > 0 {
		c, s.free = s.free[n-1], s.free[:n-1]
		*c = conn{in: c.in[:0], hdr: c.hdr[:0], queue: c.queue[:0], iov: c.iov[:0]}
	} else {
		c = &conn{in: make([]byte, 0, s.readSize)}
	}
	c.fd, c.peer, c.since, c.lastIn = fd, peer, now, now
	return c
}

// unfinished reports whether the connection waits for the rest of a
// request header, or for its first request: one the server may shed.
// Between requests, a connection that has been served is not unfinished.
func (c *conn) unfinished() bool {
	return c.state == stateRead && (c.off < len(c.in) || !c.served)
}

// events returns what the connection waits for.
func (c *conn) events() int16 {
	if c.state == stateWrite {
		return socket.POLLOUT
	}
	return socket.POLLIN
}

// handle serves a connection that Poll found ready.
func (s *Server) handle(c *conn, revents int16, now time.Time) {
	if revents&socket.POLLNVAL != 0 {
		s.close(c)
		return
	}
	switch c.state {
	case stateRead:
		s.read(c, now)
		s.serve(c, now)
	case stateWrite:
		s.write(c, now)
		s.serve(c, now)
	case stateLinger:
		s.drain(c)
	}
}

// read takes what the socket holds, as far as the buffer goes.
func (s *Server) read(c *conn, now time.Time) {
	if c.off > 0 {
		c.in = c.in[:copy(c.in, c.in[c.off:])]
		c.off = 0
	}
	if len(c.in) == cap(c.in) {
		// Not reached: a full buffer is a header over the limit, answered
		// 431 as it arrived.
		return
	}
	n, err := s.api.Recv(c.fd, c.in[len(c.in):cap(c.in)], 0)
	switch {
	case errors.Is(err, unix.EAGAIN):
	case err != nil:
		s.close(c)
	case n == 0:
		c.eof = true
	default:
		if len(c.in) == 0 {
			c.since = now
		}
		c.lastIn = now
		c.in = c.in[:len(c.in)+n]
		s.ctr.bytesIn.Add(uint64(n))
	}
}

// serve answers the complete requests buffered and writes the responses,
// until the socket takes no more or no complete request is left.
func (s *Server) serve(c *conn, now time.Time) {
	for c.state == stateRead {
		s.parse(c, now)
		if len(c.queue) == 0 {
			if c.eof {
				// Nothing more will come; a partial request is dropped.
				s.close(c)
			}
			return
		}
		s.startWrite(c, now)
	}
}

// parse queues the responses to the complete requests buffered, up to
// maxBatch of them, stopping after one that ends the connection.
func (s *Server) parse(c *conn, now time.Time) {
	for len(c.queue) < maxBatch && !c.closeAfter && c.off < len(c.in) {
		req, n, err := ParseRequest(c.in[c.off:])
		switch {
		case err == nil && n > s.maxHeader, errors.Is(err, ErrIncomplete) && len(c.in)-c.off > s.maxHeader:
			s.queueError(c, http.StatusRequestHeaderFieldsTooLarge, false, now)
		case errors.Is(err, ErrIncomplete):
			return
		case errors.Is(err, ErrVersion):
			s.queueError(c, http.StatusHTTPVersionNotSupported, false, now)
		case err != nil:
			s.queueError(c, http.StatusBadRequest, false, now)
		default:
			c.off += n
			if c.off == len(c.in) {
				c.in, c.off = c.in[:0], 0
			} else {
				// The next request has begun.
				c.since = now
			}
			c.served = true
			s.ctr.requests.Add(1)
			s.respond(c, &req, now)
		}
	}
}

// startWrite gathers the queued responses for Writev and writes them.
func (s *Server) startWrite(c *conn, now time.Time) {
	start := 0
	for _, q := range c.queue {
		c.iov = append(c.iov, c.hdr[start:q.hdrEnd])
		if len(q.body) > 0 {
			c.iov = append(c.iov, q.body)
		}
		start = q.hdrEnd
	}
	c.state = stateWrite
	c.since = now
	s.write(c, now)
}

// write hands the socket what it takes of the queued responses. Once all
// is written, the connection goes back to reading, or to its close.
func (s *Server) write(c *conn, now time.Time) {
	for len(c.iov) > 0 {
		n, err := s.api.Writev(c.fd, c.iov)
		if errors.Is(err, unix.EAGAIN) {
			s.ctr.wouldBlock.Add(1)
			return
		}
		if err != nil {
			s.close(c)
			return
		}
		s.ctr.writes.Add(1)
		s.ctr.bytesOut.Add(uint64(n))
		c.since = now
		c.iov = consume(c.iov, n)
	}
	c.iov = c.iov[:0]
	clear(c.queue)
	c.queue = c.queue[:0]
	c.hdr = c.hdr[:0]
	c.since = now
	if c.closeAfter {
		s.linger(c, now)
		return
	}
	c.state = stateRead
}

// consume drops the first n bytes of iov.
func consume(iov [][]byte, n int) [][]byte {
	i := 0
	for i < len(iov) && n >= len(iov[i]) {
		n -= len(iov[i])
		iov[i] = nil
		i++
	}
	if i < len(iov) {
		iov[i] = iov[i][n:]
	}
	return iov[i:]
}

// linger shuts the write side after the last response and waits for the
// client to close; a client that has closed already is closed at once.
func (s *Server) linger(c *conn, now time.Time) {
	if c.eof || s.api.Shutdown(c.fd, socket.SHUT_WR) != nil {
		s.close(c)
		return
	}
	c.state = stateLinger
	c.since = now
	c.in, c.off = c.in[:0], 0
}

// drain reads and drops a lingering connection's input until it ends.
func (s *Server) drain(c *conn) {
	n, err := s.api.Recv(c.fd, s.scratch, 0)
	if errors.Is(err, unix.EAGAIN) {
		return
	}
	if err != nil || n == 0 {
		s.close(c)
	}
}

// close closes the connection's socket; reap drops it from the server's
// connections at the end of the round, and keeps it for reuse.
func (s *Server) close(c *conn) {
	s.api.Close(c.fd)
	c.state = stateClosed
	clear(c.iov)
	clear(c.queue)
	s.open--
	s.ctr.open.Add(-1)
}

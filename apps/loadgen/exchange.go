package loadgen

import (
	"errors"
	"io"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/trace"
)

// maxIov bounds the buffers of one Writev.
const maxIov = 64

// fill queues as many requests as c may have in flight and writes them; a
// connection left with nothing to do is closed.
func (r *runner) fill(c *conn) error {
	now := r.now()
	for len(c.inflight) < r.cfg.Pipeline && r.mayQueue(c) {
		if c.quota > 0 {
			c.quota--
		} else if !r.unlimited {
			r.budget--
		}
		b := r.requests[r.next]
		r.next = (r.next + 1) % len(r.requests)
		c.inflight = append(c.inflight, pending{begin: c.queued, queued: now})
		c.out = append(c.out, b)
		c.queued += int64(len(b))
		c.requests++
	}
	if len(c.inflight) == 0 {
		r.closeConn(c)
		return nil
	}
	return r.flush(c)
}

// mayQueue reports whether c may queue another request, pipelining aside.
func (r *runner) mayQueue(c *conn) bool {
	switch {
	case r.cfg.RequestsPerConn > 0 && c.requests >= r.cfg.RequestsPerConn:
		return false
	case r.unlimited || c.quota > 0:
		return true
	}
	// A connection without a quota of its own draws on the budget.
	return r.cfg.RequestsPerConn == 0 && r.budget > 0
}

// flush writes what it can of c's queued bytes, and notes when each request
// had its first byte written.
func (r *runner) flush(c *conn) error {
	for len(c.out) > 0 {
		var n int
		var err error
		var stamp uint64
		if r.traced {
			stamp = trace.Stamp()
		}
		if bufs := c.out[:min(len(c.out), maxIov)]; len(bufs) == 1 {
			n, err = r.api.Send(c.fd, bufs[0], 0)
		} else {
			n, err = r.api.Writev(c.fd, bufs)
		}
		if errors.Is(err, unix.EAGAIN) || err == nil && n <= 0 {
			return nil // POLLOUT says when to go on
		}
		if err != nil {
			return ioFailure("write", err)
		}
		now := r.now()
		for i := range c.inflight {
			if p := &c.inflight[i]; p.start.IsZero() && p.begin < c.sent+int64(n) {
				p.start = now
				if r.traced {
					r.traceSent(c, stamp)
				}
			}
		}
		c.sent += int64(n)
		c.out = advance(c.out, n)
	}
	return nil
}

// advance drops the first n bytes of bufs, keeping its array.
func advance(bufs [][]byte, n int) [][]byte {
	i := 0
	for ; i < len(bufs) && n >= len(bufs[i]); i++ {
		n -= len(bufs[i])
	}
	if i < len(bufs) {
		bufs[i] = bufs[i][n:]
	}
	k := copy(bufs, bufs[i:])
	clear(bufs[k:])
	return bufs[:k]
}

// read reads what c has received and parses it.
func (r *runner) read(c *conn) error {
	for {
		n, err := r.api.Recv(c.fd, r.buf, 0)
		if errors.Is(err, unix.EAGAIN) {
			return nil
		}
		if err != nil {
			return ioFailure("read", err)
		}
		if n == 0 {
			return r.eof(c)
		}
		r.bytesRead += int64(n)
		if err := r.consume(c, r.buf[:n]); err != nil {
			return err
		}
		if c.state != connected || n < len(r.buf) {
			return nil
		}
	}
}

// consume parses the bytes b received on c: response heads, which it keeps
// in c.partial until they are whole, and bodies, which it counts and drops.
func (r *runner) consume(c *conn, b []byte) error {
	for {
		if !c.inBody {
			if len(b) == 0 {
				return nil
			}
			data := b
			if len(c.partial) > 0 {
				c.partial = append(c.partial, b...)
				data = c.partial
			}
			h, n, err := parseResponse(data)
			if errors.Is(err, errIncomplete) {
				if len(c.partial) == 0 {
					c.partial = append(c.partial, b...)
				}
				return nil
			}
			if err != nil {
				return &failure{kindProtocol, err}
			}
			// b may now lie in c.partial's array; the only later write
			// there is an append of b's own bytes to its start, which
			// copies them safely.
			b, c.partial = data[n:], c.partial[:0]
			if len(c.inflight) == 0 {
				return &failure{kindProtocol, errors.New("response with no request outstanding")}
			}
			if h.status < 200 {
				if h.status == 101 {
					return &failure{kindProtocol, errors.New("unexpected 101 Switching Protocols")}
				}
				continue // an interim response: the final one follows
			}
			left, err := h.bodyLength()
			if err != nil {
				return &failure{kindProtocol, err}
			}
			c.head, c.left, c.inBody = h, left, true
		}
		if c.left < 0 {
			return nil // the body ends with the connection
		}
		k := min(c.left, int64(len(b)))
		c.left -= k
		b = b[k:]
		if c.left > 0 {
			return nil
		}
		if err := r.complete(c); err != nil || c.state != connected {
			// Bytes after a final response are dropped with its connection.
			return err
		}
	}
}

// complete ends the oldest request of c, whose response has been read.
func (r *runner) complete(c *conn) error {
	now := r.now()
	if r.traced {
		r.traceDone(c)
	}
	p := c.inflight[0]
	c.inflight = c.inflight[:copy(c.inflight, c.inflight[1:])]
	t := p.start
	if t.IsZero() {
		t = p.queued // the server answered before the request was sent
	}
	r.hist.Record(now.Sub(t))
	r.completed++
	r.status[c.head.status]++
	if class := c.head.status / 100; class != 2 && class != 3 {
		r.errs[kindStatus]++
	}
	c.inBody = false
	if c.head.close {
		// The server reads no more requests on this connection: those in
		// flight go back to be sent on another.
		r.closeConn(c)
		return nil
	}
	return r.fill(c)
}

// eof handles the server's end of c's stream.
func (r *runner) eof(c *conn) error {
	switch {
	case c.inBody && c.left < 0:
		return r.complete(c)
	case len(c.inflight) > 0 || len(c.partial) > 0 || c.inBody:
		return &failure{kindEOF, io.ErrUnexpectedEOF}
	}
	r.closeConn(c)
	return nil
}

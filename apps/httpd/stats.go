package httpd

import "sync/atomic"

// Stats counts what a server has done since New.
type Stats struct {
	// Accepted counts the connections accepted and served; Refused those
	// closed at once at the MaxConns limit, with none to shed; Shed the
	// connections with an unfinished request closed there to make room
	// for a new one; Open is the connections open now.
	Accepted, Refused, Shed uint64
	Open                    int64
	// Requests counts the well-formed requests parsed.
	Requests uint64
	// Responses counts the responses queued, by status code; those to
	// malformed, oversized and timed-out requests included.
	Responses map[int]uint64
	// Timeouts counts the connections ended by a timeout: 408, idle,
	// response left unread. Slow counts those of them answered 408 before
	// the header timeout, for a request arriving below the minimum rate.
	Timeouts, Slow uint64
	// BytesIn and BytesOut count the bytes received and sent.
	BytesIn, BytesOut uint64
	// Writes counts the Writev calls that wrote; WouldBlock those that
	// found the socket full (EAGAIN).
	Writes, WouldBlock uint64
	// Relistens counts the listening sockets opened again after the stack
	// reset them (a transport server or syscall restarted).
	Relistens uint64
}

// counters are the server's counts, written by Serve and read by Stats
// from any goroutine.
type counters struct {
	accepted, refused, shed, requests     atomic.Uint64
	timeouts, slow                        atomic.Uint64
	bytesIn, bytesOut, writes, wouldBlock atomic.Uint64
	relistens                             atomic.Uint64
	open                                  atomic.Int64
	status                                [600]atomic.Uint64
}

// count counts a response of the status.
func (c *counters) count(status int) {
	if status >= 0 && status < len(c.status) {
		c.status[status].Add(1)
	}
}

// Stats returns the server's counts. It may be called from any goroutine,
// while Serve runs.
func (s *Server) Stats() Stats {
	c := &s.ctr
	st := Stats{
		Accepted:   c.accepted.Load(),
		Refused:    c.refused.Load(),
		Shed:       c.shed.Load(),
		Open:       c.open.Load(),
		Requests:   c.requests.Load(),
		Responses:  map[int]uint64{},
		Timeouts:   c.timeouts.Load(),
		Slow:       c.slow.Load(),
		BytesIn:    c.bytesIn.Load(),
		BytesOut:   c.bytesOut.Load(),
		Writes:     c.writes.Load(),
		WouldBlock: c.wouldBlock.Load(),
		Relistens:  c.relistens.Load(),
	}
	for code := range c.status {
		if n := c.status[code].Load(); n > 0 {
			st.Responses[code] = n
		}
	}
	return st
}

package loadgen

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
)

// maxWait bounds a Poll, so that the run sees its context end and redraws
// its progress bar in good time.
const maxWait = 100 * time.Millisecond

// runner is the state of one run.
type runner struct {
	api socket.API
	cfg Config
	now func() time.Time

	requests [][]byte // the request for each path
	next     int      // index in requests of the next request to send

	// unlimited is Duration mode, where requests never run out; otherwise
	// budget is how many requests are neither queued on a connection nor
	// in a connection's quota.
	unlimited bool
	budget    int

	conns    []*conn // one per connection slot
	buf      []byte  // what Recv reads into
	pfds     []socket.PollFD
	polled   []*conn // polled[i] is the connection of pfds[i]
	progress *progress

	start, deadline time.Time
	traced          bool // stamps for a breakdown (trace.go)

	hist      Histogram
	completed int64 // responses read in full
	failed    int64 // requests failed
	bytesRead int64
	opened    int64
	errs      [numKinds]int64
	status    map[int]int64
}

func newRunner(c Config, reqs [][]byte) *runner {
	r := &runner{
		api:       c.API,
		cfg:       c,
		now:       c.Clock,
		requests:  reqs,
		unlimited: c.Duration > 0,
		budget:    c.Requests,
		conns:     make([]*conn, c.Connections),
		buf:       make([]byte, 64<<10),
		status:    map[int]int64{},
		progress:  newProgress(c.Progress, int64(c.Requests), c.Duration),
		traced:    traceOn(c),
	}
	for i := range r.conns {
		r.conns[i] = &conn{fd: -1}
	}
	return r
}

// run is the event loop: open connections where there is work, wait for
// the sockets, handle what they are ready for, until the work is done.
func (r *runner) run(ctx context.Context) error {
	r.start = r.now()
	r.deadline = r.start.Add(r.cfg.Duration)
	r.progress.begin(r.start)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("loadgen: run stopped: %w", err)
		}
		now := r.now()
		if r.unlimited && !now.Before(r.deadline) {
			return nil
		}
		r.expire(now)
		for _, c := range r.conns {
			if c.state == idle && r.haveWork() {
				if err := r.open(c, now); err != nil {
					return err
				}
			}
		}
		if r.done() {
			return nil
		}
		r.progress.update(now, r.completed, r.failed)
		if err := r.poll(now); err != nil {
			return err
		}
	}
}

// haveWork reports whether a connection opened now would have a request to
// send.
func (r *runner) haveWork() bool { return r.unlimited || r.budget > 0 }

// done reports whether every request has completed or failed.
func (r *runner) done() bool {
	if r.unlimited || r.budget > 0 {
		return false
	}
	for _, c := range r.conns {
		if c.state != idle {
			return false
		}
	}
	return true
}

// poll waits until a socket is ready, or until the next thing the loop must
// do on time, and handles the sockets that are ready.
func (r *runner) poll(now time.Time) error {
	r.pfds, r.polled = r.pfds[:0], r.polled[:0]
	for _, c := range r.conns {
		var ev int16
		switch c.state {
		case connecting:
			ev = socket.POLLOUT
		case connected:
			ev = socket.POLLIN
			if len(c.out) > 0 {
				ev |= socket.POLLOUT
			}
		default:
			continue
		}
		r.pfds = append(r.pfds, socket.PollFD{FD: c.fd, Events: ev})
		r.polled = append(r.polled, c)
	}
	if len(r.pfds) == 0 {
		// Every connection failed at once (refused, say): open new ones.
		return nil
	}
	if r.traced {
		traceSleep(false)
	}
	_, err := r.api.Poll(r.pfds, r.wait(now))
	if r.traced {
		traceSleep(true)
	}
	if err != nil {
		return fmt.Errorf("loadgen: poll: %w", err)
	}
	for i, p := range r.pfds {
		c := r.polled[i]
		if p.Revents == 0 || c.fd != p.FD {
			continue
		}
		if p.Revents&socket.POLLNVAL != 0 {
			return fmt.Errorf("loadgen: poll: descriptor %d: %w", p.FD, unix.EBADF)
		}
		if err := r.handle(c, p.Revents); err != nil {
			return err
		}
	}
	return nil
}

// wait returns how long a Poll may wait: until the run's end, the next
// timeout, or maxWait, rounded up to a millisecond, which is what the
// backends resolve.
func (r *runner) wait(now time.Time) time.Duration {
	d := maxWait
	if r.unlimited {
		d = min(d, r.deadline.Sub(now))
	}
	if r.cfg.Timeout > 0 {
		for _, c := range r.conns {
			if t, ok := c.timesOutAt(r.cfg.Timeout); ok {
				d = min(d, t.Sub(now))
			}
		}
	}
	d = max(d, 0)
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}

// expire fails the connections whose connect or oldest request has taken
// longer than the timeout.
func (r *runner) expire(now time.Time) {
	if r.cfg.Timeout <= 0 {
		return
	}
	for _, c := range r.conns {
		if t, ok := c.timesOutAt(r.cfg.Timeout); ok && !now.Before(t) {
			r.fail(c, kindTimeout)
		}
	}
}

// closeAll closes every open connection, at the end of a run; the requests
// in flight on them are neither completed nor failed.
func (r *runner) closeAll() {
	for _, c := range r.conns {
		if c.state != idle {
			r.api.Close(c.fd)
			c.reset()
		}
	}
}

// report returns the report of the run, which ended at end.
func (r *runner) report(end time.Time) Report {
	d := end.Sub(r.start)
	rep := Report{
		Requests:    r.completed,
		Duration:    d,
		BytesRead:   r.bytesRead,
		Connections: r.opened,
		Latency:     summarize(&r.hist),
		Errors: Errors{
			Connect:  r.errs[kindConnect],
			Refused:  r.errs[kindRefused],
			Reset:    r.errs[kindReset],
			Timeout:  r.errs[kindTimeout],
			Status:   r.errs[kindStatus],
			Protocol: r.errs[kindProtocol],
			EOF:      r.errs[kindEOF],
		},
		StatusCodes: r.status,
		Histogram:   &r.hist,
	}
	if d > 0 {
		rep.RequestsPerSec = float64(r.completed) / d.Seconds()
		rep.BytesPerSec = float64(r.bytesRead) / d.Seconds()
	}
	return rep
}

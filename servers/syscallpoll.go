package servers

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys"
)

// The one-call poll set (ipc.OpPollSet; docs/LATENCY.md): an application
// names its whole descriptor set in one call, its entries in a buffer of
// its pool, and syscall answers with the ready ones in one reply. It asks
// the transports only about the descriptors whose readiness it does not
// know, all at once (their answers come back together, not one round trip
// each); a descriptor a transport found not ready, and armed, stays not
// ready until the transport's Wake says otherwise, so a poll over idle
// connections asks nobody. When nothing is ready the call waits in
// syscall: the first Wake that finds a descriptor ready answers it, or its
// timeout does.

// pollRecheck bounds how long syscall trusts a transport's "not ready":
// a Wake that was lost (dropped on a full channel, or never sent by a
// transport that restarted) costs a waiting poll at most this.
const pollRecheck = 10 * time.Millisecond

// askBit marks the seq of a transport poll syscall makes itself, for an
// application's poll set, so that its answer is not passed on. An
// application's own calls keep their seq; one whose seq has the bit set
// and meets one of syscall's asks on its socket only confuses itself.
const askBit = 1 << 31

// pollWait is an application's poll set being answered.
type pollWait struct {
	q      request
	set    []pollItem
	asking int       // asks not yet answered
	until  time.Time // when the call's timeout passes (zero: never)
	check  time.Time // when to ask again about descriptors believed not ready
}

// pollItem is one entry of a poll set: the descriptor, the events asked
// about and those found ready.
type pollItem struct {
	fd      uint64
	events  int16
	revents int16
}

// ask is a transport poll syscall made for an entry of a poll set.
type ask struct {
	w  *pollWait
	i  int    // the entry
	to string // the transport asked
}

// readiness is what syscall knows of a descriptor's readiness, learned
// from its transport: not ready for events (an armed poll found none, and
// no Wake came since), or ready (a Wake said so: a socket stays ready
// until the application's own call on it). Either holds until the
// application calls on the descriptor, or pollRecheck passes.
type readiness struct {
	armed  bool  // the transport holds an arm of ours: its Wake is ours
	known  bool  // what follows holds, as of since
	events int16 // ready is 0: the events found not ready
	ready  int16 // what the socket was ready for
	since  time.Time
}

// answers is what r says of events asked about at now: the events ready,
// and whether it knows.
func (r readiness) answers(events int16, now time.Time) (int16, bool) {
	if !r.known || now.Sub(r.since) >= pollRecheck {
		return 0, false
	}
	if r.ready != 0 {
		ev := r.ready & (events | unix.POLLERR | unix.POLLHUP)
		return ev, ev != 0
	}
	return 0, events&^r.events == 0
}

// resetEvents is what poll says about a reset socket, as Linux does.
func resetEvents(events int16) int16 {
	return unix.POLLERR | unix.POLLHUP | events&(unix.POLLIN|unix.POLLOUT)
}

// pollSet starts answering an application's poll set. The buffer, which
// must be the caller's own, is copied out at once, and given back with the
// answer: the BufFree and the reply reach the application together, one
// wake-up, where a BufFree sent at once would wake it while it waits.
func (c *syscallServer) pollSet(s *sys.Server, q *request) error {
	now := c.now()
	if int(q.Buf.Pool()) != q.m.Src.Slot() {
		return q.fail(s, unix.EFAULT) // not the caller's to give back
	}
	b, err := s.Buffer(&q.m, q.Buf)
	if err != nil {
		return q.fail(s, unix.EFAULT)
	}
	entries, err := sockcall.ReadPollSet(c.entries[:0], b, q.Count)
	c.entries = entries[:0]
	if err != nil {
		s.Release(q.Buf)
		return q.fail(s, unix.EINVAL)
	}
	w := &pollWait{q: *q, set: make([]pollItem, len(entries))}
	if q.Timeout > 0 {
		w.until = now.Add(q.Timeout)
	}
	app := q.m.Src
	c.polls[app] = w
	for i, en := range entries {
		it := &w.set[i]
		it.fd, it.events = uint64(en.Sock), en.Events
		e, ok := c.fds[it.fd]
		switch {
		case !ok || e.app != app.Slot():
			it.revents = unix.POLLNVAL
		case e.dead:
			it.revents = resetEvents(it.events)
		default:
			if ev, ok := e.known.answers(it.events, now); ok {
				it.revents = ev // not ready (the transport would have said otherwise), or ready as its Wake said
			} else {
				c.ask(s, w, i)
			}
		}
	}
	return c.settle(s, w, now)
}

// ask asks the transport of entry i of w which of its events are ready,
// arming the socket if the call may wait.
func (c *syscallServer) ask(s *sys.Server, w *pollWait, i int) {
	it := &w.set[i]
	e, ok := c.fds[it.fd]
	switch {
	case !ok:
		it.revents = unix.POLLNVAL
		return
	case e.dead:
		it.revents = resetEvents(it.events)
		return
	}
	c.askSeq++
	seq := askBit | c.askSeq&(askBit-1)
	var m ipc.Message
	sockcall.Call{Op: ipc.OpPoll, Sock: e.sock, Events: it.events, Arm: w.q.Timeout != 0, Caller: w.q.m.Src}.Encode(&m)
	m.Seq = seq
	if err := s.SendTo(e.transport, &m); err != nil {
		it.revents = resetEvents(it.events) // the transport is dead or restarting
		return
	}
	c.asks[seq] = ask{w: w, i: i, to: e.transport}
	w.asking++
}

// answered takes a transport's answer to one of syscall's asks: what the
// descriptor is ready for, and, when it is ready for nothing and armed,
// that it stays so until a Wake.
func (c *syscallServer) answered(s *sys.Server, m *ipc.Message, r *sockcall.Reply) error {
	a, ok := c.asks[m.Seq]
	if !ok || s.PeerName(m.Src.Slot()) != a.to {
		return nil
	}
	delete(c.asks, m.Seq)
	now := c.now()
	w, it := a.w, &a.w.set[a.i]
	if e, ok := c.fds[it.fd]; ok && e.transport == a.to && !e.dead {
		e.known = readiness{armed: e.known.armed}
		if r.Result == 0 && w.q.Timeout != 0 {
			e.known = readiness{armed: true, known: true, events: it.events, since: now}
		}
		c.fds[it.fd] = e
	}
	switch {
	case r.Result >= 0:
		it.revents = int16(r.Result)
	case r.Result == -int64(unix.EBADF):
		it.revents = unix.POLLNVAL
	case r.Result == -int64(unix.ECONNRESET):
		it.revents = resetEvents(it.events)
	default:
		it.revents = unix.POLLERR
	}
	w.asking--
	if c.polls[w.q.m.Src] != w {
		return nil // the application gave up on the call
	}
	return c.settle(s, w, now)
}

// settle answers w once no ask is outstanding and an entry is ready, or
// the call may not wait (longer); otherwise it waits, the kernel alarm
// set for its timeout or the next recheck.
func (c *syscallServer) settle(s *sys.Server, w *pollWait, now time.Time) error {
	if w.asking > 0 {
		return nil
	}
	n := 0
	for _, it := range w.set {
		if it.revents != 0 {
			n++
		}
	}
	if n > 0 || w.q.Timeout == 0 || (!w.until.IsZero() && !now.Before(w.until)) {
		return c.answer(s, w, n)
	}
	if !now.Before(w.check) { // a first wait, or a recheck done: the next
		w.check = now.Add(pollRecheck)
	}
	at := w.check
	if !w.until.IsZero() && w.until.Before(at) {
		at = w.until
	}
	return c.alarm.Set(s, now, at)
}

// answer replies to w: how many entries are ready, and the first of them.
func (c *syscallServer) answer(s *sys.Server, w *pollWait, n int) error {
	c.giveUp(s, w.q.m.Src)
	r := w.q.Reply(int64(n))
	j := 0
	for i, it := range w.set {
		if it.revents != 0 && j < sockcall.MaxPollReady {
			r.Ready[j] = sockcall.PollReady{Index: uint16(i), Revents: it.revents}
			j++
		}
	}
	return w.q.answer(s, r)
}

// woken takes a transport's Wake for a socket syscall armed: what it says
// the socket is ready for is kept, and a poll set waiting on it is
// answered, or asks again where the Wake says nothing is ready. It
// reports whether the Wake was syscall's; one that was not goes on to the
// application.
func (c *syscallServer) woken(s *sys.Server, from string, wk *sockcall.Wake) (bool, error) {
	fd, ok := c.socks[sockKey{from, wk.Sock}]
	e, found := c.fds[fd]
	if !ok || !found || !e.known.armed || e.app != wk.Caller.Slot() {
		return false, nil
	}
	e.known = readiness{}
	if wk.Events != 0 {
		e.known = readiness{known: true, ready: wk.Events, since: c.now()}
	}
	c.fds[fd] = e
	w := c.polls[wk.Caller]
	if w == nil {
		return true, nil
	}
	for i := range w.set {
		if it := &w.set[i]; it.fd == fd && it.revents == 0 {
			if wk.Events != 0 {
				it.revents = wk.Events & (it.events | unix.POLLERR | unix.POLLHUP)
			}
			if it.revents == 0 {
				c.ask(s, w, i)
			}
		}
	}
	return true, c.settle(s, w, c.now())
}

// expired runs on the kernel alarm: waiting poll sets past their timeout
// are answered, those past their recheck ask again about every entry.
func (c *syscallServer) expired(s *sys.Server) error {
	c.alarm.Expired()
	now := c.now()
	for _, w := range c.polls {
		if w.asking > 0 {
			continue
		}
		switch {
		case !w.until.IsZero() && !now.Before(w.until):
			if err := c.answer(s, w, 0); err != nil {
				return err
			}
			continue
		case !now.Before(w.check):
			for i := range w.set {
				c.ask(s, w, i)
			}
		}
		if err := c.settle(s, w, now); err != nil {
			return err
		}
	}
	return nil
}

// giveUp forgets the poll set app waits in, if any, and gives its buffer
// back.
func (c *syscallServer) giveUp(s *sys.Server, app ipc.Endpoint) {
	if w, ok := c.polls[app]; ok {
		delete(c.polls, app)
		s.Release(w.q.Buf)
	}
}

// dropPolls forgets what syscall kept for an application's poll sets, or
// answers those waiting on a transport that died: its sockets are reset.
func (c *syscallServer) dropPolls(s *sys.Server, app ipc.Endpoint, transport string) {
	for seq, a := range c.asks {
		switch {
		case transport == "" && a.w.q.m.Src == app:
			delete(c.asks, seq)
		case transport != "" && a.to == transport:
			delete(c.asks, seq)
			a.w.set[a.i].revents = resetEvents(a.w.set[a.i].events)
			a.w.asking--
		}
	}
	if transport == "" {
		delete(c.polls, app) // its buffer went with it
		return
	}
	for _, w := range c.polls {
		for i := range w.set {
			if it := &w.set[i]; it.revents == 0 && c.fds[it.fd].dead {
				it.revents = resetEvents(it.events)
			}
		}
		c.settle(s, w, c.now())
	}
}

package tcp

import (
	"container/heap"
	"time"
)

// timerEntry is a tcb's next deadline in the Stack's heap. Entries go
// stale when the tcb reschedules (gen moves on) and are skipped.
type timerEntry struct {
	at  time.Time
	c   *tcb
	gen uint64
}

type timerHeap []timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// next returns the tcb's earliest deadline.
func (c *tcb) next() time.Time {
	var t time.Time
	for _, d := range []time.Time{c.rtxAt, c.delackAt, c.waitAt, c.keepAt} {
		if !d.IsZero() && (t.IsZero() || d.Before(t)) {
			t = d
		}
	}
	return t
}

// flush files the tcb's next deadline after a call changed it.
func (s *Stack) flush(now time.Time, c *tcb) {
	t := c.next()
	if t.Equal(c.scheduled) {
		return
	}
	c.timerGen++
	c.scheduled = t
	if !t.IsZero() {
		heap.Push(&s.timers, timerEntry{t, c, c.timerGen})
	}
}

// Deadline returns when Tick must next run; false when no timer runs.
func (s *Stack) Deadline() (time.Time, bool) {
	for len(s.timers) > 0 {
		e := s.timers[0]
		if e.gen == e.c.timerGen && e.c.state != Closed {
			return e.at, true
		}
		heap.Pop(&s.timers)
	}
	return time.Time{}, false
}

// Tick runs the timers due at now.
func (s *Stack) Tick(now time.Time) {
	for len(s.timers) > 0 && !s.timers[0].at.After(now) {
		e := heap.Pop(&s.timers).(timerEntry)
		c := e.c
		if e.gen != c.timerGen || c.state == Closed {
			continue
		}
		c.scheduled = time.Time{}
		c.onTimer(now)
		s.flush(now, c)
	}
}

// onTimer handles the tcb's expired timers.
func (c *tcb) onTimer(now time.Time) {
	if !c.waitAt.IsZero() && !c.waitAt.After(now) {
		c.waitAt = time.Time{}
		c.s.release(c) // TIME-WAIT over, or an orphan's FIN-WAIT-2 ran out
		return
	}
	if !c.delackAt.IsZero() && !c.delackAt.After(now) {
		// No answer carried the ACK in time: not interactive after all
		// (Linux's tcp_delack_timer_handler leaves pingpong mode).
		c.delackAt = time.Time{}
		c.ackNow = true
		c.pingpong = false
	}
	if !c.keepAt.IsZero() && !c.keepAt.After(now) {
		c.keepAt = time.Time{}
		c.onKeepalive(now)
		if c.state == Closed {
			return
		}
	}
	if !c.rtxAt.IsZero() && !c.rtxAt.After(now) {
		if c.persist {
			c.onPersist(now)
			if c.state == Closed {
				return
			}
		} else {
			c.rtxAt = time.Time{}
			c.onRTO(now)
			if c.state == Closed {
				return
			}
		}
	}
	c.output(now)
}

// onRTO retransmits after a timeout (RFC 6298 5.4-5.6, RFC 5681 3.1).
func (c *tcb) onRTO(now time.Time) {
	s := c.s
	s.stats.RTOExpiries++
	c.retries++
	limit := s.c.Retries
	if c.state == SynSent || c.state == SynReceived {
		limit = s.c.SynRetries
		if c.passive {
			limit = s.c.SynAckRetries
		}
	}
	if c.retries > limit {
		if c.state != SynSent {
			c.sendReset(now)
		}
		if c.parent != nil { // a half-open connection just goes
			s.release(c)
			return
		}
		c.abort(c.timeoutErr())
		return
	}
	c.rto = min(c.rto*2, s.c.MaxRTO)
	c.rttTiming = false
	if c.state == SynSent || c.state == SynReceived {
		c.sndNxt = c.iss
		return // output sends the SYN again
	}
	c.enterLoss(now, c.inRecovery || c.recoverSet && c.sndUna.Before(c.recover))
	c.cc.Timeout(now, c.sndMax.Diff(c.sndUna), c.mss)
	c.ltBoost = 0
	c.inRecovery, c.dupAcks = false, 0
	c.recover, c.recoverSet = c.sndMax, true
	c.rxtHigh = c.sndUna
	c.sacked = nil // the peer may have reneged: forget its SACK blocks (RFC 2018 8)
	// Go back: resend from the first unacknowledged byte. The window of
	// one segment lets only that one out until an ACK comes; then F-RTO
	// (spurious.go) may send new data instead of the rest.
	c.sndNxt = c.sndUna
	if c.sndWnd == 0 {
		// A closed window: the first segment goes anyway and serves as a
		// window probe (RFC 9293 3.8.6.1; Linux's tcp_retransmit_skb).
		c.rxtHigh = seqMax(c.rxtHigh, c.retransmitAt(now, c.sndUna))
	}
}

// keepTimes returns the connection's keep-alive idle time, interval and
// probe count.
func (c *tcb) keepTimes() (idle, intvl time.Duration, cnt int) {
	idle, intvl, cnt = c.s.c.KeepIdle, c.s.c.KeepIntvl, c.s.c.KeepCnt
	if c.keepIdle > 0 {
		idle = c.keepIdle
	}
	if c.keepIntvl > 0 {
		intvl = c.keepIntvl
	}
	if c.keepCnt > 0 {
		cnt = c.keepCnt
	}
	return idle, intvl, cnt
}

// keepalives reports whether the connection's keep-alive timer runs: the
// option is on and the connection is synchronized and not in TIME-WAIT.
func (c *tcb) keepalives() bool {
	return c.keepAlive && c.state.synchronized() && c.state != TimeWait
}

// armKeepalive sets the keep-alive timer to the idle time after the peer
// was last heard from, or turns it off. The caller flushes.
func (c *tcb) armKeepalive() {
	c.keepAt = time.Time{}
	if c.keepalives() {
		idle, _, _ := c.keepTimes()
		c.keepAt = c.heard.Add(idle)
	}
}

// onKeepalive probes a connection idle for the keep-alive time with a
// segment below the window, which the peer must answer with an ACK, then
// every interval; after the count of probes unanswered it resets the
// connection and fails it with ETIMEDOUT. This is Linux's
// tcp_keepalive_timer (RFC 9293 3.8.4, RFC 1122 4.2.3.6): the timer is
// not moved on every segment but checks, when it fires, how long the peer
// has been silent; while data is in flight or waits on the window the
// retransmission and persist timers watch the peer instead.
func (c *tcb) onKeepalive(now time.Time) {
	if !c.keepalives() {
		return
	}
	idle, intvl, cnt := c.keepTimes()
	if c.sndMax != c.sndUna || c.snd.n > c.sndNxt.Diff(c.sndBase) {
		c.keepAt = now.Add(idle)
		return
	}
	if now.Sub(c.heard) < idle {
		c.keepAt = c.heard.Add(idle)
		return
	}
	if c.kaProbes >= cnt {
		c.sendReset(now)
		c.abort(c.timeoutErr())
		return
	}
	c.send(now, c.sndUna-1, ACK, nil)
	c.kaProbes++
	c.keepAt = now.Add(intvl)
}

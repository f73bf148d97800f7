package tcp

import (
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
)

// Input processes a segment ip delivered at now, from src to dst (RFC 9293
// 3.10.7). What it refuses is counted in Drops, never fatal: any bytes at
// all may come in.
func (s *Stack) Input(now time.Time, src, dst netip.Addr, seg []byte) {
	s.stats.SegmentsIn++
	if len(seg) < HeaderLen {
		s.drop("short")
		return
	}
	if !src.Is4() || !dst.Is4() || checksum.Pseudo(proto.TCP, src, dst, seg) != 0 {
		s.drop("checksum")
		return
	}
	h, payload, err := Parse(seg)
	if err != nil {
		s.drop("malformed")
		return
	}
	if !s.isLocal(dst) || src.IsUnspecified() || src.IsMulticast() || src == broadcast ||
		h.SrcPort == 0 || h.DstPort == 0 {
		s.drop("bad-address")
		return
	}
	t := tuple{netip.AddrPortFrom(dst, h.DstPort), netip.AddrPortFrom(src, h.SrcPort)}
	if c := s.conns[t]; c != nil {
		if !(c.state == TimeWait && h.Has(SYN) && h.Flags&(ACK|RST) == 0 && c.reopens(&h)) {
			c.input(now, &h, payload)
			s.flush(now, c)
			return
		}
		s.release(c) // a new incarnation of a connection in TIME-WAIT (RFC 6191)
	}
	if l := s.listener(t.local); l != nil {
		l.listenInput(now, t, &h, payload)
		return
	}
	s.drop("no-socket")
	s.resetFor(t.local, t.remote, &h, len(payload))
}

// reopens reports whether a SYN may reopen a connection in TIME-WAIT: its
// timestamp is newer, or, without timestamps, its sequence number is past
// the old connection's (RFC 9293 3.10.7.4, RFC 6191).
func (c *tcb) reopens(h *Header) bool {
	if c.tsOK && h.Opts.TS {
		return int32(h.Opts.TSVal-c.tsRecent) > 0
	}
	return c.rcvNxt.Before(h.Seq)
}

// listener finds the listening socket for a local address.
func (s *Stack) listener(a netip.AddrPort) *tcb {
	var wild *tcb
	for _, c := range s.lports[a.Port()] {
		if c.state != Listen {
			continue
		}
		if c.local.Addr() == a.Addr() {
			return c
		}
		if c.local.Addr().IsUnspecified() {
			wild = c
		}
	}
	return wild
}

// listenInput handles a segment for a listener (RFC 9293 3.10.7.2).
func (l *tcb) listenInput(now time.Time, t tuple, h *Header, payload []byte) {
	s := l.s
	switch {
	case h.Has(RST):
		s.drop("listen-rst")
		return
	case h.Has(ACK):
		if l.cookieInput(now, t, h, payload) {
			return
		}
		s.drop("listen-ack")
		s.resetFor(t.local, t.remote, h, len(payload))
		return
	case !h.Has(SYN):
		s.drop("listen-no-syn")
		return
	case h.Has(FIN): // as Linux: a SYN with FIN is nonsense
		s.drop("listen-syn-fin")
		return
	case len(l.acceptQ) >= l.backlog || len(l.embryos) >= l.backlog && s.c.NoSynCookies:
		s.drop("backlog-full")
		return
	case len(l.embryos) >= l.backlog:
		l.sendCookie(now, t, h)
		return
	}
	c := l.child(t)
	if l.embryos == nil {
		l.embryos = map[*tcb]struct{}{}
	}
	l.embryos[c] = struct{}{}
	c.irs, c.rcvNxt = h.Seq, h.Seq+1
	c.pmtu, c.rcvMSS = s.PathMTU(now, t.remote.Addr()), s.linkMTU(t.remote.Addr())-40
	c.negotiate(&h.Opts)
	c.iss = s.isn(now, t)
	c.tsOff = s.tsOffset(t)
	c.sndUna, c.sndNxt, c.sndMax, c.sndBase = c.iss, c.iss, c.iss, c.iss+1
	c.sndWnd, c.maxSndWnd = int(h.Window), int(h.Window) // a SYN's window is never scaled
	c.sndWl1, c.sndWl2 = h.Seq, c.iss
	c.rcvAdv = c.rcvNxt.Add(min(c.rcv.free(), 0xffff))
	c.state = SynReceived
	s.stats.PassiveOpens++
	c.output(now)
	s.flush(now, c)
}

// child makes a listener's connection to t, holding the listener's socket
// options, in the Stack's tables.
func (l *tcb) child(t tuple) *tcb {
	s := l.s
	c := s.newTCB()
	c.sndCap, c.rcvCap, c.noDelay, c.reuse = l.sndCap, l.rcvCap, l.noDelay, l.reuse
	c.keepAlive, c.keepIdle, c.keepIntvl, c.keepCnt = l.keepAlive, l.keepIdle, l.keepIntvl, l.keepCnt
	c.resetConn()
	c.parent, c.passive, c.connected = l, true, true
	c.remote = t.remote
	s.hold(c, t.local)
	s.conns[t] = c
	s.all[c] = struct{}{}
	return c
}

// input handles a segment for a connection (RFC 9293 3.10.7.3-4).
func (c *tcb) input(now time.Time, h *Header, payload []byte) {
	s := c.s
	if c.state == SynSent {
		c.synSentInput(now, h, payload)
		return
	}
	if c.state == Closed || c.state == Listen {
		s.drop("closed")
		return
	}
	if c.state == SynReceived && !c.passive && h.Flags&(SYN|ACK|RST) == SYN|ACK && h.Seq == c.irs && h.Ack == c.sndMax {
		// A simultaneous open's SYN-ACK: its SYN is the one already taken,
		// its ACK completes the handshake (as Linux lets it through).
		h.Flags &^= SYN
		h.Seq++
	}
	segLen := len(payload)
	if h.Has(SYN) {
		segLen++
	}
	if h.Has(FIN) {
		segLen++
	}
	// PAWS (RFC 7323 5.3).
	if c.tsOK && h.Opts.TS && !h.Has(RST) && int32(h.Opts.TSVal-c.tsRecent) < 0 {
		s.drop("paws")
		c.oldDuplicate(h, segLen)
		c.ackNow = true
		c.output(now)
		return
	}
	// First, the sequence number.
	if !c.acceptable(h.Seq, segLen) {
		if c.state == SynReceived && h.Has(SYN) && h.Seq == c.irs {
			c.sndNxt = c.iss // our SYN-ACK was lost: send it again
			c.output(now)
			return
		}
		s.drop("out-of-window")
		if !h.Has(RST) {
			c.oldDuplicate(h, segLen)
			c.ackNow = true
			c.output(now)
		}
		return
	}
	// Second, RST (RFC 5961 3.2: only an exact match resets).
	if h.Has(RST) {
		if h.Seq != c.rcvNxt {
			s.drop("rst-challenged")
			c.challengeACK(now)
			return
		}
		switch c.state {
		case SynReceived:
			if c.passive {
				s.release(c)
			} else {
				c.abort(ErrConnRefused)
			}
		case Established, FinWait1, FinWait2:
			c.abort(ErrConnReset)
		case CloseWait:
			c.abort(ErrShutdown) // as Linux: the peer had finished, so EPIPE
		default:
			s.release(c)
		}
		return
	}
	// Fourth, SYN in a synchronized state (RFC 5961 4.2).
	if h.Has(SYN) {
		s.drop("syn-challenged")
		c.challengeACK(now)
		return
	}
	// Fifth, ACK.
	if !h.Has(ACK) {
		s.drop("no-ack")
		return
	}
	if c.state == SynReceived {
		if !(c.sndUna.Before(h.Ack) && h.Ack.BeforeEq(c.sndMax)) {
			s.drop("bad-ack")
			s.resetFor(c.local, c.remote, h, len(payload))
			return
		}
		c.sndWnd = int(h.Window) << c.sndShift
		c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
		c.sndWl1, c.sndWl2 = h.Seq, h.Ack
		c.established(now)
	}
	if !c.ackInput(now, h, len(payload)) {
		return
	}
	// Seventh, the segment text, and eighth, FIN.
	if c.id == 0 && (c.state == FinWait1 || c.state == FinWait2) && len(payload) > 0 &&
		c.rcvNxt.Before(h.Seq.Add(len(payload))) {
		// New data for a socket nobody can read any more: reset, as
		// Linux does (RFC 2525 2.17).
		s.drop("data-after-close")
		c.sendReset(now)
		s.release(c)
		return
	}
	if c.state.canReceive() {
		c.receive(now, h.Seq, payload, h.Has(FIN), h.Has(PSH))
	} else if h.Has(FIN) || len(payload) > 0 {
		// CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer sent this
		// before; acknowledge it again.
		c.ackNow = true
		if c.state == TimeWait {
			c.waitAt = now.Add(s.c.TimeWait)
		}
	}
	c.output(now)
}

// acceptable is RFC 9293's acceptance test against the window advertised.
func (c *tcb) acceptable(seq Seq, segLen int) bool {
	wnd := max(c.rcvAdv.Diff(c.rcvNxt), 0)
	switch {
	case segLen == 0 && wnd == 0:
		return seq == c.rcvNxt
	case segLen == 0:
		return seq.InWindow(c.rcvNxt, wnd)
	case wnd == 0:
		return false
	}
	return seq.InWindow(c.rcvNxt, wnd) || seq.Add(segLen-1).InWindow(c.rcvNxt, wnd)
}

// challengeACK answers a suspicious RST or SYN with an ACK (RFC 5961 7),
// as Linux's tcp_send_challenge_ack does: at most one each
// Config.InvalidRateLimit per connection and, when Config.ChallengeACKs
// is set, within a budget for the whole Stack drawn at random each second.
func (c *tcb) challengeACK(now time.Time) {
	s := c.s
	if !c.lastChallenge.IsZero() && now.Sub(c.lastChallenge) < s.c.InvalidRateLimit {
		s.drop("challenge-limited")
		return
	}
	c.lastChallenge = now
	if limit := s.c.ChallengeACKs; limit > 0 {
		if sec := now.Unix(); sec != s.chalSec {
			half := (limit + 1) / 2
			s.chalSec, s.chalN = sec, half+s.rng.IntN(limit)
		}
		if s.chalN <= 0 {
			s.drop("challenge-limited")
			return
		}
		s.chalN--
	}
	s.stats.ChallengeACKs++
	c.ackNow = true
	c.output(now)
}

// synSentInput handles a segment in SYN-SENT (RFC 9293 3.10.7.3).
func (c *tcb) synSentInput(now time.Time, h *Header, payload []byte) {
	s := c.s
	ackOK := false
	if h.Has(ACK) {
		if h.Ack.BeforeEq(c.iss) || c.sndMax.Before(h.Ack) {
			s.drop("bad-ack")
			s.resetFor(c.local, c.remote, h, len(payload))
			return
		}
		ackOK = true
	}
	if h.Has(RST) {
		if ackOK {
			c.abort(ErrConnRefused)
		} else {
			s.drop("rst-without-ack")
		}
		return
	}
	if !h.Has(SYN) {
		s.drop("no-syn")
		return
	}
	c.irs, c.rcvNxt = h.Seq, h.Seq+1
	c.negotiate(&h.Opts)
	c.rcvAdv = c.rcvNxt.Add(min(c.rcv.free(), 0xffff))
	c.sndWnd, c.maxSndWnd = int(h.Window), int(h.Window)
	c.sndWl1, c.sndWl2 = h.Seq, h.Ack
	if !ackOK { // simultaneous open
		c.state = SynReceived
		c.sndNxt = c.iss
		c.output(now)
		return
	}
	if c.rttTiming && c.rttSeq.Before(h.Ack) {
		c.rttSample(now.Sub(c.rttStart))
		c.rttTiming = false
	}
	c.sndUna = h.Ack
	c.rtxAt = time.Time{}
	c.established(now)
	c.ackNow = true
	c.output(now)
}

// enterTimeWait enters TIME-WAIT for 2 MSL.
func (c *tcb) enterTimeWait(now time.Time) {
	s := c.s
	c.disown()
	if s.tw >= s.c.MaxTimeWait {
		// TIME-WAIT is full: acknowledge the FIN and close at once, as
		// Linux does (TCPTimeWaitOverflow).
		s.stats.TimeWaitOverflows++
		if c.ackNow {
			c.send(now, c.sndNxt, ACK, nil)
		}
		s.release(c)
		return
	}
	s.tw++
	c.state = TimeWait
	c.snd.drop() // all sent and acknowledged: TIME-WAIT keeps no buffers
	c.rcv.drop()
	c.ooo = nil
	c.rtxAt, c.delackAt, c.keepAt, c.persist = time.Time{}, time.Time{}, time.Time{}, false
	c.waitAt = now.Add(c.s.c.TimeWait)
	c.s.wake(c)
}

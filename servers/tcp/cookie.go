package tcp

import "time"

// SYN cookies (RFC 4987 3.6), as Linux makes them (net/ipv4/syncookies.c).
// When a listener's queue of half-open connections is full, a SYN is
// answered with a SYN-ACK whose sequence number encodes the connection
// and nothing is kept; the ACK that completes the handshake carries the
// number back, and a valid one makes the connection then. The number is
//
//	hash(secret, addresses, 4) + the peer's ISN + count<<24
//	  + (hash(secret, addresses, 5, count) + mss index) mod 2^24
//
// count being a clock ticking once a minute: a cookie is good for two
// minutes, and only while the listener has sent cookies in the last two.
// The MSS is one of four values (Linux's msstab); the other SYN options
// (window scale, SACK-permitted, timestamps) cannot be kept and are not
// offered.
const (
	cookieBits   = 24
	cookieMask   = 1<<cookieBits - 1
	cookieMaxAge = 2               // minutes a cookie is good for
	cookieValid  = 2 * time.Minute // how long after sending cookies a listener checks them
)

// cookieMSS are the MSS values a cookie can encode, Linux's msstab.
var cookieMSS = [...]int{536, 1300, 1440, 1460}

// cookieCount is the cookie clock: minutes.
func cookieCount(now time.Time) uint32 { return uint32(now.Unix() / 60) }

// cookie is the initial sequence number that encodes a connection's
// addresses, the peer's initial sequence number, the time and the MSS.
func (s *Stack) cookie(t tuple, peerISN Seq, count uint32, mssIdx int) Seq {
	return Seq(s.hash(t, 4) + uint32(peerISN) + count<<cookieBits +
		(s.hashCount(t, 5, &count)+uint32(mssIdx))&cookieMask)
}

// checkCookie returns the MSS index a cookie encodes, or false when it is
// not one this Stack made for t and peerISN in the last cookieMaxAge
// minutes.
func (s *Stack) checkCookie(now time.Time, t tuple, cookie, peerISN Seq) (int, bool) {
	v := uint32(cookie) - s.hash(t, 4) - uint32(peerISN)
	count := cookieCount(now)
	age := (count - v>>cookieBits) & (1<<(32-cookieBits) - 1)
	if age >= cookieMaxAge {
		return 0, false
	}
	count -= age
	idx := (v - s.hashCount(t, 5, &count)) & cookieMask
	if idx >= uint32(len(cookieMSS)) {
		return 0, false
	}
	return int(idx), true
}

// sendCookie answers a SYN with a cookie SYN-ACK, keeping nothing.
func (l *tcb) sendCookie(now time.Time, t tuple, h *Header) {
	s := l.s
	peer := 536
	if h.Opts.MSS != 0 {
		peer = int(h.Opts.MSS)
	}
	idx := 0
	for i, m := range cookieMSS {
		if m <= peer {
			idx = i
		}
	}
	r := Header{SrcPort: t.local.Port(), DstPort: t.remote.Port(), Seq: s.cookie(t, h.Seq, cookieCount(now), idx),
		Ack: h.Seq + 1, Flags: SYN | ACK, Window: uint16(min(l.rcvCap, 0xffff))}
	r.Opts.WS = -1
	r.Opts.MSS = uint16(s.linkMTU(t.remote.Addr()) - 40)
	s.emit(t.local, t.remote, &r, nil)
	s.stats.SynCookiesSent++
	l.cookieAt = now
}

// cookieInput makes the connection an ACK to a listener completes with a
// valid cookie, and takes the rest of the segment. It returns false when
// the ACK is not for a cookie: the caller answers it with a RST.
func (l *tcb) cookieInput(now time.Time, t tuple, h *Header, payload []byte) bool {
	s := l.s
	if s.c.NoSynCookies || h.Has(SYN) || l.cookieAt.IsZero() || now.Sub(l.cookieAt) >= cookieValid {
		return false
	}
	idx, ok := s.checkCookie(now, t, h.Ack-1, h.Seq-1)
	if !ok {
		s.stats.SynCookiesFailed++
		return false
	}
	if len(l.acceptQ) >= l.backlog {
		s.drop("backlog-full") // as Linux: the peer's next segment tries again
		return true
	}
	s.stats.SynCookiesValidated++
	c := l.child(t)
	c.irs, c.rcvNxt = h.Seq-1, h.Seq
	c.iss = h.Ack - 1
	c.sndUna, c.sndNxt, c.sndMax, c.sndBase = h.Ack, h.Ack, h.Ack, h.Ack
	c.pmtu, c.rcvMSS = s.PathMTU(now, t.remote.Addr()), s.linkMTU(t.remote.Addr())-40
	c.mss = max(min(cookieMSS[idx], c.pmtu-40), minMSS)
	c.tsOff = s.tsOffset(t)
	c.sndWnd, c.maxSndWnd = int(h.Window), int(h.Window)
	c.sndWl1, c.sndWl2 = h.Seq, h.Ack
	c.rcvAdv = c.rcvNxt.Add(min(c.rcv.free(), 0xffff))
	c.lastAckSent = c.rcvNxt
	s.stats.PassiveOpens++
	c.established(now)
	c.input(now, h, payload)
	s.flush(now, c)
	return true
}

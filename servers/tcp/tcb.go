package tcp

import (
	"net/netip"
	"time"
)

// tcb is a transmission control block: one socket and, once it has one,
// its connection. A listener's connections not yet accepted are tcbs with
// a parent and no id; so are closed sockets' connections still finishing
// (orphans).
type tcb struct {
	s             *Stack
	id            SockID // 0: not (or no longer) the user's
	state         State
	local, remote netip.AddrPort
	bound         bool // holds its local port
	connected     bool // has had a peer
	parent        *tcb // the listener, until accepted
	passive       bool // opened by a listener

	// Listener.
	backlog  int
	acceptQ  []*tcb
	embryos  map[*tcb]struct{}
	cookieAt time.Time // when the listener last sent a SYN cookie

	// Options.
	noDelay, reuse bool
	sndCap, rcvCap int
	keepAlive      bool
	keepIdle       time.Duration // 0: the Stack's
	keepIntvl      time.Duration
	keepCnt        int

	// Send sequence space (RFC 9293 3.3.1). sndBase is the sequence number
	// of the first byte in snd; sndMax the highest sent, which sndNxt falls
	// back from on a retransmission timeout.
	iss, sndUna, sndNxt, sndMax, sndBase Seq
	sndWnd, maxSndWnd                    int
	sndWl1, sndWl2                       Seq
	snd                                  ring
	finQueued                            bool

	// Receive sequence space. rcvAdv is the right edge of the window
	// advertised; it never moves left.
	irs, rcvNxt, rcvAdv Seq
	rcv                 ring
	ooo                 ranges // out-of-order data held in rcv past rcvNxt
	lastOOO             Seq
	finSeen, finRcvd    bool
	finSeq              Seq
	rdShut, wrShut      bool

	// Negotiated at the handshake, the MSS lowered by path MTU discovery.
	mss                int // payload bytes per segment sent
	pmtu               int // the path MTU (RFC 1191): the link's until an ICMP error says less
	rcvMSS             int // payload bytes per full segment the peer sends: what we announced, less the options it puts in each
	sndShift, rcvShift uint8
	wsOK, tsOK, sackOK bool
	tsRecent, tsOff    uint32
	lastAckSent        Seq

	// Retransmission timing (RFC 6298).
	srtt, rttvar, rto time.Duration
	rttTiming         bool
	rttSeq            Seq
	rttStart          time.Time
	retries           int
	persistBackoff    int
	probes            int // window probes sent since the peer last answered

	// Congestion control (RFC 5681) and loss recovery (RFC 6582, RFC 6675).
	cc                     CongestionControl
	dupAcks                int
	inRecovery, recoverSet bool
	recover                Seq
	sacked                 ranges // the peer's SACK blocks above SND.UNA
	ltBoost                int    // limited transmit: room for new data on the first duplicate ACKs
	rxtHigh                Seq    // the highest byte retransmitted in this recovery

	// Spurious retransmission timeouts (spurious.go): F-RTO (RFC 5682) and
	// the timestamps (RFC 3522), and the undo of the timeout's response.
	frto                     int    // F-RTO's step: 0 off, 2 or 3
	rtoRxt                   Seq    // the end of what was sent again since the timeout, below recover
	rtoSacked                ranges // the SACK scoreboard when the timer expired
	rtoStamp                 uint32 // our timestamp when the timeout first sent again (Linux's retrans_stamp)
	rtoUndo                  bool   // a timeout's response may still be undone: priorCwnd and priorSsthresh hold the window before it
	priorCwnd, priorSsthresh int

	// D-SACK (dsack.go, RFC 2883, RFC 3708): the duplicate to report in
	// the next ACK, and the episode's retransmissions not reported
	// duplicate yet, while D-SACKs may still undo its reduction.
	dsack     Block // empty when none is due
	undoDSACK bool
	undoRxt   []rxtCount

	// ACKs (rcv.go): when one goes at once and when it waits, as Linux's
	// delayed-ACK engine decides (tcp_event_data_recv, __tcp_ack_snd_check,
	// tcp_cleanup_rbuf).
	ackNow        bool
	pendingAcks   int       // in-order segments received since the last ACK
	pushed        int       // short segments among them (Linux's ICSK_ACK_PUSHED, PUSHED2)
	quickAcks     int       // ACKs still to send at once (Linux's quick-ACK mode, icsk_ack.quick)
	pingpong      bool      // interactive: we send data soon after data comes (Linux's pingpong mode)
	lastRcvd      time.Time // when in-order data last came (Linux's icsk_ack.lrcvtime); zero before any
	ackMSS        int       // the size of a full segment as the peer is seen to send them (Linux's icsk_ack.rcv_mss)
	lastSegLen    int       // the last short segment's size, when it looked like a full one of a smaller MSS
	lastChallenge time.Time // the last challenge ACK sent

	// Keep-alive: when the peer was last heard from (an acceptable ACK),
	// and the probes sent since.
	heard    time.Time
	kaProbes int

	// Timers: the zero time is off.
	rtxAt, delackAt, waitAt, keepAt time.Time
	persist                         bool // rtxAt is the persist timer
	timerGen                        uint64
	scheduled                       time.Time

	orphan bool // closed by its user, still finishing: counted in Stack.orphans

	err     error // pending error: SO_ERROR, and the next call's
	softErr error // the last ICMP error of a synchronized connection (Linux's sk_err_soft)
}

func (s *Stack) newTCB() *tcb {
	c := &tcb{s: s, sndCap: s.c.SendBuffer, rcvCap: s.c.RecvBuffer, cc: s.newCongestion()}
	c.snd = s.newRing(c.sndCap)
	c.rcv = s.newRing(c.rcvCap)
	return c
}

// shiftFor returns the window scale that lets a 16-bit window field cover
// size bytes.
func shiftFor(size int) uint8 {
	var sh uint8
	for size>>sh > 0xffff && sh < MaxWindowShift {
		sh++
	}
	return sh
}

// reset clears a tcb's connection state for a new connection.
func (c *tcb) resetConn() {
	s := c.s
	c.snd.release()
	c.rcv.release()
	c.snd, c.rcv = s.newRing(c.sndCap), s.newRing(c.rcvCap)
	c.ooo, c.finQueued, c.finSeen, c.finRcvd, c.rdShut, c.wrShut = nil, false, false, false, false, false
	c.rto, c.srtt, c.rttvar, c.retries, c.probes = s.c.InitialRTO, 0, 0, 0, 0
	c.mss, c.rcvMSS, c.pmtu, c.softErr = 536, s.c.MTU-40, s.c.MTU, nil
	c.cc.Reset()
	c.inRecovery, c.recoverSet, c.dupAcks = false, false, 0
	c.sacked, c.rxtHigh = nil, 0
	c.rcvShift, c.sndShift = 0, 0
	c.pendingAcks, c.pushed, c.quickAcks, c.pingpong, c.lastRcvd, c.lastSegLen = 0, 0, 0, false, time.Time{}, 0
	c.frto, c.rtoUndo, c.rtoSacked = 0, false, nil
	c.dsack, c.undoDSACK, c.undoRxt = Block{}, false, nil
}

// activeOpen sends the first SYN.
func (c *tcb) activeOpen(now time.Time) {
	s := c.s
	c.resetConn()
	c.pmtu, c.rcvMSS = s.PathMTU(now, c.remote.Addr()), s.linkMTU(c.remote.Addr())-40
	t := tuple{c.local, c.remote}
	c.iss = s.isn(now, t)
	c.sndUna, c.sndNxt, c.sndMax, c.sndBase = c.iss, c.iss, c.iss, c.iss+1
	c.tsOff = s.tsOffset(t)
	c.state = SynSent
	c.output(now)
}

// negotiate applies the options of the peer's SYN.
func (c *tcb) negotiate(o *Options) {
	s := c.s
	peer := 536 // RFC 9293 3.7.1: the default send MSS
	if o.MSS != 0 {
		peer = int(o.MSS)
	}
	c.mss = max(min(peer, c.pmtu-40), minMSS)
	c.wsOK = !s.c.NoWindowScale && o.WS >= 0
	c.sndShift, c.rcvShift = 0, 0
	if c.wsOK {
		c.sndShift = uint8(o.WS)
		c.rcvShift = shiftFor(c.rcv.cap())
	}
	c.tsOK = !s.c.NoTimestamps && o.TS
	if c.tsOK {
		c.mss -= 12 // RFC 6691: the MSS does not count options
		c.rcvMSS -= 12
		c.tsRecent = o.TSVal
	}
	c.sackOK = !s.c.NoSACK && o.SACKPerm
}

// established enters ESTABLISHED.
func (c *tcb) established(now time.Time) {
	c.state = Established
	c.cc.Start(c.mss)
	c.ackMSS = min(c.rcvMSS, defaultMSS) // Linux's tcp_initialize_rcv_mss; it grows with the segments that come
	c.retries = 0
	c.heard, c.kaProbes = now, 0
	c.armKeepalive()
	if c.sndUna == c.sndMax {
		c.rtxAt, c.persist = time.Time{}, false
	}
	if l := c.parent; l != nil {
		delete(l.embryos, c)
		l.acceptQ = append(l.acceptQ, c)
	}
	c.s.wake(c)
}

// tsVal is our timestamp clock: milliseconds, offset per connection.
func (c *tcb) tsVal(now time.Time) uint32 { return uint32(now.UnixMilli()) + c.tsOff }

// send makes one segment from this connection and queues it for ip.
func (c *tcb) send(now time.Time, seq Seq, flags uint8, payload []byte) {
	h := Header{SrcPort: c.local.Port(), DstPort: c.remote.Port(), Seq: seq, Flags: flags}
	h.Opts.WS = -1
	syn := flags&SYN != 0
	if flags&ACK != 0 {
		h.Ack = c.rcvNxt
		c.lastAckSent = c.rcvNxt
		c.ackSent()
	}
	if len(payload) > 0 {
		c.dataSent(now)
	}
	if syn {
		active := c.state == SynSent
		h.Opts.MSS = uint16(c.s.linkMTU(c.remote.Addr()) - 40)
		if active && !c.s.c.NoWindowScale || !active && c.wsOK {
			h.Opts.WS = int8(shiftFor(c.rcv.cap()))
		}
		h.Opts.SACKPerm = active && !c.s.c.NoSACK || !active && c.sackOK
		h.Opts.TS = active && !c.s.c.NoTimestamps || !active && c.tsOK
	} else {
		h.Opts.TS = c.tsOK
		dsack := c.dsackDue() && len(payload) == 0 && flags&(ACK|RST) == ACK
		if c.sackOK && len(payload) == 0 && len(c.ooo) > 0 || dsack {
			h.Opts.SACK = c.sackBlocks(dsack)
		}
	}
	if h.Opts.TS {
		h.Opts.TSVal = c.tsVal(now)
		if flags&ACK != 0 {
			h.Opts.TSEcr = c.tsRecent
		}
	}
	h.Window = c.rcvWindow(syn)
	if c.tsoFits(&h, payload) { // tso.go
		if !c.s.tsoExtend(c, &h, payload) {
			c.s.emit(c.local, c.remote, &h, payload)
			c.s.tsoStart(c, &h, len(payload))
		}
		return
	}
	c.s.emit(c.local, c.remote, &h, payload)
}

// emit builds a segment and queues it for ip; Out fills in its checksum.
func (s *Stack) emit(local, remote netip.AddrPort, h *Header, payload []byte) {
	b := s.segBuf(HeaderLen + optionsLen(&h.Opts, h.Flags&SYN != 0) + len(payload))
	n := h.Marshal(b, payload)
	b = b[:n]
	s.out = append(s.out, Segment{Src: local.Addr(), Dst: remote.Addr(), Data: b})
	s.stats.SegmentsOut++
	if h.Flags&RST != 0 {
		s.stats.Resets++
	}
}

// resetFor answers a segment that has no connection (RFC 9293 3.10.7.1).
func (s *Stack) resetFor(local, remote netip.AddrPort, h *Header, n int) {
	if h.Flags&RST != 0 {
		return
	}
	r := Header{SrcPort: local.Port(), DstPort: remote.Port(), Flags: RST}
	r.Opts.WS = -1
	if h.Flags&ACK != 0 {
		r.Seq = h.Ack
	} else {
		r.Flags |= ACK
		r.Ack = h.Seq.Add(n)
		if h.Flags&SYN != 0 {
			r.Ack++
		}
		if h.Flags&FIN != 0 {
			r.Ack++
		}
	}
	s.emit(local, remote, &r, nil)
}

// sendReset aborts the connection towards the peer.
func (c *tcb) sendReset(now time.Time) {
	if c.state == SynSent || c.state == Closed || c.state == Listen || c.state == TimeWait {
		return
	}
	c.send(now, c.sndNxt, RST|ACK, nil)
}

// abort ends the connection with an error for the user.
func (c *tcb) abort(err error) {
	c.err = err
	c.rdShut, c.wrShut = true, true
	c.s.release(c)
}

// armTimer keeps the invariant that whatever is in flight has a
// retransmission timer, and data held back by the peer's window with
// nothing in flight has a persist timer.
func (c *tcb) armTimer(now time.Time) {
	switch {
	case c.sndMax != c.sndUna:
		if c.rtxAt.IsZero() || c.persist {
			c.persist = false
			c.rtxAt = now.Add(c.rto)
		}
	case c.snd.n > c.sndNxt.Diff(c.sndBase) && c.rtxAt.IsZero():
		c.persist = true // data waits on the peer's window: probe it
		c.rtxAt = now.Add(c.persistInterval())
	}
}

// SACK scoreboard (RFC 2018, RFC 6675): what the peer holds above SND.UNA.

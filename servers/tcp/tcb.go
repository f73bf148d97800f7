package tcp

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
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
	backlog int
	acceptQ []*tcb
	embryos map[*tcb]struct{}

	// Options.
	noDelay, reuse bool
	sndCap, rcvCap int

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

	// Negotiated at the handshake.
	mss                int // payload bytes per segment sent
	rcvMSS             int // payload bytes per segment the peer sends
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

	// Congestion control (RFC 5681) and loss recovery (RFC 6582, RFC 6675).
	cc                     CongestionControl
	dupAcks                int
	inRecovery, recoverSet bool
	recover                Seq
	sacked                 ranges // the peer's SACK blocks above SND.UNA
	ltBoost                int    // limited transmit: room for new data on the first duplicate ACKs
	rxtHigh                Seq    // the highest byte retransmitted in this recovery

	// ACKs.
	ackNow      bool
	pendingAcks int

	// Timers: the zero time is off.
	rtxAt, delackAt, waitAt time.Time
	persist                 bool // rtxAt is the persist timer
	timerGen                uint64
	scheduled               time.Time

	err error // pending error: SO_ERROR, and the next call's
}

func (s *Stack) newTCB() *tcb {
	c := &tcb{s: s, sndCap: s.c.SendBuffer, rcvCap: s.c.RecvBuffer, cc: s.newCongestion()}
	c.snd = newRing(c.sndCap)
	c.rcv = newRing(c.rcvCap)
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
	c.snd, c.rcv = newRing(c.sndCap), newRing(c.rcvCap)
	c.ooo, c.finQueued, c.finSeen, c.finRcvd, c.rdShut, c.wrShut = nil, false, false, false, false, false
	c.rto, c.srtt, c.rttvar, c.retries = s.c.InitialRTO, 0, 0, 0
	c.mss, c.rcvMSS = 536, s.c.MTU-40
	c.cc.Reset()
	c.inRecovery, c.recoverSet, c.dupAcks = false, false, 0
	c.sacked, c.rxtHigh = nil, 0
	c.rcvShift, c.sndShift = 0, 0
}

// activeOpen sends the first SYN.
func (c *tcb) activeOpen(now time.Time) {
	s := c.s
	c.resetConn()
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
	c.mss = max(min(peer, s.c.MTU-40), minMSS)
	c.wsOK = !s.c.NoWindowScale && o.WS >= 0
	c.sndShift, c.rcvShift = 0, 0
	if c.wsOK {
		c.sndShift = uint8(o.WS)
		c.rcvShift = shiftFor(c.rcv.cap())
	}
	c.tsOK = !s.c.NoTimestamps && o.TS
	if c.tsOK {
		c.mss -= 12 // RFC 6691: the MSS does not count options
		c.tsRecent = o.TSVal
	}
	c.sackOK = !s.c.NoSACK && o.SACKPerm
}

// established enters ESTABLISHED.
func (c *tcb) established(now time.Time) {
	c.state = Established
	c.cc.Start(c.mss)
	c.retries = 0
	if c.sndUna == c.sndMax {
		c.rtxAt, c.persist = time.Time{}, false
	}
	if l := c.parent; l != nil {
		delete(l.embryos, c)
		l.acceptQ = append(l.acceptQ, c)
	}
	c.s.wake(c)
}

// finSeqNum is our FIN's sequence number, once queued.
func (c *tcb) finSeqNum() Seq { return c.sndBase.Add(c.snd.n) }

// finAcked reports whether the peer has acknowledged our FIN.
func (c *tcb) finAcked() bool { return c.finQueued && c.finSeqNum().Before(c.sndUna) }

// queueFIN closes the sending side once the data queued is sent.
func (c *tcb) queueFIN(now time.Time) {
	if c.finQueued {
		return
	}
	switch c.state {
	case SynReceived, Established:
		c.state = FinWait1
	case CloseWait:
		c.state = LastAck
	case SynSent:
		c.s.release(c)
		return
	default:
		return
	}
	c.finQueued = true
	c.output(now)
}

// rcvWindow returns the window field to send and moves rcvAdv.
func (c *tcb) rcvWindow(syn bool) uint16 {
	free := c.rcv.free()
	if syn {
		return uint16(min(free, 0xffff))
	}
	w := min(free>>c.rcvShift, 0xffff)
	edge := c.rcvNxt.Add(w << c.rcvShift)
	if edge.Before(c.rcvAdv) {
		w = (c.rcvAdv.Diff(c.rcvNxt) + (1 << c.rcvShift) - 1) >> c.rcvShift
		return uint16(min(w, 0xffff))
	}
	c.rcvAdv = edge
	return uint16(w)
}

// windowUpdate sends an ACK when reading has opened the window enough
// (receiver-side silly window avoidance, RFC 9293 3.8.6.2.2).
func (c *tcb) windowUpdate(now time.Time) {
	if !c.state.canReceive() || c.state == SynReceived {
		return
	}
	open := c.rcv.free() - max(c.rcvAdv.Diff(c.rcvNxt), 0)
	if open >= min(c.rcv.cap()/2, 2*c.rcvMSS) {
		c.ackNow = true
		c.output(now)
	}
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
		c.ackNow, c.pendingAcks, c.delackAt = false, 0, time.Time{}
	}
	if syn {
		active := c.state == SynSent
		h.Opts.MSS = uint16(c.s.c.MTU - 40)
		if active && !c.s.c.NoWindowScale || !active && c.wsOK {
			h.Opts.WS = int8(shiftFor(c.rcv.cap()))
		}
		h.Opts.SACKPerm = active && !c.s.c.NoSACK || !active && c.sackOK
		h.Opts.TS = active && !c.s.c.NoTimestamps || !active && c.tsOK
	} else {
		h.Opts.TS = c.tsOK
		if c.sackOK && len(payload) == 0 && len(c.ooo) > 0 {
			h.Opts.SACK = c.sackBlocks()
		}
	}
	if h.Opts.TS {
		h.Opts.TSVal = c.tsVal(now)
		if flags&ACK != 0 {
			h.Opts.TSEcr = c.tsRecent
		}
	}
	h.Window = c.rcvWindow(syn)
	c.s.emit(c.local, c.remote, &h, payload)
}

// sackBlocks lists the out-of-order ranges, the latest first (RFC 2018 4).
func (c *tcb) sackBlocks() []Block {
	n := 4
	if c.tsOK {
		n = 3
	}
	var out []Block
	for _, r := range c.ooo {
		if c.lastOOO.InWindow(r.Start, r.End.Diff(r.Start)) {
			out = append(out, r)
		}
	}
	for _, r := range c.ooo {
		if len(out) >= n {
			break
		}
		if len(out) == 0 || out[0] != r {
			out = append(out, r)
		}
	}
	return out
}

// emit builds a segment and queues it for ip.
func (s *Stack) emit(local, remote netip.AddrPort, h *Header, payload []byte) {
	b := make([]byte, HeaderLen+optionsLen(&h.Opts, h.Flags&SYN != 0)+len(payload))
	n := h.Marshal(b, payload)
	b = b[:n]
	binary.BigEndian.PutUint16(b[16:], checksum.Pseudo(proto.TCP, local.Addr(), remote.Addr(), b))
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

// output sends what the state, the windows and Nagle allow, then a pure
// ACK if one is due and nothing carried it.
func (c *tcb) output(now time.Time) {
	switch c.state {
	case SynSent:
		if c.sndNxt == c.iss {
			c.sendSeg(now, c.iss, SYN, 0, false)
		}
		return
	case SynReceived:
		if c.sndNxt == c.iss {
			c.sendSeg(now, c.iss, SYN|ACK, 0, false)
		}
		if c.ackNow {
			c.send(now, c.sndNxt, ACK, nil)
		}
		return
	case Established, CloseWait, FinWait1, Closing, LastAck:
	default:
		if c.ackNow && c.state != Closed && c.state != Listen {
			c.send(now, c.sndNxt, ACK, nil)
		}
		return
	}
loop:
	for {
		if c.sndNxt.Before(c.sndMax) {
			if end, ok := c.sackedAt(c.sndNxt); ok {
				c.sndNxt = end // the peer has it: resend only the holes
				continue
			}
		}
		off := c.sndNxt.Diff(c.sndBase)
		avail := max(c.snd.n-off, 0)
		finNext := c.finQueued && !c.finSeqNum().Before(c.sndNxt) && off <= c.snd.n
		usable := c.sndUna.Add(min(c.sndWnd, c.cc.Cwnd()+c.ltBoost)).Diff(c.sndNxt)
		n := min(avail, c.mss, max(usable, 0))
		hole := false // a retransmission cut short by data the peer SACKed
		if c.sndNxt.Before(c.sndMax) {
			if next, ok := c.sackedAfter(c.sndNxt); ok && next.Diff(c.sndNxt) < n {
				n, hole = next.Diff(c.sndNxt), true
			}
		}
		fin := finNext && n == avail && !hole
		if n == 0 && !fin {
			break
		}
		switch {
		case hole: // a retransmission goes whatever its size
		case n < c.mss && n < avail: // held back by a window
			if n < c.maxSndWnd/2 || n == 0 {
				break loop
			}
		case n < c.mss && !fin && !c.noDelay && c.sndNxt != c.sndUna: // Nagle
			break loop
		}
		var flags uint8
		if fin {
			flags |= FIN
		}
		c.sendSeg(now, c.sndNxt, flags, n, true)
	}
	if c.ackNow {
		c.send(now, c.sndNxt, ACK, nil)
	}
	c.armTimer(now)
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

// onPersist probes a zero window with a segment the peer must answer
// with an ACK (one below its window), or sends what a small window allows.
func (c *tcb) onPersist(now time.Time) {
	c.persist, c.rtxAt = false, time.Time{}
	c.persistBackoff++
	if c.sndWnd == 0 {
		c.send(now, c.sndUna-1, ACK, nil)
		c.persist = true
		c.rtxAt = now.Add(c.persistInterval())
		return
	}
	off := c.sndNxt.Diff(c.sndBase)
	n := min(max(c.snd.n-off, 0), c.mss, max(c.sndUna.Add(c.sndWnd).Diff(c.sndNxt), 1))
	if n > 0 {
		c.sendSeg(now, c.sndNxt, 0, n, true)
	}
	c.armTimer(now)
}

func (c *tcb) persistInterval() time.Duration {
	d := c.rto << min(c.persistBackoff, 10)
	return min(max(d, c.s.c.MinRTO), c.s.c.MaxRTO)
}

// sendSeg sends n bytes of data from seq (and the SYN or FIN in flags),
// advancing sndNxt, and starts the timers a segment in flight needs.
func (c *tcb) sendSeg(now time.Time, seq Seq, flags uint8, n int, ack bool) {
	var payload []byte
	if n > 0 {
		payload = make([]byte, n)
		c.snd.readAt(seq.Diff(c.sndBase), payload)
		if seq.Add(n) == c.sndBase.Add(c.snd.n) {
			flags |= PSH
		}
	}
	if ack {
		flags |= ACK
	}
	segLen := n
	if flags&(SYN|FIN) != 0 {
		segLen++
	}
	end := seq.Add(segLen)
	if seq.Before(c.sndMax) {
		c.s.stats.Retransmits++
		if c.rttTiming && c.rttSeq.InWindow(seq, segLen) {
			c.rttTiming = false // Karn: no sample from a segment sent twice
		}
	} else if !c.rttTiming && segLen > 0 {
		c.rttTiming, c.rttSeq, c.rttStart = true, seq, now
	}
	c.send(now, seq, flags, payload)
	if c.sndNxt.Before(end) {
		c.sndNxt = end
	}
	c.sndMax = seqMax(c.sndMax, end)
	if segLen > 0 && (c.rtxAt.IsZero() || c.persist) {
		c.persist, c.persistBackoff = false, 0
		c.rtxAt = now.Add(c.rto)
	}
}

// retransmitFirst sends the first unacknowledged segment again (fast
// retransmit, and NewReno's partial ACKs).
func (c *tcb) retransmitFirst(now time.Time) {
	c.rxtHigh = seqMax(c.rxtHigh, c.retransmitAt(now, c.sndUna))
}

// retransmitAt sends the segment at seq again, stopping short of data the
// peer has selectively acknowledged, and returns where it ended.
func (c *tcb) retransmitAt(now time.Time, seq Seq) Seq {
	off := seq.Diff(c.sndBase)
	avail := max(c.snd.n-off, 0)
	n := min(avail, c.mss)
	if next, ok := c.sackedAfter(seq); ok && next.Diff(seq) < n {
		n = next.Diff(seq)
	}
	var flags uint8
	if c.finQueued && n == avail && !c.finAcked() {
		flags |= FIN
	}
	if n == 0 && flags == 0 {
		return seq
	}
	save := c.sndNxt
	c.sendSeg(now, seq, flags, n, true)
	c.sndNxt = seqMax(save, c.sndNxt)
	return seq.Add(n)
}

// SACK scoreboard (RFC 2018, RFC 6675): what the peer holds above SND.UNA.

// noteSACK records the SACK blocks of an ACK that make sense.
func (c *tcb) noteSACK(blocks []Block) {
	for _, b := range blocks {
		if c.sndUna.Before(b.Start) && b.Start.Before(b.End) && b.End.BeforeEq(c.sndMax) {
			c.sacked = c.sacked.add(b.Start, b.End)
		}
	}
	c.pruneSACK()
}

// pruneSACK drops what SND.UNA has passed.
func (c *tcb) pruneSACK() {
	i := 0
	for i < len(c.sacked) && c.sacked[i].End.BeforeEq(c.sndUna) {
		i++
	}
	c.sacked = c.sacked[i:]
	if len(c.sacked) > 0 && c.sacked[0].Start.Before(c.sndUna) {
		c.sacked[0].Start = c.sndUna
	}
}

// sackedAt returns the end of the SACKed block holding seq.
func (c *tcb) sackedAt(seq Seq) (Seq, bool) {
	for _, b := range c.sacked {
		if seq.InWindow(b.Start, b.End.Diff(b.Start)) {
			return b.End, true
		}
	}
	return 0, false
}

// sackedAfter returns the start of the first SACKed block after seq.
func (c *tcb) sackedAfter(seq Seq) (Seq, bool) {
	for _, b := range c.sacked {
		if seq.Before(b.Start) {
			return b.Start, true
		}
	}
	return 0, false
}

// fillHole retransmits the next hole below the highest SACKed byte that
// this recovery has not sent again yet: with SACK, recovery repairs
// several losses a round trip instead of one.
func (c *tcb) fillHole(now time.Time) {
	if len(c.sacked) == 0 {
		return
	}
	top := c.sacked[len(c.sacked)-1].End
	h := seqMax(c.sndUna, c.rxtHigh)
	for {
		end, ok := c.sackedAt(h)
		if !ok {
			break
		}
		h = end
	}
	if !h.Before(top) {
		return
	}
	c.rxtHigh = c.retransmitAt(now, h)
}

// rttSample updates the smoothed RTT and the RTO (RFC 6298 2).
func (c *tcb) rttSample(r time.Duration) {
	if c.srtt == 0 {
		c.srtt, c.rttvar = r, r/2
	} else {
		d := c.srtt - r
		if d < 0 {
			d = -d
		}
		c.rttvar = (3*c.rttvar + d) / 4
		c.srtt = (7*c.srtt + r) / 8
	}
	c.setRTO()
}

func (c *tcb) setRTO() {
	k := 4 * c.rttvar
	if k < time.Millisecond {
		k = time.Millisecond // G, the clock granularity
	}
	c.rto = min(max(c.srtt+k, c.s.c.MinRTO), c.s.c.MaxRTO)
}

package tcp

import "time"

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
		if (c.ackNow || c.dsackDue()) && c.state != Closed && c.state != Listen {
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
		case hole || c.sndNxt.Before(c.sndMax):
			// A retransmission goes whatever its size: the silly-window
			// and Nagle rules are for new data (RFC 9293 3.8.6.2.1).
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
	if c.ackNow || c.dsackDue() { // a D-SACK goes on a pure ACK, after data that carried the ACK
		c.send(now, c.sndNxt, ACK, nil)
	}
	c.armTimer(now)
}

// onPersist probes a zero window with a segment the peer must answer
// with an ACK (one below its window), or sends what a small window allows.
// Like Linux's tcp_probe_timer, it gives up with ETIMEDOUT once
// Config.Retries probes in a row have gone unanswered.
func (c *tcb) onPersist(now time.Time) {
	c.persist, c.rtxAt = false, time.Time{}
	if c.probes >= c.s.c.Retries {
		c.abort(c.timeoutErr())
		return
	}
	c.probes++
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
		payload = c.s.payloadBuf(n)
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
		c.noteRetransmit(seq, end)
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

// noteSACK records the SACK blocks of an ACK that make sense, and reports
// whether one SACKed bytes not SACKed before. A block makes sense when it
// lies in (SND.UNA, SND.MAX], measured as offsets from SND.UNA: compared
// pairwise modulo 2^32, a block whose start is past SND.UNA and whose end
// is before SND.MAX, yet wraps below SND.UNA, passed, and broke the
// scoreboard's order.
func (c *tcb) noteSACK(blocks []Block) bool {
	grew := false
	flight := c.sndMax.Diff(c.sndUna)
	for _, b := range blocks {
		if s, e := b.Start.Diff(c.sndUna), b.End.Diff(c.sndUna); 0 < s && s < e && e <= flight {
			if r, ok := c.sacked.holding(b.Start); ok && b.End.BeforeEq(r.End) {
				continue // nothing new
			}
			var ok bool
			if c.sacked, ok = c.sacked.add(b.Start, b.End); !ok {
				c.s.drop("sack-limit")
				continue
			}
			grew = true
		}
	}
	c.pruneSACK()
	return grew
}

// pruneSACK drops what SND.UNA has passed.
func (c *tcb) pruneSACK() {
	c.sacked = c.sacked[c.sacked.from(c.sndUna+1):]
	if len(c.sacked) > 0 && c.sacked[0].Start.Before(c.sndUna) {
		c.sacked[0].Start = c.sndUna
	}
}

// sackedAt returns the end of the SACKed block holding seq.
func (c *tcb) sackedAt(seq Seq) (Seq, bool) {
	b, ok := c.sacked.holding(seq)
	return b.End, ok
}

// sackedAfter returns the start of the first SACKed block after seq.
func (c *tcb) sackedAfter(seq Seq) (Seq, bool) {
	b, ok := c.sacked.after(seq)
	return b.Start, ok
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

// setRTO sets the RTO to SRTT + max(G, 4 RTTVAR) (RFC 6298 2.3), where,
// as in Linux's tcp_set_rto, the minimum RTO bounds the variance term
// rather than the sum: the RTO is at least SRTT + MinRTO. A path whose
// round trip grows with the queue before it (here, the queues of the
// processes a segment passes) then still allows 200 ms for the ACK
// beyond the usual round trip; bounding the sum, an SRTT of 150 ms left
// it 50 ms, and spurious timeouts followed.
func (c *tcb) setRTO() {
	k := max(4*c.rttvar, time.Millisecond, c.s.c.MinRTO) // G, the clock granularity, 1 ms
	c.rto = min(c.srtt+k, c.s.c.MaxRTO)
}

// ackInput processes the ACK field (RFC 9293 3.10.7.4 fifth, RFC 5961 5.2,
// RFC 5681, RFC 6582). It returns false when the segment is done with.
func (c *tcb) ackInput(now time.Time, h *Header, n int) bool {
	s := c.s
	if h.Ack.Before(c.sndUna.Add(-c.maxSndWnd)) || c.sndMax.Before(h.Ack) {
		s.drop("ack-out-of-window")
		c.ackNow = true
		c.output(now)
		return false
	}
	c.noteTimestamp(h)
	c.probes, c.kaProbes, c.heard = 0, 0, now // the peer answers
	c.softErr = nil                           // something worked (Linux's tcp_ack)
	wnd := int(h.Window) << c.sndShift
	// A D-SACK (dsack.go) reports a segment received twice: never new
	// SACK information, and an ACK that carries one is no duplicate ACK.
	blocks, dsack, undo := h.Opts.SACK, false, false
	if c.sackOK && isDSACK(h) {
		dsack, undo = c.dsackInput(blocks[0])
		blocks = blocks[1:]
	}
	newSACK := false
	if c.sackOK && len(blocks) > 0 {
		newSACK = c.noteSACK(blocks)
	}
	oldUna, oldNxt, dup := c.sndUna, c.sndNxt, false
	switch {
	case c.sndUna.Before(h.Ack):
		acked := h.Ack.Diff(c.sndUna)
		if c.rttTiming && c.rttSeq.Before(h.Ack) {
			c.rttSample(now.Sub(c.rttStart))
			c.rttTiming = false
		}
		if d := min(h.Ack.Diff(c.sndBase), c.snd.n); d > 0 {
			c.snd.consume(d)
			c.sndBase = c.sndBase.Add(d)
		}
		c.sndUna = h.Ack
		if c.sndNxt.Before(c.sndUna) {
			c.sndNxt = c.sndUna
		}
		c.pruneSACK()
		c.retries = 0 // the backed-off RTO stays until a valid sample (RFC 6298 5.7, Karn)
		c.congestionAck(now, acked)
		if c.sndUna == c.sndMax {
			c.rtxAt, c.persist = time.Time{}, false
		} else {
			c.rtxAt, c.persist = now.Add(c.rto), false // RFC 6298 5.3
		}
		s.wake(c)
	case h.Ack == c.sndUna && c.sndMax != c.sndUna &&
		(n == 0 && h.Flags&(SYN|FIN) == 0 && wnd == c.sndWnd && !dsack || newSACK):
		// A duplicate ACK (RFC 5681 2), or one that SACKs bytes not
		// SACKed before, whatever else it carries (RFC 6675 2: a window
		// that moved does not hide a segment that left the network).
		// One whose news is only a D-SACK is none (Linux's
		// FLAG_DSACKING_ACK): the segment it reports left the network
		// long ago.
		dup = true
		if c.frto == 0 { // F-RTO waits for the retransmission's ACK (RFC 5682 3.1 step 2)
			c.dupAck(now)
		}
	}
	if c.rtoUndo {
		c.lossAck(now, h, blocks, oldUna, oldNxt, dup)
	}
	if undo && c.undoDSACK {
		// Every segment the episode sent again was received twice: the
		// reduction was not needed (RFC 3708, Linux's tcp_try_undo_dsack).
		c.s.stats.DSACKUndos++
		c.undo()
	}
	if c.sndWl1.Before(h.Seq) || (c.sndWl1 == h.Seq && c.sndWl2.BeforeEq(h.Ack)) {
		if wnd > c.sndWnd {
			s.wake(c)
		}
		c.sndWnd = wnd
		c.maxSndWnd = max(c.maxSndWnd, wnd)
		c.sndWl1, c.sndWl2 = h.Seq, h.Ack
		if wnd > 0 && c.persist {
			c.persist, c.rtxAt, c.persistBackoff = false, time.Time{}, 0
		}
	}
	if c.finAcked() {
		switch c.state {
		case FinWait1:
			c.state = FinWait2
			if c.id == 0 {
				c.waitAt = now.Add(s.c.FinWait2)
			}
			s.wake(c)
		case Closing:
			c.enterTimeWait(now)
		case LastAck:
			s.release(c)
			return false
		}
	}
	return true
}

// noteTimestamp records the peer's timestamp in TS.Recent (RFC 7323 4.3)
// once the segment has passed every check up to its ACK (the sequence
// number, RST, SYN, and the ACK field, as Linux's tcp_replace_ts_recent
// runs after tcp_ack's), and only when it covers Last.ACK.sent: a segment
// that is dropped never moves it.
func (c *tcb) noteTimestamp(h *Header) {
	if c.tsOK && h.Opts.TS && h.Seq.BeforeEq(c.lastAckSent) && int32(h.Opts.TSVal-c.tsRecent) >= 0 {
		c.tsRecent = h.Opts.TSVal
	}
}

// exitRecovery ends a fast recovery: congestion control deflates the
// window to what is in flight, and the duplicate ACKs counted go.
func (c *tcb) exitRecovery() {
	c.inRecovery, c.dupAcks, c.ltBoost = false, 0, 0
	c.cc.ExitRecovery(max(c.sndMax.Diff(c.sndUna), 0), c.mss)
}

// congestionAck hands an ACK of new data to congestion control, or, in
// fast recovery, ends the recovery or resends the next hole (NewReno's
// partial ACK, RFC 6582).
func (c *tcb) congestionAck(now time.Time, acked int) {
	c.dupAcks, c.ltBoost = 0, 0
	if c.inRecovery {
		if !c.sndUna.Before(c.recover) { // a full ACK ends recovery
			c.exitRecovery()
			return
		}
		// A partial ACK: the next hole is lost too (unless this recovery
		// has sent it again already, from the SACK blocks).
		if !c.sndUna.Before(c.rxtHigh) {
			c.retransmitFirst(now)
		}
		c.fillHole(now)
		c.cc.PartialAck(acked, c.mss)
		return
	}
	c.cc.Ack(now, acked, c.mss)
}

// dupAck counts a duplicate ACK. The first two let a new segment out
// (limited transmit, RFC 3042); the third starts fast retransmit, or fewer
// when so little is in flight that three cannot come (early retransmit,
// RFC 5827).
func (c *tcb) dupAck(now time.Time) {
	c.dupAcks++
	flight := c.sndMax.Diff(c.sndUna)
	thresh := 3
	if segs := (flight + c.mss - 1) / c.mss; segs < 4 && c.snd.n <= c.sndMax.Diff(c.sndBase) {
		thresh = max(segs-1, 1) // nothing new to send: no more duplicates will come
	}
	switch {
	case c.inRecovery:
		c.cc.RecoveryDupAck(c.mss)
		c.fillHole(now)
	case c.dupAcks < thresh:
		c.ltBoost = min(c.dupAcks, 2) * c.mss
	case c.dupAcks == thresh && (!c.recoverSet || c.recover.Before(c.sndUna) || len(c.sacked) > 0):
		c.ltBoost = 0
		if !c.rtoUndo { // else it joins the timeout's episode, and its window from before
			c.beginUndo()
		}
		c.cc.EnterRecovery(now, c.sndMax.Diff(c.sndUna), c.mss)
		c.recover, c.recoverSet = c.sndMax, true
		c.inRecovery = true
		c.s.stats.FastRetransmits++
		c.rttTiming = false
		c.rxtHigh = c.sndUna
		c.retransmitFirst(now)
	}
}

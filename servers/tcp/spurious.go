package tcp

import "time"

// Spurious retransmission timeouts. A timeout whose segments were not
// lost, only their ACKs late, costs a go-back-N sender the whole window
// sent again and a window cut to one segment. Two detectors find such a
// timeout from the ACKs that follow it, and the response is then undone:
//
//   - The timestamps (the Eifel detection, RFC 3522 3.2, as Linux's
//     tcp_packet_delayed): an ACK that advances SND.UNA and echoes a
//     timestamp older than the first retransmission's acknowledges an
//     original transmission.
//   - F-RTO (RFC 5682 3.1, the SACK-enhanced algorithm, which needs no
//     option): after the timeout only the first segment is sent again;
//     when its ACK comes, two new segments go instead of the rest of the
//     window, and the ACK after that tells whether the segments not sent
//     again had arrived.
//
// The response to a spurious timeout is Linux's tcp_try_undo_loss: the
// window and threshold go back to what they were before (RFC 4015 leaves
// the response open), sending goes on from SND.MAX rather than going back,
// and with timestamps the late ACK gives an RTT sample, so that the next
// timeout allows for the delay that caused this one.

// enterLoss is the timeout's part in spurious-timeout detection, run when
// the retransmission timer expires with data in flight, before the
// timeout's response (RFC 5682 3.1 step 1). underway reports whether a
// loss recovery was going on when it expired.
func (c *tcb) enterLoss(now time.Time, underway bool) {
	switch {
	case !underway:
		// The first timeout of a recovery: keep the window to restore,
		// and the scoreboard, to tell what the peer held already.
		c.beginUndo()
		c.rtoUndo = true
		c.rtoStamp = c.tsVal(now)
	case c.inRecovery:
		c.rtoUndo = false // fast recovery had cut the window already
	}
	c.rtoSacked = c.sacked
	c.rtoRxt = c.sndUna
	// Step 1: F-RTO runs when no other recovery was underway, or when
	// the timeout recurs with SND.UNA where it was (Linux's tcp_enter_loss,
	// after RFC 5682 3.2's note on repeated timeouts).
	c.frto = 0
	if c.rtoUndo && (!underway || c.retries > 1) && c.state.synchronized() {
		c.frto = 2
	}
}

// lossAck looks at an ACK that comes while a timeout's response may still
// be undone. sacks are its SACK blocks but a D-SACK; oldUna and oldNxt
// are SND.UNA and SND.NXT before it; dup reports a duplicate ACK. It runs
// after the ACK has been taken, before output.
func (c *tcb) lossAck(now time.Time, h *Header, sacks []Block, oldUna, oldNxt Seq, dup bool) {
	advanced := oldUna.Before(c.sndUna)
	if !advanced && !dup {
		return // a window update: no information (RFC 5682 3.1 step 3)
	}
	if c.frto == 2 {
		c.rtoRxt = seqMax(c.rtoRxt, oldNxt) // what went again since the timeout
	}
	// RFC 3522 3.2: the ACK acknowledges an original transmission.
	if advanced && c.tsOK && h.Opts.TS && h.Opts.TSEcr != 0 && int32(h.Opts.TSEcr-c.rtoStamp) < 0 {
		sample := time.Duration(c.tsVal(now)-h.Opts.TSEcr) * time.Millisecond
		c.spurious()
		c.rttSample(sample) // unambiguous: it echoes the original
		return
	}
	if c.frto == 0 {
		if !c.sndUna.Before(c.recover) {
			c.rtoUndo = false // the recovery is over
		}
		return
	}
	// Step 3 b: segments not sent again since the timeout, and not SACKed
	// before it, were acknowledged, cumulatively or by a SACK block. (Linux
	// asks this in step 2 too; the RFC waits for the new segments' ACK.)
	if c.frto == 3 && c.origAcked(oldUna, sacks) {
		c.spurious()
		return
	}
	switch {
	case !c.sndUna.Before(c.recover):
		// Step 2 a: the ACK covers all that was in flight; it cannot
		// tell. Step 3: the recovery is over.
		c.frto, c.rtoUndo = 0, false
	case c.frto == 3:
		// Step 3 a: a duplicate ACK, or one that acknowledges only what
		// was SACKed before: the loss was real. Go back and send again
		// what the peer does not hold, in slow start.
		c.frto, c.rtoUndo = 0, false
		c.sndNxt = c.sndUna
	case advanced:
		// Step 2 b: the retransmission arrived. Send up to two new
		// segments instead of the rest of the window; with none to send,
		// go on with the conventional recovery.
		if c.frtoSendNew(now) {
			c.frto = 3
		} else {
			c.frto = 0
		}
	}
	// Step 2 with a duplicate ACK: the scoreboard took its SACK blocks;
	// wait for the ACK of the retransmission.
}

// origAcked reports whether the ACK acknowledges, cumulatively or by a
// SACK block, bytes below the recovery point that were neither sent again
// since the timeout nor SACKed before it (RFC 5682 3.1 step 3 b).
func (c *tcb) origAcked(oldUna Seq, sacks []Block) bool {
	news := func(lo, hi Seq) bool {
		lo, hi = seqMax(lo, c.rtoRxt), seqMin(hi, c.recover)
		if !lo.Before(hi) {
			return false
		}
		b, ok := c.rtoSacked.holding(lo)
		return !ok || b.End.Before(hi)
	}
	if news(oldUna, c.sndUna) {
		return true
	}
	if c.sackOK {
		for _, b := range sacks {
			if b.Start.Before(b.End) && news(b.Start, b.End) {
				return true
			}
		}
	}
	return false
}

// frtoSendNew sends up to two segments of new data, whatever the
// congestion window, which the timeout's response has cut (RFC 5682 3.1
// step 2 b). It reports false, sending nothing, when the peer's window or
// the send queue has no new data to give.
func (c *tcb) frtoSendNew(now time.Time) bool {
	sent := false
	for range 2 {
		off := c.sndMax.Diff(c.sndBase)
		avail := max(c.snd.n-off, 0)
		n := min(avail, c.mss, max(c.sndUna.Add(c.sndWnd).Diff(c.sndMax), 0))
		if n == 0 {
			break
		}
		var flags uint8
		if c.finQueued && n == avail {
			flags = FIN
		}
		c.sndNxt = c.sndMax
		c.sendSeg(now, c.sndMax, flags, n, true)
		sent = true
	}
	return sent
}

// spurious undoes the response to a timeout found spurious (Linux's
// tcp_try_undo_loss; undo, in dsack.go).
func (c *tcb) spurious() {
	c.s.stats.SpuriousRTOs++
	c.undo()
}

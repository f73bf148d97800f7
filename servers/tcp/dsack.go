package tcp

// Duplicate SACK (D-SACK, RFC 2883) and the undo it allows (RFC 3708).
//
// As a receiver, a connection that negotiated SACK reports each segment it
// receives again, wholly or in part, in the first SACK block of the ACK
// the duplicate draws, which goes at once (Linux's tcp_dsack_set and
// tcp_send_dupack): the duplicated range, below RCV.NXT or within
// out-of-order data already held, before the usual SACK blocks.
//
// As a sender, a first SACK block below the ACK field, or inside the
// second block, is a D-SACK (RFC 2883 4): it says a segment arrived twice,
// so it is never new SACK information (neither a duplicate ACK nor a mark
// on the scoreboard). A fast retransmit or a timeout starts an episode
// that keeps the window and threshold from before its reduction (Linux's
// tcp_init_undo) and counts the segments it sends again; each D-SACK of
// one of them counts it off, and when all are counted off, none was
// needed and the reduction is undone (Linux's undo_retrans and
// tcp_try_undo_dsack).

// rxtCount is a range an episode sent again, and how many times it went
// again without a D-SACK reporting it yet.
type rxtCount struct {
	Block
	n int
}

// setDSACK notes [s, e) as received again, to be reported first in the
// next ACK, which goes at once. The first duplicate of a segment is the
// one reported (RFC 2883 4: one D-SACK block per ACK).
func (c *tcb) setDSACK(s, e Seq) {
	if !c.sackOK || c.s.c.NoDSACK || c.dsackDue() || !s.Before(e) {
		return
	}
	c.dsack = Block{s, e}
	c.ackNow = true
}

// dsackDue reports whether a D-SACK waits to be sent (setDSACK stores
// none empty).
func (c *tcb) dsackDue() bool { return c.dsack.Start != c.dsack.End }

// oldDuplicate notes the part below RCV.NXT of a segment that fails the
// sequence or PAWS test (Linux's tcp_send_dupack): its data or FIN came
// before. TIME-WAIT keeps no SACK state, as Linux's tcp_timewait_sock.
func (c *tcb) oldDuplicate(h *Header, segLen int) {
	if segLen == 0 || h.Flags&(SYN|RST) != 0 || c.state == TimeWait || !h.Seq.Before(c.rcvNxt) {
		return
	}
	c.setDSACK(h.Seq, seqMin(h.Seq.Add(segLen), c.rcvNxt))
}

// overlap returns the first part of [s, e) that a range of rs holds.
func (rs ranges) overlap(s, e Seq) (Block, bool) {
	i := rs.from(s + 1) // the first range that ends after s
	if i < len(rs) && rs[i].Start.Before(e) {
		return Block{seqMax(s, rs[i].Start), seqMin(e, rs[i].End)}, true
	}
	return Block{}, false
}

// isDSACK reports whether the first SACK block of h is a D-SACK (RFC 2883
// 4): below h's ACK field (as Linux's tcp_check_dsack asks, by its start;
// never SND.UNA, which the RFC forbids, ACKs coming out of order), or
// inside the second block.
func isDSACK(h *Header) bool {
	b := h.Opts.SACK
	switch {
	case len(b) == 0:
		return false
	case b[0].Start.Before(h.Ack):
		return true
	}
	return len(b) > 1 && b[1].Start.BeforeEq(b[0].Start) && b[0].End.BeforeEq(b[1].End)
}

// dsackInput takes the D-SACK block an ACK carries and reports whether it
// is valid: one that is empty, spans more than the largest window the peer
// offered (Linux's dubious D-SACK), or lies outside the range an ACK may
// acknowledge, [SND.UNA - MAX.SND.WND, SND.MAX] (RFC 5961 5.2), is not,
// and is counted (dsack-invalid). A valid one counts off, once each, the
// episode's retransmissions it reports; undo reports that it counted off
// the last, none of them having been needed.
func (c *tcb) dsackInput(b Block) (valid, undo bool) {
	w := max(c.maxSndWnd, c.mss)
	s, e := b.Start.Diff(c.sndUna), b.End.Diff(c.sndUna) // as offsets, so that the tests agree (noteSACK)
	if !(-w <= s && s < e && e-s <= w && e <= c.sndMax.Diff(c.sndUna)) {
		c.s.drop("dsack-invalid")
		return false, false
	}
	c.s.stats.DSACKsReceived++
	if !c.undoDSACK {
		return true, false
	}
	hit, k := false, 0
	for _, r := range c.undoRxt {
		if r.Start.Before(b.End) && b.Start.Before(r.End) {
			r.n--
			hit = true
		}
		if r.n > 0 {
			c.undoRxt[k] = r
			k++
		}
	}
	c.undoRxt = c.undoRxt[:k]
	return true, hit && k == 0
}

// beginUndo starts an episode whose reduction D-SACKs may undo (Linux's
// tcp_init_undo): the window and threshold from before it are kept, and
// the segments sent again counted from here.
func (c *tcb) beginUndo() {
	c.priorCwnd, c.priorSsthresh = c.cc.Cwnd(), c.cc.Ssthresh()
	c.undoDSACK, c.undoRxt = c.sackOK, c.undoRxt[:0]
}

// noteRetransmit counts [s, e), sent again, against the episode. An
// episode that sends again more distinct ranges than maxRanges is not
// undone by D-SACKs: its state stays bounded.
func (c *tcb) noteRetransmit(s, e Seq) {
	if !c.undoDSACK {
		return
	}
	for i := range c.undoRxt {
		if c.undoRxt[i].Block == (Block{s, e}) {
			c.undoRxt[i].n++
			return
		}
	}
	if len(c.undoRxt) >= maxRanges {
		c.undoDSACK, c.undoRxt = false, c.undoRxt[:0]
		return
	}
	c.undoRxt = append(c.undoRxt, rxtCount{Block{s, e}, 1})
}

// undo takes back an episode's reduction found unnecessary, by F-RTO, the
// timestamps or D-SACKs (Linux's tcp_undo_cwnd_reduction): a fast
// recovery ends, its inflated window first deflated; the window and
// threshold from before come back (CongestionControl.Undo); nothing more
// is sent again (SND.NXT goes on from SND.MAX); and fast retransmit is
// allowed again from here (recover is SND.UNA, as RFC 5682 2 step 3 b
// sets it).
func (c *tcb) undo() {
	if c.inRecovery {
		c.exitRecovery()
	}
	c.cc.Undo(c.priorCwnd, c.priorSsthresh)
	c.frto, c.rtoUndo, c.rtoSacked = 0, false, nil
	c.undoDSACK, c.undoRxt = false, c.undoRxt[:0]
	c.recover = c.sndUna
	if c.sndNxt.Before(c.sndMax) {
		c.sndNxt = c.sndMax
	}
}

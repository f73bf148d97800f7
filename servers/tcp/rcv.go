package tcp

import "time"

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

// dataReceived notes in-order data of n bytes for the delayed-ACK engine,
// as Linux's tcp_event_data_recv and tcp_measure_rcv_mss do. The first
// data of a connection, and the first after the peer was silent for longer
// than an RTO, start quick-ACK mode: the next segments are acknowledged at
// once (up to half the window in full segments, at most 16), so that a
// sender in slow start is not held by the delayed ACK. A segment shorter
// than the peer's full ones is marked pushed: the read that empties the
// buffer after it acknowledges it at once (afterRead). Short segments of
// one size in a row, of at least 536 bytes (or 88 without PSH), are taken
// for the full segments of a peer with a smaller MSS instead.
func (c *tcb) dataReceived(now time.Time, n int, psh bool) {
	if c.lastRcvd.IsZero() || now.Sub(c.lastRcvd) > c.rto {
		q := max(c.rcvAdv.Diff(c.rcvNxt), 0) / (2 * max(c.ackMSS, minMSS)) // Linux's tcp_incr_quickack
		if q == 0 {
			q = 2
		}
		c.quickAcks = max(c.quickAcks, min(q, maxQuickAcks))
	}
	c.lastRcvd = now
	last := c.lastSegLen
	c.lastSegLen = 0
	if n >= c.ackMSS {
		c.ackMSS = min(n, c.rcvMSS)
		return
	}
	if n >= defaultMSS || n >= minMSS && !psh {
		c.lastSegLen = n
		if n == last {
			c.ackMSS = n
			return
		}
	}
	c.pushed++
}

// ackSent notes that a segment carrying an ACK of everything received
// went (Linux's tcp_event_ack_sent): nothing is pending, and one of the
// quick ACKs is spent if this one acknowledged data.
func (c *tcb) ackSent() {
	if c.quickAcks > 0 && c.pendingAcks > 0 {
		c.quickAcks--
	}
	c.ackNow, c.pendingAcks, c.pushed, c.delackAt = false, 0, 0, time.Time{}
}

// dataSent notes that data went: data sent within a delayed-ACK time of
// data received makes the connection interactive (Linux's pingpong mode,
// tcp_event_data_sent), and its ACKs then wait to ride on the answer.
func (c *tcb) dataSent(now time.Time) {
	if !c.lastRcvd.IsZero() && now.Sub(c.lastRcvd) < c.s.c.DelayedAck {
		c.pingpong = true
	}
}

// afterRead runs after the application took copied bytes from the receive
// buffer, as Linux's tcp_cleanup_rbuf. An ACK that waits goes at once when
// more than a full segment came since the last one, or when the read
// emptied the buffer after a short segment (the end of a message: the
// sender may hold its next one for this ACK, by Nagle's rule), unless the
// connection is interactive, where the answer the application is about to
// send carries the ACK; after two short segments it goes even then. Else
// a window update goes if the read opened the window enough.
func (c *tcb) afterRead(now time.Time, copied int) {
	if !c.state.canReceive() || c.state == SynReceived {
		return
	}
	if c.pendingAcks > 0 && (c.rcvNxt.Diff(c.lastAckSent) > c.ackMSS ||
		copied > 0 && c.rcv.n == 0 && len(c.ooo) == 0 && (c.pushed >= 2 || c.pushed == 1 && !c.pingpong)) {
		c.ackNow = true
		c.output(now)
		return
	}
	c.windowUpdate(now)
}

// windowUpdate sends an ACK when reading has opened the window enough:
// by half the buffer or a full segment, whichever is less (receiver-side
// silly window avoidance, RFC 9293 3.8.6.2.2). A sender held by a closed
// window then goes on as soon as a segment's worth is read, rather than
// at the delayed ACK's timer (40 ms), which a window of a few large
// segments (the loopback's 64 KiB) otherwise waits for after every read.
func (c *tcb) windowUpdate(now time.Time) {
	if !c.state.canReceive() || c.state == SynReceived {
		return
	}
	// The window field can say at most 0xffff << rcvShift: a buffer larger
	// than that (no window scaling) opens nothing past it.
	open := min(c.rcv.free(), 0xffff<<c.rcvShift) - max(c.rcvAdv.Diff(c.rcvNxt), 0)
	if open >= min(c.rcv.cap()/2, c.rcvMSS) {
		c.ackNow = true
		c.output(now)
	}
}

// sackBlocks lists the out-of-order ranges, the latest first (RFC 2018
// 4), after the D-SACK block when dsack is set, which it then clears and
// counts (RFC 2883 4: the ranges held follow it, the one holding the
// duplicate first).
func (c *tcb) sackBlocks(dsack bool) []Block {
	n := 4
	if c.tsOK {
		n = 3
	}
	out := make([]Block, 0, n)
	if dsack {
		out = append(out, c.dsack)
		c.dsack = Block{}
		c.s.stats.DSACKsSent++
	}
	latest := -1
	if r, ok := c.ooo.holding(c.lastOOO); ok {
		latest = len(out)
		out = append(out, r)
	}
	for _, r := range c.ooo {
		if len(out) >= n {
			break
		}
		if latest < 0 || out[latest] != r {
			out = append(out, r)
		}
	}
	return out
}

// receive takes segment text and a FIN into the receive buffer, in order
// and once, whatever order and how many times they come; psh is the
// segment's PSH flag.
func (c *tcb) receive(now time.Time, seq Seq, data []byte, fin, psh bool) {
	s := c.s
	had := len(data) > 0
	if seq.Before(c.rcvNxt) {
		d := c.rcvNxt.Diff(seq)
		c.setDSACK(seq, seq.Add(min(d, len(data)))) // received before, at least in part
		if d >= len(data) {
			data = nil
		} else {
			data = data[d:]
		}
		seq = c.rcvNxt
	}
	wnd := max(c.rcvAdv.Diff(c.rcvNxt), 0)
	off := seq.Diff(c.rcvNxt)
	if off+len(data) > wnd {
		data = data[:max(wnd-off, 0)]
		fin = false
	}
	if len(data) > 0 && c.rcv.held() == 0 && !s.memRoom(c.rcv.cap()) {
		s.drop("memory") // MaxMemory: no room for a receive buffer; the sender sends it again
		data, fin = nil, false
	}
	if len(data) > 0 {
		// Out-of-order data held already: the first part held is
		// reported (Linux's tcp_data_queue_ofo, and tcp_ofo_queue for
		// data in order that reaches into it).
		if b, ok := c.ooo.overlap(seq, seq.Add(len(data))); ok {
			c.setDSACK(b.Start, b.End)
		}
	}
	if len(data) > 0 && off > 0 {
		var ok bool
		if c.ooo, ok = c.ooo.add(seq, seq.Add(len(data))); !ok {
			s.drop("ooo-limit") // the sender sends it again
			data, fin = nil, false
			c.ackNow = true
		}
	}
	if len(data) > 0 {
		c.rcv.writeAt(c.rcv.n+off, data)
		if off == 0 {
			c.dataReceived(now, len(data), psh)
			c.rcv.n += len(data)
			c.rcvNxt = c.rcvNxt.Add(len(data))
			filled := false
			for len(c.ooo) > 0 && !c.rcvNxt.Before(c.ooo[0].Start) {
				if c.rcvNxt.Before(c.ooo[0].End) {
					k := c.ooo[0].End.Diff(c.rcvNxt)
					c.rcv.n += k
					c.rcvNxt = c.ooo[0].End
				}
				c.ooo = c.ooo[1:]
				filled = true
			}
			c.pendingAcks++
			switch {
			case filled:
				c.ackNow = true // a hole filled: tell the sender at once
			case c.pendingAcks >= 2 || c.quickAcks > 0 && !c.pingpong:
				c.ackNow = true // every other segment, and each one in quick-ACK mode
			case c.delackAt.IsZero():
				c.delackAt = now.Add(s.c.DelayedAck)
			}
			s.wake(c)
		} else {
			c.lastOOO = seq
			c.ackNow = true // out of order: a duplicate ACK at once
		}
	} else if had {
		c.ackNow = true // all old: the ACK was lost
	}
	if fin && !c.finRcvd {
		c.finSeen, c.finSeq = true, seq.Add(len(data))
	}
	if c.finSeen && !c.finRcvd && c.finSeq == c.rcvNxt {
		c.finRcvd = true
		c.rcvNxt++
		switch c.state {
		case SynReceived, Established:
			// The peer is done: its FIN's ACK waits, as Linux's tcp_fin
			// has it (interactive mode), for the close that usually
			// follows to carry it on our FIN; the delayed ACK's timer
			// sends it alone otherwise.
			c.state = CloseWait
			c.pingpong = true
			if c.delackAt.IsZero() {
				c.delackAt = now.Add(s.c.DelayedAck)
			}
		default:
			c.ackNow = true
		}
		switch c.state {
		case FinWait1:
			if c.finAcked() {
				c.enterTimeWait(now)
			} else {
				c.state = Closing
			}
		case FinWait2:
			c.enterTimeWait(now)
		}
		s.wake(c)
	}
}

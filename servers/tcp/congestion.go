package tcp

import "time"

// CongestionControl keeps one connection's congestion window (RFC 5681):
// how many bytes it may have in flight. The sender tells it of new data
// acknowledged, of loss found by duplicate ACKs, of the ACKs during the
// recovery that follows, and of retransmission timeouts; it answers with
// the window and the slow-start threshold.
//
// Loss recovery itself (which segment to send again, limited transmit,
// early retransmit, the SACK scoreboard, when recovery starts and ends)
// stays in the sender, as in gVisor's netstack, so that an algorithm such
// as CUBIC (RFC 9438) sits beside NewReno by changing the window
// arithmetic only. Every method is given what it needs; an implementation
// must be deterministic and read no clock. One value serves one connection
// and is not shared.
type CongestionControl interface {
	// Cwnd returns the congestion window, in bytes.
	Cwnd() int
	// Ssthresh returns the slow-start threshold, in bytes.
	Ssthresh() int
	// Reset readies the window for a new connection: no window until the
	// handshake ends, and an unbounded threshold (RFC 5681 3.1).
	Reset()
	// Start sets the initial window when the handshake ends, mss being the
	// connection's send MSS (RFC 6928).
	Start(mss int)
	// Ack grows the window for acked bytes of new data acknowledged
	// outside recovery (slow start, then congestion avoidance).
	Ack(now time.Time, acked, mss int)
	// EnterRecovery shrinks the window on loss found by duplicate ACKs
	// (fast retransmit), flight being the bytes in flight then.
	EnterRecovery(now time.Time, flight, mss int)
	// RecoveryDupAck is another duplicate ACK during recovery: a segment
	// has left the network.
	RecoveryDupAck(mss int)
	// PartialAck is an ACK of acked new bytes during recovery that does
	// not end it (RFC 6582 3.2 step 3).
	PartialAck(acked, mss int)
	// ExitRecovery is the ACK that ends recovery, flight being the bytes
	// still in flight after it.
	ExitRecovery(flight, mss int)
	// Timeout shrinks the window when the retransmission timer expires
	// with flight bytes in flight (RFC 5681 3.1).
	Timeout(now time.Time, flight, mss int)
	// Undo takes back a timeout's response once the timeout is found
	// spurious (RFC 5682, RFC 3522): cwnd and ssthresh are the window and
	// threshold Cwnd and Ssthresh returned before it (Linux's undo_cwnd).
	Undo(cwnd, ssthresh int)
}

// newCongestion returns the congestion control for a new tcb, as the
// Stack's Config chooses it.
func (s *Stack) newCongestion() CongestionControl {
	if s.c.CongestionControl != nil {
		return s.c.CongestionControl()
	}
	return NewReno()
}

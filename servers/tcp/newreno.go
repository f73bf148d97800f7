package tcp

import "time"

// maxCwnd bounds the congestion window, so that it cannot overflow.
const maxCwnd = 1 << 30

// newReno is RFC 5681's slow start and congestion avoidance with RFC
// 6582's NewReno fast recovery, the Stack's default CongestionControl.
type newReno struct {
	cwnd, ssthresh int
	acc            int // bytes acknowledged towards the next segment of congestion avoidance
}

// NewReno returns RFC 5681 congestion control with RFC 6582's NewReno fast
// recovery: an initial window of 10 segments (RFC 6928), slow start, one
// segment more per window of data acknowledged in congestion avoidance,
// half the flight on loss, inflation by one segment per duplicate ACK and
// deflation by what a partial ACK acknowledges.
func NewReno() CongestionControl { return &newReno{} }

// Cwnd returns the congestion window.
func (r *newReno) Cwnd() int { return r.cwnd }

// Ssthresh returns the slow-start threshold.
func (r *newReno) Ssthresh() int { return r.ssthresh }

// Reset readies the window for a new connection.
func (r *newReno) Reset() { r.cwnd, r.ssthresh = 0, maxCwnd }

// Start sets the initial window: 10 segments, at most max(2 MSS, 14600)
// bytes (RFC 6928 2).
func (r *newReno) Start(mss int) { r.cwnd = min(initialWindowSegs*mss, max(2*mss, 14600)) }

// Ack grows the window: in slow start by the bytes the ACK acknowledged,
// up to ssthresh (byte counting, RFC 3465, without its per-ACK limit L,
// as Linux's tcp_slow_start counts every segment acknowledged: a
// receiver that ACKs a 64 KiB TSO frame once, as Linux does a GSO
// packet, would otherwise grow the window by one segment a frame); in
// congestion avoidance by one segment per window of data.
func (r *newReno) Ack(_ time.Time, acked, mss int) {
	if r.cwnd < r.ssthresh {
		r.cwnd = min(r.cwnd+acked, r.ssthresh)
	} else {
		r.acc += acked
		if r.acc >= r.cwnd {
			r.acc -= r.cwnd
			r.cwnd += mss
		}
	}
	r.cwnd = min(r.cwnd, maxCwnd)
}

// EnterRecovery halves the flight into ssthresh and inflates the window by
// the three segments the duplicate ACKs say have left (RFC 5681 3.2 steps
// 2-3).
func (r *newReno) EnterRecovery(_ time.Time, flight, mss int) {
	r.ssthresh = max(flight/2, 2*mss)
	r.cwnd = r.ssthresh + 3*mss
}

// RecoveryDupAck inflates the window by one segment (RFC 5681 3.2 step 4).
func (r *newReno) RecoveryDupAck(mss int) { r.cwnd += mss }

// PartialAck deflates the window by what was acknowledged, and adds back
// one segment when at least one was (RFC 6582 3.2 step 3).
func (r *newReno) PartialAck(acked, mss int) {
	r.cwnd = max(r.cwnd-acked, 0)
	if acked >= mss {
		r.cwnd += mss
	}
	r.cwnd = max(r.cwnd, mss)
}

// ExitRecovery deflates the window to min(ssthresh, flight + MSS) (RFC
// 6582 3.2 step 4, option 1).
func (r *newReno) ExitRecovery(flight, mss int) { r.cwnd = min(r.ssthresh, flight+mss) }

// Timeout halves the flight into ssthresh and restarts slow start from one
// segment (RFC 5681 3.1, equation 4 and the loss window).
func (r *newReno) Timeout(_ time.Time, flight, mss int) {
	r.ssthresh = max(flight/2, 2*mss)
	r.cwnd, r.acc = mss, 0
}

// Undo restores the window and threshold a spurious timeout took, keeping
// what grew since (Linux's tcp_undo_cwnd_reduction with reno's undo_cwnd).
func (r *newReno) Undo(cwnd, ssthresh int) {
	r.cwnd = min(max(r.cwnd, cwnd), maxCwnd)
	r.ssthresh = max(r.ssthresh, ssthresh)
	r.acc = 0
}

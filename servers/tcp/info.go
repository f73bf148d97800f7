package tcp

import (
	"fmt"
	"net/netip"
	"sort"
	"time"
)

// ConnInfo is a connection's state as `ss -ti` would show it.
type ConnInfo struct {
	ID                     SockID // 0: an orphan or not yet accepted
	State                  State
	Local, Remote          netip.AddrPort
	SndUna, SndNxt, SndMax Seq
	SndQueued              int // bytes in the send buffer, unacknowledged ones included
	SndWnd, Cwnd, Ssthresh int
	InRecovery, Persist    bool
	RTO, SRTT              time.Duration
	Retries                int
	RcvNxt                 Seq
	RcvQueued, RcvWnd      int // bytes to read; window left
	OutOfOrder             int // ranges held past a hole
	MSS                    int
	Timer                  time.Time // the next deadline, zero if none
}

// String formats the connection on one line.
func (c ConnInfo) String() string {
	return fmt.Sprintf("%d %s %v->%v una=%d nxt=%d max=%d sndq=%d wnd=%d cwnd=%d ssthresh=%d rec=%v persist=%v rto=%v srtt=%v retries=%d rcvnxt=%d rcvq=%d rcvwnd=%d ooo=%d mss=%d timer=%v",
		c.ID, c.State, c.Local, c.Remote, c.SndUna, c.SndNxt, c.SndMax, c.SndQueued, c.SndWnd, c.Cwnd, c.Ssthresh,
		c.InRecovery, c.Persist, c.RTO, c.SRTT, c.Retries, c.RcvNxt, c.RcvQueued, c.RcvWnd, c.OutOfOrder, c.MSS,
		c.Timer.Format("15:04:05.000000"))
}

// Conns lists every connection and socket, listeners first, then by local
// address.
func (s *Stack) Conns() []ConnInfo {
	var out []ConnInfo
	for c := range s.all {
		out = append(out, ConnInfo{ID: c.id, State: c.state, Local: c.local, Remote: c.remote,
			SndUna: c.sndUna, SndNxt: c.sndNxt, SndMax: c.sndMax, SndQueued: c.snd.n, SndWnd: c.sndWnd,
			Cwnd: c.cc.Cwnd(), Ssthresh: c.cc.Ssthresh(), InRecovery: c.inRecovery, Persist: c.persist,
			RTO: c.rto, SRTT: c.srtt, Retries: c.retries, RcvNxt: c.rcvNxt, RcvQueued: c.rcv.n,
			RcvWnd: max(c.rcvAdv.Diff(c.rcvNxt), 0), OutOfOrder: len(c.ooo), MSS: c.mss, Timer: c.next()})
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].State == Listen) != (out[j].State == Listen) {
			return out[i].State == Listen
		}
		return out[i].Local.String()+out[i].Remote.String() < out[j].Local.String()+out[j].Remote.String()
	})
	return out
}

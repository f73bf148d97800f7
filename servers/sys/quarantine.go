package sys

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
)

// A restarted server adopts its pool with every buffer free (pool.Adopt):
// its predecessor's record of what it had handed out died with it. Peers
// may still hold some of those buffers: a frame a driver is forwarding, a
// segment ip has not handled yet, a reply's data an application copies.
// Handing one out again would let a new frame overwrite data a peer is
// reading. So the new incarnation quarantines its pool (docs/RECOVERY.md):
// every buffer counts as held, and comes back as peers give them back
// (BufFree, as ever), until every peer has answered two fences, a Ping
// each, in turn. A peer answers a fence after handling what its
// predecessor's messages left in its inbox, which gives back or passes on
// every buffer they carried, and the second round lets what it passed on
// (queued in its outbox, or at the next hop) be handled too. Then the
// buffers nobody gave back are free: nobody holds them. A peer that never
// answers (it died meanwhile) holds up the pool for at most
// MaxQuarantine.

// fenceMagic marks a Ping as a quarantine's fence, in its first argument.
const fenceMagic = 0x6e657774_66656e63 // "newtfenc"

// fenceRounds is how many rounds of fences end a quarantine.
const fenceRounds = 2

// MaxQuarantine bounds a quarantine: a peer that has not answered by then
// is taken to hold nothing.
const MaxQuarantine = time.Second

// quarantine is a restarted server's record of the buffers of its pool
// its predecessor may have handed out.
type quarantine struct {
	mu      sync.Mutex
	held    map[uint32]pool.Ref // by offset: buffers not yet known to be free
	waiting map[int]bool        // peers (by slot) whose answer to this round's fence is due
	round   int
	since   time.Time
}

// quarantinePool takes every buffer of the server's pool and sends the
// first round of fences. New calls it for a restarted server.
func (s *Server) quarantinePool() {
	q := &s.quar
	q.held = map[uint32]pool.Ref{}
	for {
		ref, _, err := s.Pool.Alloc()
		if err != nil {
			break
		}
		q.held[ref.Off()] = ref
	}
	q.since = time.Now()
	s.Log.Printf("restarted: %d buffers quarantined until the peers answer", len(q.held))
	s.fence()
}

// registerQuarantine exports the number of buffers in quarantine.
func (s *Server) registerQuarantine() {
	q := &s.quar
	s.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: prom.Namespace,
		Subsystem: "pool", Name: "quarantined_buffers", Help: "Buffers of this server's pool a peer may still hold since its restart."},
		func() float64 {
			q.mu.Lock()
			defer q.mu.Unlock()
			return float64(len(q.held))
		}))
}

// fence sends a round of fences, one to each peer; a peer it cannot reach
// holds nothing it would give back.
func (s *Server) fence() {
	q := &s.quar
	q.round++
	q.waiting = map[int]bool{}
	for name, ep := range s.peers {
		m := ipc.Message{Type: ipc.Ping, Arg: [ipc.NumArgs]uint64{fenceMagic, uint64(q.round)}}
		if s.SendTo(name, &m) == nil {
			q.waiting[ep.Slot()] = true
		}
	}
	s.checkQuarantine()
}

// fenced handles a Pong: a peer's answer to a fence. It reports whether m
// was one.
func (s *Server) fenced(m *ipc.Message) bool {
	if m.Arg[0] != fenceMagic {
		return false
	}
	q := &s.quar
	if q.held != nil && m.Arg[1] == uint64(q.round) {
		delete(q.waiting, m.Src.Slot())
		s.checkQuarantine()
	}
	return true
}

// checkQuarantine goes on to the next round of fences, or ends the
// quarantine, when the round is answered or time is up.
func (s *Server) checkQuarantine() {
	q := &s.quar
	if q.held == nil || (len(q.waiting) > 0 && time.Since(q.since) < MaxQuarantine) {
		return
	}
	if len(q.waiting) == 0 && q.round < fenceRounds {
		s.fence()
		return
	}
	q.mu.Lock()
	held := q.held
	q.held = nil
	q.mu.Unlock()
	for _, ref := range held {
		s.Pool.Free(ref)
	}
	s.Log.Printf("quarantine over after %v: %d buffers nobody gave back are free", time.Since(q.since).Round(time.Millisecond), len(held))
}

// freeOwn frees a buffer of the server's own pool, and takes it out of
// quarantine if it was in.
func (s *Server) freeOwn(ref pool.Ref) error {
	q := &s.quar
	q.mu.Lock()
	if q.held != nil {
		delete(q.held, ref.Off())
	}
	q.mu.Unlock()
	return s.Pool.Free(ref)
}

package sys

import (
	"sync"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/sockcall"
)

// holders remembers, for every buffer this process handed on (its own or
// one it passes along), the process it handed it to: a BufFree counts only
// from that process. Without it any linked process could free any buffer
// of any pool, to be reused while still in flight, mixing connections'
// data. The record goes when the buffer comes back, or is given back by a
// drop.
//
// It also counts, by process, the buffers of the server's own pool each
// holds (HeldBy): a transport bounds what one application may keep of its
// pool by it (servers.MaxBuffersPerApp).
type holders struct {
	mu  sync.Mutex // taken only when the server sends from several goroutines
	by  map[uint64]held
	own [ipc.MaxSlots]int // buffers of the own pool held, by holder (held.holder)
}

// held is a buffer handed on: to whom, and the reference it went with;
// then, for a receive's data handed to syscall, the application syscall
// passes it on to (0: none); own, whether it is a buffer of the server's
// own pool.
type held struct {
	slot uint8
	then uint8
	own  bool
	ref  pool.Ref
}

// holder is the process a buffer handed on is held by in the end: the
// application syscall passes it on to, or the process it went to.
func (b held) holder() int {
	if b.then != 0 {
		return int(b.then)
	}
	return int(b.slot)
}

// add records b as the holder of the buffer k, replacing any record
// before it. The caller holds mu where the server locks.
func (h *holders) add(k uint64, b held) {
	if h.by == nil {
		h.by = map[uint64]held{}
	}
	h.remove(k)
	b.own = b.own && b.holder() < ipc.MaxSlots // never: sends go to slots
	h.by[k] = b
	if b.own {
		h.own[b.holder()]++
	}
}

// remove forgets the record of the buffer k, if any. The caller holds mu
// where the server locks.
func (h *holders) remove(k uint64) {
	b, ok := h.by[k]
	if !ok {
		return
	}
	delete(h.by, k)
	if b.own {
		h.own[b.holder()]--
	}
}

// HeldBy is how many buffers of the server's own pool the process in slot
// holds: handed to it, or passed on to it by syscall (a receive's data),
// and not given back yet. A buffer counts from its send until its BufFree
// comes back, or its holder's death takes it back.
func (s *Server) HeldBy(slot int) int {
	if slot < 0 || slot >= ipc.MaxSlots {
		return 0
	}
	h := &s.holders
	if s.lockSend {
		h.mu.Lock()
		defer h.mu.Unlock()
	}
	return h.own[slot]
}

// ownPool reports whether r points into the server's own pool.
func (s *Server) ownPool(r pool.Ref) bool {
	return s.Pool != nil && int(r.Pool()) == s.Opts.Endpoint.Slot()
}

// holderKey names the buffer a reference points into: every pool of a run
// has buffers of one size (runfiles.PoolConfig), the server's own pool's,
// and a reference never spans two.
func (s *Server) holderKey(r pool.Ref) uint64 {
	size := pool.DefaultBufSize
	if s.Pool != nil {
		size = s.Pool.BufSize()
	}
	return uint64(r.Pool())<<32 | uint64(r.Off()/uint32(size))
}

// gave records that m, about to be sent, hands its buffer (if it carries
// one) to its destination.
func (s *Server) gave(m *ipc.Message) {
	ref, ok := carried(m)
	if !ok {
		return
	}
	h := &s.holders
	if s.lockSend {
		h.mu.Lock()
		defer h.mu.Unlock()
	}
	h.add(s.holderKey(ref), held{slot: uint8(m.Dst.Slot()), then: s.passedTo(m), own: s.ownPool(ref), ref: ref})
}

// passedTo is the slot of the application a receive's data handed to
// syscall goes on to (the reply's Caller), or 0. That application gives
// the buffer back as any holder does: straight to its owner when it is
// linked to it (the conformance and exposed topologies link applications
// to tcp), not through syscall.
func (s *Server) passedTo(m *ipc.Message) uint8 {
	d := m.Dst.Slot()
	if m.Type != ipc.SocketReply || d <= ipc.KernelSlot || d >= ipc.MaxSlots || s.class[d] != ipc.ClassSyscall {
		return 0
	}
	var r sockcall.Reply
	r.Decode(m)
	if c := r.Caller.Slot(); c > ipc.KernelSlot && c < ipc.MaxSlots {
		return uint8(c)
	}
	return 0
}

// forget drops the record of a buffer that came back by another way than
// a BufFree (a send that failed).
func (s *Server) forget(ref pool.Ref) {
	h := &s.holders
	if s.lockSend {
		h.mu.Lock()
		defer h.mu.Unlock()
	}
	h.remove(s.holderKey(ref))
}

// returnedBy reports whether the process in slot may give ref back, the
// process this one handed it to, and forgets the record if so. A restarted
// server still in quarantine does not know what its predecessor handed
// out, and takes what comes.
func (s *Server) returnedBy(ref pool.Ref, slot int) bool {
	h := &s.holders
	if s.lockSend {
		h.mu.Lock()
		defer h.mu.Unlock()
	}
	k := s.holderKey(ref)
	if got, ok := h.by[k]; ok && (int(got.slot) == slot || (got.then != 0 && int(got.then) == slot) || s.passedOn(int(got.slot), slot)) {
		h.remove(k)
		return true
	}
	return s.quar.held != nil && int(ref.Pool()) == s.Opts.Endpoint.Slot()
}

// passedOn reports whether a buffer handed to the process in slot holder
// may come back from the process in slot from because the holder passes
// such buffers on: syscall forwards an application's send, buffer and
// all, to the transport that owns the socket, and the transport frees it
// to its owner.
func (s *Server) passedOn(holder, from int) bool {
	if holder <= ipc.KernelSlot || holder >= ipc.MaxSlots || from <= ipc.KernelSlot || from >= ipc.MaxSlots {
		return false
	}
	return s.class[holder] == ipc.ClassSyscall && s.class[from] == ipc.ClassTransport
}

// reclaim takes back every buffer handed to the application in slot, which
// died holding them: its own are freed, others' sent towards their owners.
// Only an application's: it never hands a buffer on, so nobody else can be
// reading one; a server that died may have passed them along.
func (s *Server) reclaim(slot int) int {
	if slot <= ipc.KernelSlot || slot >= ipc.MaxSlots || s.class[slot] != ipc.ClassApp {
		return 0
	}
	h := &s.holders
	var refs []pool.Ref
	if s.lockSend {
		h.mu.Lock()
	}
	for k, b := range h.by {
		if int(b.slot) == slot {
			refs = append(refs, b.ref)
			h.remove(k)
		}
	}
	if s.lockSend {
		h.mu.Unlock()
	}
	for _, r := range refs {
		s.giveBack(r)
	}
	return len(refs)
}

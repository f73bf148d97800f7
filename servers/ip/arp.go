package ip

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/newtsim/newtsim/servers/proto"
)

// ARP over Ethernet for IPv4 (RFC 826).
const (
	arpLen       = 28 // an ARP packet for Ethernet and IPv4
	arpRequest   = 1
	arpReply     = 2
	arpHTEther   = 1 // hardware type Ethernet
	arpRefreshIn = arpRetryEvery * (arpRetries + 1)
)

// A neighbor is an ARP cache entry: resolved (mac known until deadline) or
// pending (requests going out, packets held).
type neighbor struct {
	ip       uint32
	mac      [6]byte
	resolved bool
	// deadline is, for a resolved entry, when it expires; for a pending
	// one, when the next request or the give-up is due.
	deadline time.Time
	// refreshed is when a resolved entry last asked to be confirmed.
	refreshed time.Time
	sent      int         // pending: requests sent
	held      []heldFrame // pending: frames waiting for the MAC
	list      *nlist      // the list the entry is on, if any
	prev      *neighbor
	next      *neighbor
}

// heldFrame is a frame waiting for its destination's MAC, and its segment
// size (Event.SegSize).
type heldFrame struct {
	frame   []byte
	segSize uint16
}

// nlist is a doubly linked list of neighbors.
type nlist struct{ head, tail *neighbor }

// pushBack appends n, which must be on no list.
func (l *nlist) pushBack(n *neighbor) {
	n.list, n.prev, n.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = n
	} else {
		l.head = n
	}
	l.tail = n
}

// remove takes n off the list it is on, if any.
func remove(n *neighbor) {
	l := n.list
	if l == nil {
		return
	}
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.list, n.prev, n.next = nil, nil, nil
}

// arpIn handles an ARP packet (b is the frame past its Ethernet header,
// padding included).
func (s *Stack) arpIn(now time.Time, b []byte) {
	if len(b) < arpLen ||
		binary.BigEndian.Uint16(b[0:]) != arpHTEther || binary.BigEndian.Uint16(b[2:]) != proto.EtherTypeIPv4 ||
		b[4] != 6 || b[5] != 4 {
		s.drop(dropBadARP)
		return
	}
	op := binary.BigEndian.Uint16(b[6:])
	sha := [6]byte(b[8:14])
	spa := binary.BigEndian.Uint32(b[14:])
	tpa := binary.BigEndian.Uint32(b[24:])
	switch {
	case op != arpRequest && op != arpReply,
		sha[0]&1 != 0 || sha == [6]byte{},
		spa == 0 && op != arpRequest, // only a probe (RFC 5227) has no sender address
		spa != 0 && (!unicast(spa) || loopback(spa) || s.isBroadcast(spa)):
		s.drop(dropBadARP)
		return
	}
	if op == arpRequest {
		s.stats.ARPRequestsReceived++
	} else {
		s.stats.ARPRepliesReceived++
	}
	if spa == s.addr {
		s.drop(dropARPConflict)
		return
	}
	forUs := tpa == s.addr
	// RFC 826's merge: refresh an entry for the sender whatever the
	// target; create one only when the packet is for us. Off-link senders
	// are never looked up, so never cached.
	if spa != 0 && s.subnet.contains(spa) {
		s.learn(now, spa, sha, forUs)
	}
	if !forUs {
		s.drop(dropARPNotForUs)
		return
	}
	if op == arpRequest {
		s.arpSend(arpReply, sha, sha, spa)
	}
}

// arpSend sends an ARP packet from the host to dst (Ethernet), with target
// tha, tpa.
func (s *Stack) arpSend(op uint16, dst, tha [6]byte, tpa uint32) {
	f := s.newFrame(EthHeaderLen + arpLen)
	s.putEth(f, dst, proto.EtherTypeARP)
	a := f[EthHeaderLen:]
	binary.BigEndian.PutUint16(a[0:], arpHTEther)
	binary.BigEndian.PutUint16(a[2:], proto.EtherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], op)
	copy(a[8:14], s.mac[:])
	binary.BigEndian.PutUint32(a[14:], s.addr)
	copy(a[18:24], tha[:])
	binary.BigEndian.PutUint32(a[24:], tpa)
	if op == arpRequest {
		s.stats.ARPRequestsSent++
	} else {
		s.stats.ARPRepliesSent++
	}
	s.emitFrame(f, 0)
}

// learn records that ip is at mac, creating the entry only if create, and
// sends the packets held for it.
func (s *Stack) learn(now time.Time, ip uint32, mac [6]byte, create bool) {
	n := s.neigh[ip]
	if n == nil {
		if !create {
			return
		}
		if n = s.newNeighbor(ip); n == nil {
			return // the cache is full of pending entries: learn later
		}
	}
	remove(n)
	n.mac, n.resolved, n.sent = mac, true, 0
	n.deadline = now.Add(s.arpTO)
	n.refreshed = time.Time{}
	s.resolved.pushBack(n)
	held := n.held
	n.held = nil
	for _, h := range held {
		s.putEth(h.frame, mac, proto.EtherTypeIPv4)
		s.emitFrame(h.frame, h.segSize)
	}
}

// newNeighbor adds an entry for ip to the cache, on no list, evicting the
// resolved entry that expires first if the cache is full. It returns nil
// when every entry is pending.
func (s *Stack) newNeighbor(ip uint32) *neighbor {
	if len(s.neigh) >= maxNeighbors {
		old := s.resolved.head
		if old == nil {
			return nil
		}
		remove(old)
		delete(s.neigh, old.ip)
	}
	n := &neighbor{ip: ip}
	s.neigh[ip] = n
	return n
}

// sendVia sends frame, an IPv4 packet behind room for an Ethernet header,
// to the on-link host next: at once if its MAC is known, else after ARP
// resolves it. segSize is the frame's Event.SegSize.
func (s *Stack) sendVia(now time.Time, frame []byte, next uint32, segSize uint16) {
	n := s.neigh[next]
	if n != nil && n.resolved {
		if now.Before(n.deadline) {
			s.putEth(frame, n.mac, proto.EtherTypeIPv4)
			s.emitFrame(frame, segSize)
			s.maybeRefresh(now, n)
			return
		}
		remove(n) // expired, and Tick has not run yet
		n.resolved = false
	}
	if n == nil {
		if n = s.newNeighbor(next); n == nil {
			s.drop(dropARPCacheFull)
			return
		}
	}
	if n.list == nil { // not yet being resolved
		n.sent = 1
		n.deadline = now.Add(arpRetryEvery)
		s.pending.pushBack(n)
		s.arpSend(arpRequest, broadcastMAC, [6]byte{}, next)
	}
	if len(n.held) >= s.arpHold {
		s.drop(dropARPHoldOverflow)
		return
	}
	n.held = append(n.held, heldFrame{bytes.Clone(frame), segSize})
}

// maybeRefresh asks a neighbor in use to confirm its address shortly before
// its entry expires, once a second, by a request sent to its MAC (RFC 1122
// 2.3.2.1's unicast poll), so that a busy flow does not stall on a
// resolution from scratch.
func (s *Stack) maybeRefresh(now time.Time, n *neighbor) {
	if n.deadline.Sub(now) > arpRefreshIn {
		return
	}
	if !n.refreshed.IsZero() && now.Sub(n.refreshed) < arpRetryEvery {
		return
	}
	n.refreshed = now
	s.arpSend(arpRequest, n.mac, [6]byte{}, n.ip)
}

// arpTick expires resolved entries and retries or gives up pending ones.
func (s *Stack) arpTick(now time.Time) {
	for n := s.resolved.head; n != nil && !now.Before(n.deadline); n = s.resolved.head {
		remove(n)
		delete(s.neigh, n.ip)
	}
	for n := s.pending.head; n != nil; {
		next := n.next
		if !now.Before(n.deadline) {
			if n.sent <= arpRetries {
				n.sent++
				n.deadline = now.Add(arpRetryEvery)
				s.arpSend(arpRequest, broadcastMAC, [6]byte{}, n.ip)
			} else {
				s.dropN(dropARPUnresolved, len(n.held))
				remove(n)
				delete(s.neigh, n.ip)
			}
		}
		n = next
	}
}

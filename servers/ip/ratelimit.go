package ip

import (
	"time"

	"github.com/newtsim/newtsim/servers/proto"
)

// ICMP error rate limits, as Linux's net/ipv4/icmp.c and
// net/ipv4/inetpeer.c apply them with their default sysctls:
//
//   - only types in icmp_ratemask (0x1818: destination unreachable, source
//     quench, time exceeded, parameter problem) are limited, and never a
//     fragmentation needed (icmpv4_mask_allow): echo replies are not;
//   - nothing to the host itself (Linux: "No rate limit on loopback");
//   - a global token bucket, icmp_msgs_per_sec 1000 with a burst of
//     icmp_msgs_burst 50 (icmp_global_allow), each error sent taking 0, 1
//     or 2 credits at random (icmp_global_consume, against the side
//     channel of CVE-2020-25705), here by the keyed hash, so deterministic;
//   - a bucket per destination, icmp_ratelimit 1 s with a burst of 6
//     (inet_peer_xrlim_allow, XRLIM_BURST_FACTOR), a new destination
//     starting full.
const (
	rateMask        = 1<<proto.ICMPDestUnreach | 1<<4 | 1<<proto.ICMPTimeExceeded | 1<<12 // icmp_ratemask
	globalPerSec    = 1000                                                                // icmp_msgs_per_sec
	globalBurst     = 50                                                                  // icmp_msgs_burst
	globalMinWait   = time.Second / 50                                                    // HZ/50: the least time that earns credit
	peerInterval    = time.Second                                                         // icmp_ratelimit
	peerBurst       = 6 * peerInterval                                                    // XRLIM_BURST_FACTOR * icmp_ratelimit
	maxRatePeers    = 4096                                                                // destinations with a bucket
	consumeHashSalt = 0x101                                                               // the hash's third word for credit draws
)

// ratePeer is a destination's bucket, on an LRU list.
type ratePeer struct {
	addr       uint32
	tokens     time.Duration
	last       time.Time
	prev, next *ratePeer
}

// limiter holds the ICMP rate limits' state.
type limiter struct {
	credit int       // global credits
	stamp  time.Time // when credit was last earned
	draws  uint32    // credit draws made, for the pseudo-random amount
	peers  map[uint32]*ratePeer
	// head is the least recently used bucket, tail the most.
	head, tail *ratePeer
}

// icmpAllowed reports whether the host may send an ICMP message of type
// typ and code to dst now, counting it as dropped if not, and takes its
// credit if so.
func (s *Stack) icmpAllowed(now time.Time, dst uint32, typ, code uint8) bool {
	if typ > 31 || rateMask&(1<<typ) == 0 || typ == proto.ICMPDestUnreach && code == proto.CodeFragNeeded || s.isLocal(dst) {
		return true
	}
	l := &s.limit
	if !l.globalAllow(now) {
		s.drop(dropRateGlobal)
		return false
	}
	if !l.peerAllow(now, dst) {
		s.drop(dropRateHost)
		return false
	}
	l.draws++
	l.credit -= int(s.ids.hash(l.draws, 0, consumeHashSalt) % 3)
	return true
}

// globalAllow is Linux's icmp_global_allow: there is credit, or enough
// time has passed to earn some.
func (l *limiter) globalAllow(now time.Time) bool {
	if l.credit > 0 {
		return true
	}
	delta := min(now.Sub(l.stamp), time.Second)
	if delta < globalMinWait {
		return false
	}
	incr := int(globalPerSec * delta / time.Second)
	l.stamp = now
	l.credit = min(l.credit+incr, globalBurst)
	return true
}

// peerAllow is Linux's inet_peer_xrlim_allow for dst's bucket.
func (l *limiter) peerAllow(now time.Time, dst uint32) bool {
	p := l.peer(now, dst)
	if d := now.Sub(p.last); d > 0 {
		p.tokens = min(p.tokens+d, peerBurst)
	}
	p.last = now
	if p.tokens < peerInterval {
		return false
	}
	p.tokens -= peerInterval
	return true
}

// peer returns dst's bucket, most recently used now; a new one is full.
// When maxRatePeers are held, the least recently used goes.
func (l *limiter) peer(now time.Time, dst uint32) *ratePeer {
	if l.peers == nil {
		l.peers = make(map[uint32]*ratePeer)
	}
	p := l.peers[dst]
	switch {
	case p != nil:
		l.unlink(p)
	case len(l.peers) >= maxRatePeers:
		p = l.head
		l.unlink(p)
		delete(l.peers, p.addr)
		*p = ratePeer{addr: dst, tokens: peerBurst, last: now}
		l.peers[dst] = p
	default:
		p = &ratePeer{addr: dst, tokens: peerBurst, last: now}
		l.peers[dst] = p
	}
	p.prev, p.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = p
	} else {
		l.head = p
	}
	l.tail = p
	return p
}

// unlink takes p off the LRU list.
func (l *limiter) unlink(p *ratePeer) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		l.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		l.tail = p.prev
	}
	p.prev, p.next = nil, nil
}

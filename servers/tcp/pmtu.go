package tcp

import (
	"net/netip"
	"time"
)

// The path MTU cache: what fragmentation needed errors taught the Stack,
// per destination, as Linux keeps a learned MTU in the route's next-hop
// exception (net/ipv4/route.c, __ip_rt_update_pmtu). A connection that
// opens to a destination starts from what the cache holds, so it does
// not lose its first large segments again; the one the error was about
// lowers its MSS at once (pathMTU). Other connections to the destination
// open already keep their MSS until an error about one of their own
// segments (Linux lowers theirs as they next send).
const (
	// PathMTUExpiry is how long a learned path MTU is kept, Linux's
	// ip_rt_mtu_expires: after it the link's MTU is tried again, which
	// is how a path that grew is found (RFC 1191 6.3).
	PathMTUExpiry = 10 * time.Minute
	// MaxPathMTUs bounds the destinations the cache holds; a new one
	// when full replaces the one that expires first. An error is only
	// learned from once it quotes a segment in flight (ICMPError), so
	// the entries an attacker can make are bounded by the connections
	// it can open.
	MaxPathMTUs = 256
)

// pathMTU is one destination's learned path MTU.
type pmtuEntry struct {
	mtu     int
	expires time.Time
}

// learnPathMTU records at now that the path to dst has an MTU of mtu
// (already bounded by MinPathMTU), if that is less than the link's and
// what the cache holds; a learned one lives PathMTUExpiry from now.
func (s *Stack) learnPathMTU(now time.Time, dst netip.Addr, mtu int) {
	if mtu >= s.linkMTU(dst) {
		return
	}
	if e, ok := s.pmtus[dst]; ok && now.Before(e.expires) && e.mtu <= mtu {
		return
	}
	if _, ok := s.pmtus[dst]; !ok && len(s.pmtus) >= MaxPathMTUs {
		var victim netip.Addr
		var first time.Time
		for a, e := range s.pmtus {
			// The soonest to expire; among equals the lowest address, so
			// that the same calls always evict the same.
			if !victim.IsValid() || e.expires.Before(first) || e.expires.Equal(first) && a.Less(victim) {
				victim, first = a, e.expires
			}
		}
		delete(s.pmtus, victim)
	}
	if s.pmtus == nil {
		s.pmtus = map[netip.Addr]pmtuEntry{}
	}
	s.pmtus[dst] = pmtuEntry{mtu: mtu, expires: now.Add(PathMTUExpiry)}
}

// PathMTU returns the path MTU the Stack uses at now for a connection to
// dst: a learned one until it expires, otherwise the link's (the
// loopback's for one of the host's own addresses).
func (s *Stack) PathMTU(now time.Time, dst netip.Addr) int {
	e, ok := s.pmtus[dst]
	if !ok {
		return s.linkMTU(dst)
	}
	if !now.Before(e.expires) {
		delete(s.pmtus, dst)
		return s.linkMTU(dst)
	}
	return e.mtu
}

// PathMTUs returns how many destinations the cache holds (expired ones
// included until they are next looked up or replaced).
func (s *Stack) PathMTUs() int { return len(s.pmtus) }

package tcp

import "net/netip"

// portFree reports whether a socket may take local address a: no other
// socket holds its port with an overlapping address, unless both allow
// reuse and neither listens (SO_REUSEADDR as Linux has it).
func (s *Stack) portFree(c *tcb, a netip.AddrPort) bool {
	for _, o := range s.ports[a.Port()] {
		if o == c {
			continue
		}
		la := o.local.Addr()
		if la != a.Addr() && !la.IsUnspecified() && !a.Addr().IsUnspecified() {
			continue
		}
		if c.reuse && (o.reuse || o.id == 0) && o.state != Listen {
			continue
		}
		return false
	}
	return true
}

func (s *Stack) hold(c *tcb, a netip.AddrPort) {
	c.local = a
	c.bound = true
	s.ports[a.Port()] = append(s.ports[a.Port()], c)
}

func (s *Stack) unhold(c *tcb) {
	if !c.bound {
		return
	}
	p := c.local.Port()
	l := s.ports[p]
	for i, o := range l {
		if o == c {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(s.ports, p)
	} else {
		s.ports[p] = l
	}
	c.bound = false
}

// ephemeral chooses a free port (RFC 6056 algorithm 3: a keyed offset per
// destination, then a counter). With a remote address, a port is free when
// its 4-tuple is unused and nothing listens on it.
func (s *Stack) ephemeral(c *tcb, local netip.Addr, remote netip.AddrPort) (uint16, bool) {
	lo, hi := uint32(s.c.EphemeralLo), uint32(s.c.EphemeralHi)
	n := hi - lo + 1
	off := s.hash(tuple{netip.AddrPortFrom(local, 0), remote}, 3)
	for i := uint32(0); i < n; i++ {
		p := uint16(lo + (off+s.epNext+i)%n)
		var ok bool
		if remote.IsValid() {
			ok = true
			for _, o := range s.ports[p] {
				if o.state == Listen || o.remote == remote || !o.remote.IsValid() {
					ok = false
					break
				}
			}
		} else {
			ok = len(s.ports[p]) == 0
		}
		if ok {
			s.epNext += i + 1
			return p, true
		}
	}
	return 0, false
}

// source picks the local address for a connection to dst.
func (s *Stack) source(dst netip.Addr) netip.Addr {
	if dst.IsLoopback() {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if s.isLocal(dst) {
		return dst
	}
	if len(s.addrs) > 0 {
		return s.addrs[0]
	}
	return netip.Addr{}
}

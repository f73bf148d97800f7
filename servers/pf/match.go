package pf

import "net/netip"

// A packet's direction as a bit, and the bits a rule's direction accepts.
const (
	dirIn    = 1 << 0
	dirOut   = 1 << 1
	dirOther = 1 << 2 // a packet that says neither In nor Out
)

// notIPv4 is set above the 32 address bits of a key's address that is
// not IPv4, and in every mask but that of a /0 prefix: such an address
// then matches only /0.
const notIPv4 = 1 << 32

// key is a packet as the compiled rules compare it.
type key struct {
	src, dst         uint64 // IPv4 address, or notIPv4
	srcPort, dstPort uint16
	proto            uint8
	dir              uint8 // one of the dir bits
}

// keyOf turns p into a key.
func keyOf(p Packet) key {
	k := key{
		src:     addrKey(p.Src),
		dst:     addrKey(p.Dst),
		srcPort: p.SrcPort,
		dstPort: p.DstPort,
		proto:   p.Proto,
		dir:     dirOther,
	}
	switch p.Dir {
	case In:
		k.dir = dirIn
	case Out:
		k.dir = dirOut
	}
	return k
}

// addrKey returns a's IPv4 address as a number, or notIPv4.
func addrKey(a netip.Addr) uint64 {
	a = a.Unmap()
	if !a.Is4() {
		return notIPv4
	}
	b := a.As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// compiled is a rule in the form Check compares quickly: a key matches it
// when key&mask == net for both addresses and the protocol, its direction
// bit is in dirs, and its ports are within the ranges.
type compiled struct {
	srcNet, srcMask uint64
	dstNet, dstMask uint64
	spLo, spHi      uint16
	dpLo, dpHi      uint16
	protoNet        uint8
	protoMask       uint8
	dirs            uint8
	action          Action
	index           int // the rule's index in its Ruleset
}

// compile returns r compiled, with the given index, or false if r can
// match no packet because a field is out of its range.
func compile(r Rule, index int) (compiled, bool) {
	c := compiled{action: r.Action, index: index}
	switch r.Dir {
	case Any:
		c.dirs = dirIn | dirOut | dirOther
	case In:
		c.dirs = dirIn
	case Out:
		c.dirs = dirOut
	default:
		return c, false
	}
	switch {
	case r.Proto == AnyProto:
	case r.Proto >= 0 && r.Proto <= 255:
		c.protoNet, c.protoMask = uint8(r.Proto), 0xff
	default:
		return c, false
	}
	var ok bool
	if c.srcNet, c.srcMask, ok = compilePrefix(r.Src); !ok {
		return c, false
	}
	if c.dstNet, c.dstMask, ok = compilePrefix(r.Dst); !ok {
		return c, false
	}
	if c.spLo, c.spHi, ok = compilePorts(r.SrcPorts); !ok {
		return c, false
	}
	if c.dpLo, c.dpHi, ok = compilePorts(r.DstPorts); !ok {
		return c, false
	}
	return c, true
}

// compilePrefix returns the net and mask that match p's addresses, or
// false if p is not a valid IPv4 prefix. Host bits set in p are ignored,
// as netip.Prefix.Contains ignores them.
func compilePrefix(p netip.Prefix) (net, mask uint64, ok bool) {
	if !p.IsValid() || !p.Addr().Is4() {
		return 0, 0, false
	}
	bits := p.Bits()
	if bits == 0 {
		return 0, 0, true
	}
	mask = uint64(0xffffffff<<(32-bits)&0xffffffff) | notIPv4
	return addrKey(p.Addr()) & mask, mask, true
}

// compilePorts returns the bounds of r, or false if it contains no port.
func compilePorts(r PortRange) (lo, hi uint16, ok bool) {
	if r.IsAny() {
		return 0, 0xffff, true
	}
	return r.Lo, r.Hi, r.Lo <= r.Hi
}

// matches reports whether k matches c.
func (c *compiled) matches(k key) bool {
	return c.dirs&k.dir != 0 &&
		k.proto&c.protoMask == c.protoNet &&
		k.src&c.srcMask == c.srcNet &&
		k.dst&c.dstMask == c.dstNet &&
		k.srcPort >= c.spLo && k.srcPort <= c.spHi &&
		k.dstPort >= c.dpLo && k.dstPort <= c.dpHi
}

// compileAll compiles the rules of rs that can match a packet.
func compileAll(rs *Ruleset) []compiled {
	cs := make([]compiled, 0, len(rs.Rules))
	for i, r := range rs.Rules {
		if c, ok := compile(r, i); ok {
			cs = append(cs, c)
		}
	}
	return cs
}

// first returns the first of cs that k matches, or nil.
func first(cs []compiled, k key) *compiled {
	for i := range cs {
		if cs[i].matches(k) {
			return &cs[i]
		}
	}
	return nil
}

package pf

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// refMatches is the plain reading of the rules that the compiled form
// must agree with, written with netip as the documentation states it.
func refMatches(r Rule, p Packet) bool {
	switch r.Dir {
	case Any:
	case In, Out:
		if r.Dir != p.Dir {
			return false
		}
	default:
		return false
	}
	switch {
	case r.Proto == AnyProto:
	case r.Proto < 0 || r.Proto > 255:
		return false
	case r.Proto != int(p.Proto):
		return false
	}
	addrOK := func(pfx netip.Prefix, a netip.Addr) bool {
		if !pfx.IsValid() || !pfx.Addr().Is4() {
			return false
		}
		return pfx.Bits() == 0 || pfx.Contains(a.Unmap())
	}
	portsOK := func(r PortRange, port uint16) bool {
		if r.IsAny() {
			return true
		}
		return r.Lo <= port && port <= r.Hi
	}
	return addrOK(r.Src, p.Src) && addrOK(r.Dst, p.Dst) &&
		portsOK(r.SrcPorts, p.SrcPort) && portsOK(r.DstPorts, p.DstPort)
}

// TestCompiledAgrees checks the compiled rules against refMatches on
// random rules and packets drawn from small sets, so that they meet.
func TestCompiledAgrees(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	addrs := []netip.Addr{
		netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.0.0.1"),
		netip.MustParseAddr("10.0.1.255"), netip.MustParseAddr("10.128.0.1"),
		netip.MustParseAddr("11.0.0.0"), netip.MustParseAddr("0.0.0.0"),
		netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("128.0.0.0"),
		netip.MustParseAddr("::ffff:10.0.0.1"), netip.MustParseAddr("2001:db8::1"),
		{},
	}
	prefixes := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), {}, netip.MustParsePrefix("::/0")}
	for _, a := range addrs[:8] {
		for _, bits := range []int{0, 1, 8, 9, 16, 23, 24, 31, 32} {
			prefixes = append(prefixes, netip.PrefixFrom(a, bits))
		}
	}
	ports := []uint16{0, 1, 2, 53, 80, 1023, 1024, 65534, 65535}
	portRange := func() PortRange {
		if rnd.IntN(3) == 0 {
			return PortRange{}
		}
		return PortRange{Lo: ports[rnd.IntN(len(ports))], Hi: ports[rnd.IntN(len(ports))]}
	}
	protos := []int{AnyProto, AnyProto, 0, 1, 6, 17, 255, 256, -2}
	pick := func(n int) int { return rnd.IntN(n) }

	var rs Ruleset
	for range 2000 {
		rs.Rules = append(rs.Rules, Rule{
			Action:   Action(pick(2)),
			Dir:      Direction(pick(4)),
			Proto:    protos[pick(len(protos))],
			Src:      prefixes[pick(len(prefixes))],
			Dst:      prefixes[pick(len(prefixes))],
			SrcPorts: portRange(),
			DstPorts: portRange(),
		})
	}
	cs := compileAll(&rs)
	matched := 0
	for range 20000 {
		p := Packet{
			Dir:     Direction(pick(4)),
			Proto:   uint8(protos[2+pick(4)]),
			Src:     addrs[pick(len(addrs))],
			Dst:     addrs[pick(len(addrs))],
			SrcPort: ports[pick(len(ports))],
			DstPort: ports[pick(len(ports))],
		}
		k := keyOf(p)
		// Rule by rule, on a window of the rules, so that later rules
		// are tested too.
		start := pick(len(rs.Rules) - 100)
		for i, r := range rs.Rules[start : start+100] {
			c, ok := compile(r, start+i)
			got := ok && c.matches(k)
			if want := refMatches(r, p); got != want {
				t.Fatalf("rule %+v, packet %+v: compiled says %v, reference %v", r, p, got, want)
			}
			if got {
				matched++
			}
		}
		// And the first match over all of them.
		want := -1
		for i, r := range rs.Rules {
			if refMatches(r, p) {
				want = i
				break
			}
		}
		got := -1
		if c := first(cs, k); c != nil {
			got = c.index
		}
		if got != want {
			t.Fatalf("packet %+v: first match %d, reference %d", p, got, want)
		}
	}
	if matched < 1000 {
		t.Errorf("only %d matches: the sets do not meet enough to test much", matched)
	}
}

// Package pf is the logic of the packet filter that sits between ip and the
// driver in a multiserver network stack, as NewtOS's pf server does: an
// ordered list of rules, the first that matches a packet decides, and a
// packet no rule matches is allowed.
//
// The package is pure. It does no I/O, starts no goroutines and reads no
// clock: the pf server passes it the rules file to Parse or Reload and the
// packets it sees, and forwards or drops each packet as Check says. The
// same rules and packets always give the same verdicts.
//
// A Ruleset is plain data: Parse reads one from the rules file (see
// docs/PF.md for the format), Match judges one packet against it, and
// String writes it back in canonical form. A Filter holds the ruleset in
// force with a hit counter per rule, swaps in a new one on Reload (a bad
// file is refused and the rules in force stay), and counts everything in
// atomic counters so that a metrics collector may read them while the
// server loop works.
//
// Decode takes the addresses, protocol and ports from an IPv4 packet
// without trusting any of it. Only IPv4 is filtered.
package pf

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/newtsim/newtsim/servers/proto"
)

// Limits of Parse.
const (
	MaxRules   = 10000 // rules in one file
	MaxLineLen = 4096  // bytes in one line, without its line ending
)

// AnyProto in a Rule's Proto matches every protocol.
const AnyProto = -1

// Action is what a rule does with a packet it matches.
type Action uint8

// Actions.
const (
	Allow Action = iota // forward the packet
	Drop                // drop it
)

// String returns the action's keyword in the rules file.
func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Drop:
		return "drop"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Direction is the way a packet travels. A packet goes In or Out; a rule
// may also say Any, and then matches both.
type Direction uint8

// Directions.
const (
	Any Direction = iota // rules only: in or out
	In                   // into the host: from the driver towards ip
	Out                  // out of the host: from ip towards the driver
)

// String returns the direction's keyword in the rules file.
func (d Direction) String() string {
	switch d {
	case Any:
		return "any"
	case In:
		return "in"
	case Out:
		return "out"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// Packet is what the rules look at in a packet. Decode fills it from the
// packet's bytes.
type Packet struct {
	// Dir is In or Out. A packet with another Dir matches only rules
	// for any direction.
	Dir Direction
	// Proto is the IP protocol number.
	Proto uint8
	// Src and Dst are IPv4 addresses (an IPv4-mapped IPv6 address is
	// taken as its IPv4 address). An address that is neither, the zero
	// Addr included, matches only rules that say any for it.
	Src, Dst netip.Addr
	// SrcPort and DstPort are the TCP or UDP ports, 0 for other
	// protocols and for fragments other than the first.
	SrcPort, DstPort uint16
}

// PortRange is a range of ports, Lo to Hi inclusive. The zero PortRange
// means any port (0 included); a range with Lo above Hi matches none.
type PortRange struct {
	Lo, Hi uint16
}

// IsAny reports whether r is the zero PortRange, which matches any port.
func (r PortRange) IsAny() bool { return r == PortRange{} }

// Contains reports whether port p is in r.
func (r PortRange) Contains(p uint16) bool {
	return r.IsAny() || (r.Lo <= p && p <= r.Hi)
}

// String returns r as the rules file writes it: "N" or "N-M", and "any"
// for the zero PortRange.
func (r PortRange) String() string {
	switch {
	case r.IsAny():
		return "any"
	case r.Lo == r.Hi:
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// anyPrefix is the prefix a rule without from or to has.
var anyPrefix = netip.PrefixFrom(netip.IPv4Unspecified(), 0)

// Rule is one line of a rules file. A packet matches a rule when it
// matches every one of its fields.
//
// Parse only makes rules whose fields are valid. A Rule built by hand
// with a field Parse would refuse (a Proto out of 0-255 other than
// AnyProto, a prefix that is not a valid IPv4 prefix, a PortRange with Lo
// above Hi) matches no packet, and its String may not parse.
type Rule struct {
	Action Action
	// Dir is In, Out or Any.
	Dir Direction
	// Proto is an IP protocol number 0-255, or AnyProto.
	Proto int
	// Src and Dst are IPv4 prefixes; 0.0.0.0/0 matches any address.
	Src, Dst netip.Prefix
	// SrcPorts and DstPorts are the TCP or UDP ports; the zero
	// PortRange matches any port.
	SrcPorts, DstPorts PortRange
	// Line is the rule's line in its file, from 1; 0 for a rule not
	// read from a file.
	Line int
	// Text is the rule as its file wrote it, without its comment and
	// with runs of blanks made one space.
	Text string
}

// String returns r in canonical form: keywords that change nothing
// omitted, protocols by name where they have one, any for a /0 prefix
// and a bare address for a /32. Parse reads it back to the same rule.
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString(r.Action.String())
	b.WriteByte(' ')
	b.WriteString(r.Dir.String())
	if r.Proto != AnyProto {
		b.WriteString(" proto ")
		b.WriteString(protoString(r.Proto))
	}
	if !isAny(r.Src) || !r.SrcPorts.IsAny() {
		b.WriteString(" from ")
		b.WriteString(prefixString(r.Src))
		if !r.SrcPorts.IsAny() {
			b.WriteString(" port ")
			b.WriteString(r.SrcPorts.String())
		}
	}
	if !isAny(r.Dst) || !r.DstPorts.IsAny() {
		b.WriteString(" to ")
		b.WriteString(prefixString(r.Dst))
		if !r.DstPorts.IsAny() {
			b.WriteString(" port ")
			b.WriteString(r.DstPorts.String())
		}
	}
	return b.String()
}

// Equal reports whether r and o match the same packets the same way: all
// their fields but Line and Text are equal.
func (r Rule) Equal(o Rule) bool {
	r.Line, r.Text, o.Line, o.Text = 0, "", 0, ""
	return r == o
}

// Matches reports whether p matches r.
func (r Rule) Matches(p Packet) bool {
	c, ok := compile(r, 0)
	return ok && c.matches(keyOf(p))
}

// isAny reports whether p is 0.0.0.0/0.
func isAny(p netip.Prefix) bool { return p == anyPrefix }

// prefixString writes p as the rules file does.
func prefixString(p netip.Prefix) string {
	switch {
	case isAny(p):
		return "any"
	case p.IsValid() && p.Addr().Is4() && p.Bits() == 32:
		return p.Addr().String()
	}
	return p.String()
}

// protoString writes an IP protocol number as the rules file does.
func protoString(p int) string {
	switch p {
	case AnyProto:
		return "any"
	case proto.ICMP:
		return "icmp"
	case proto.TCP:
		return "tcp"
	case proto.UDP:
		return "udp"
	}
	return strconv.Itoa(p)
}

// Ruleset is an ordered list of rules: the first rule a packet matches
// decides what happens to it, and a packet no rule matches is allowed.
type Ruleset struct {
	Rules []Rule
	// Source names where the rules came from: the name given to Parse.
	Source string
}

// Match returns the action of the first rule p matches and that rule's
// index in rs.Rules, or Allow and -1 when no rule matches (default
// allow). A nil Ruleset has no rules.
func (rs *Ruleset) Match(p Packet) (Action, int) {
	if rs == nil {
		return Allow, -1
	}
	k := keyOf(p)
	for i, r := range rs.Rules {
		if c, ok := compile(r, i); ok && c.matches(k) {
			return r.Action, i
		}
	}
	return Allow, -1
}

// String returns the rules in canonical form, one a line, each ending
// with a newline; an empty ruleset is the empty string. Parse reads it
// back to rules Equal to these, in the same order.
func (rs *Ruleset) String() string {
	if rs == nil {
		return ""
	}
	var b strings.Builder
	for _, r := range rs.Rules {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Clone returns a copy of rs that shares nothing with it that can change.
func (rs *Ruleset) Clone() *Ruleset {
	if rs == nil {
		return &Ruleset{}
	}
	return &Ruleset{Rules: append([]Rule(nil), rs.Rules...), Source: rs.Source}
}

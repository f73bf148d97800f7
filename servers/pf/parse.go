package pf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/newtsim/newtsim/servers/proto"
)

// ParseError is the error Parse returns for a rules file it refuses. Its
// text is "name:LINE: reason", as compilers write theirs.
type ParseError struct {
	Name   string // the name given to Parse
	Line   int    // the line, from 1
	Reason string // what is wrong, and what was expected
	Err    error  // the reader's error, for a file that could not be read
}

// Error returns "name:LINE: reason".
func (e *ParseError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s:%d: %s: %v", e.Name, e.Line, e.Reason, e.Err)
	}
	return fmt.Sprintf("%s:%d: %s", e.Name, e.Line, e.Reason)
}

// Unwrap returns the reader's error, if that is what went wrong.
func (e *ParseError) Unwrap() error { return e.Err }

// maxQuoted bounds how much of a bad word an error message quotes.
const maxQuoted = 40

// Parse reads a rules file (see docs/PF.md) from r. name is the file's
// name, for error messages and the Ruleset's Source. A file with no rules
// is valid: it allows everything.
//
// The first thing wrong in the file is returned as a *ParseError, and no
// Ruleset: a line that does not parse, a line over MaxLineLen bytes, more
// than MaxRules rules, or a read error.
func Parse(r io.Reader, name string) (*Ruleset, error) {
	if r == nil {
		return nil, &ParseError{Name: name, Reason: "no reader"}
	}
	rs := &Ruleset{Source: name}
	// Room for a full line and its CR LF, so that a line is too long
	// exactly when the buffer fills before its end.
	br := bufio.NewReaderSize(r, MaxLineLen+2)
	for line := 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, &ParseError{Name: name, Line: line,
				Reason: fmt.Sprintf("line too long: more than %d bytes", MaxLineLen)}
		}
		if err != nil && err != io.EOF {
			return nil, &ParseError{Name: name, Line: line, Reason: "reading", Err: err}
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) > MaxLineLen {
			return nil, &ParseError{Name: name, Line: line,
				Reason: fmt.Sprintf("line too long: more than %d bytes", MaxLineLen)}
		}
		if i := bytes.IndexByte(b, '#'); i >= 0 {
			b = b[:i]
		}
		if words := strings.Fields(string(b)); len(words) > 0 {
			if len(rs.Rules) == MaxRules {
				return nil, &ParseError{Name: name, Line: line,
					Reason: fmt.Sprintf("too many rules: at most %d", MaxRules)}
			}
			rule, reason := parseRule(words)
			if reason != "" {
				return nil, &ParseError{Name: name, Line: line, Reason: reason}
			}
			rule.Line = line
			rule.Text = strings.Join(words, " ")
			rs.Rules = append(rs.Rules, rule)
		}
		if err == io.EOF {
			return rs, nil
		}
	}
}

// ParseString parses rules from a string; see Parse.
func ParseString(s, name string) (*Ruleset, error) {
	return Parse(strings.NewReader(s), name)
}

// ruleParser walks the words of one rule.
type ruleParser struct {
	words []string
	i     int
}

// next returns the next word, or "" at the end of the line.
func (p *ruleParser) next() string {
	if p.i == len(p.words) {
		return ""
	}
	p.i++
	return p.words[p.i-1]
}

// peek returns the next word without taking it, or "" at the end.
func (p *ruleParser) peek() string {
	if p.i == len(p.words) {
		return ""
	}
	return p.words[p.i]
}

// found describes a word for an error message.
func found(w string) string {
	if w == "" {
		return "end of line"
	}
	if len(w) > maxQuoted {
		return strconv.Quote(w[:maxQuoted]) + "..."
	}
	return strconv.Quote(w)
}

// parseRule parses the words of one rule. It returns the reason the rule
// is refused, or "".
func parseRule(words []string) (Rule, string) {
	r := Rule{Proto: AnyProto, Src: anyPrefix, Dst: anyPrefix}
	p := ruleParser{words: words}

	switch w := p.next(); w {
	case "allow":
		r.Action = Allow
	case "drop":
		r.Action = Drop
	default:
		return r, fmt.Sprintf(`expected action "allow" or "drop", found %s`, found(w))
	}

	switch w := p.next(); w {
	case "in":
		r.Dir = In
	case "out":
		r.Dir = Out
	case "any":
		r.Dir = Any
	default:
		return r, fmt.Sprintf(`expected direction "in", "out" or "any" after %q, found %s`, r.Action, found(w))
	}

	if p.peek() == "proto" {
		p.next()
		w := p.next()
		proto, ok := parseProto(w)
		if !ok {
			return r, fmt.Sprintf(`expected a protocol after "proto" (tcp, udp, icmp, any or a number 0-255), found %s`, found(w))
		}
		r.Proto = proto
	}

	for _, clause := range []struct {
		keyword string
		addr    *netip.Prefix
		ports   *PortRange
	}{
		{"from", &r.Src, &r.SrcPorts},
		{"to", &r.Dst, &r.DstPorts},
	} {
		if p.peek() != clause.keyword {
			continue
		}
		p.next()
		w := p.next()
		prefix, remark, ok := parseAddr(w)
		if !ok {
			return r, fmt.Sprintf(`expected an address after %q (any, a.b.c.d or a.b.c.d/n), found %s%s`,
				clause.keyword, found(w), remark)
		}
		*clause.addr = prefix
		if p.peek() != "port" {
			continue
		}
		p.next()
		if r.Proto != proto.TCP && r.Proto != proto.UDP {
			return r, fmt.Sprintf(`"port" after %q needs proto tcp or udp, and the rule has proto %s`,
				clause.keyword, protoString(r.Proto))
		}
		w = p.next()
		ports, remark, ok := parsePorts(w)
		if !ok {
			return r, fmt.Sprintf(`expected ports after "port" (N or N-M, from 1 to 65535), found %s%s`,
				found(w), remark)
		}
		*clause.ports = ports
	}

	if w := p.next(); w != "" {
		return r, fmt.Sprintf("expected %s, found %s", expectedAfter(p.words[:p.i-1]), found(w))
	}
	return r, ""
}

// expectedAfter lists what a rule may go on with after the given words,
// which parsed.
func expectedAfter(words []string) string {
	last := ""
	for _, w := range words {
		switch w {
		case "proto", "from", "to", "port":
			last = w
		}
	}
	switch last {
	case "":
		return `"proto", "from", "to" or end of line`
	case "proto":
		return `"from", "to" or end of line`
	case "from":
		return `"port", "to" or end of line`
	case "to":
		return `"port" or end of line`
	}
	// "port": after from's ports, to may come; after to's, nothing.
	for _, w := range words {
		if w == "to" {
			return "end of line"
		}
	}
	return `"to" or end of line`
}

// parseProto parses a protocol: a name or a number 0-255.
func parseProto(w string) (int, bool) {
	switch w {
	case "any":
		return AnyProto, true
	case "icmp":
		return proto.ICMP, true
	case "tcp":
		return proto.TCP, true
	case "udp":
		return proto.UDP, true
	}
	n, err := strconv.ParseUint(w, 10, 8)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// parseAddr parses any, an IPv4 address or an IPv4 prefix. When w is
// none of these it returns false, and a remark saying why if there is
// more to say than that.
func parseAddr(w string) (netip.Prefix, string, bool) {
	switch {
	case w == "":
		return netip.Prefix{}, "", false
	case w == "any":
		return anyPrefix, "", true
	case strings.Contains(w, "/"):
		p, err := netip.ParsePrefix(w)
		if err != nil || !p.Addr().Is4() {
			return netip.Prefix{}, ": not an IPv4 prefix", false
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Sprintf(": host bits are set (the network is %s)", m), false
		}
		return p, "", true
	}
	a, err := netip.ParseAddr(w)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, ": not an IPv4 address", false
	}
	return netip.PrefixFrom(a, 32), "", true
}

// parsePorts parses N or N-M. When w is neither it returns false, and a
// remark saying why.
func parsePorts(w string) (PortRange, string, bool) {
	if w == "" {
		return PortRange{}, "", false
	}
	lo, hi, isRange := strings.Cut(w, "-")
	if !isRange {
		hi = lo
	}
	l, ok1 := parsePort(lo)
	h, ok2 := parsePort(hi)
	switch {
	case !ok1 || !ok2:
		return PortRange{}, ": ports are numbers from 1 to 65535", false
	case l > h:
		return PortRange{}, fmt.Sprintf(": the range starts above its end (%d > %d)", l, h), false
	}
	return PortRange{Lo: l, Hi: h}, "", true
}

// parsePort parses a port number 1-65535.
func parsePort(w string) (uint16, bool) {
	n, err := strconv.ParseUint(w, 10, 16)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint16(n), true
}

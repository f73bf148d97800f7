package pf_test

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/newtsim/newtsim/servers/pf"
	"github.com/newtsim/newtsim/servers/proto"
)

// prefix parses a prefix, or a bare address as a /32.
func prefix(s string) netip.Prefix {
	if s == "any" {
		return netip.MustParsePrefix("0.0.0.0/0")
	}
	if !strings.Contains(s, "/") {
		s += "/32"
	}
	return netip.MustParsePrefix(s)
}

// rule makes a Rule with any for every field the options leave out.
func rule(a pf.Action, d pf.Direction, opts ...func(*pf.Rule)) pf.Rule {
	r := pf.Rule{Action: a, Dir: d, Proto: pf.AnyProto, Src: prefix("any"), Dst: prefix("any")}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func protocol(p int) func(*pf.Rule) { return func(r *pf.Rule) { r.Proto = p } }
func from(s string) func(*pf.Rule)  { return func(r *pf.Rule) { r.Src = prefix(s) } }
func to(s string) func(*pf.Rule)    { return func(r *pf.Rule) { r.Dst = prefix(s) } }
func sport(lo, hi uint16) func(*pf.Rule) {
	return func(r *pf.Rule) { r.SrcPorts = pf.PortRange{Lo: lo, Hi: hi} }
}
func dport(lo, hi uint16) func(*pf.Rule) {
	return func(r *pf.Rule) { r.DstPorts = pf.PortRange{Lo: lo, Hi: hi} }
}
func at(line int, text string) func(*pf.Rule) {
	return func(r *pf.Rule) { r.Line, r.Text = line, text }
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []pf.Rule
	}{
		{name: "empty file", text: "", want: nil},
		{name: "blank and comments only", text: "\n  \t\n# nothing\n   # indented\n", want: nil},
		{
			name: "the examples",
			text: `# action direction [proto P] [from SRC [port PORTS]] [to DST [port PORTS]]
drop in proto tcp from any to 198.18.0.2/32 port 23
allow out proto udp to any port 53
drop any proto icmp from 198.18.1.0/24
allow in
`,
			want: []pf.Rule{
				rule(pf.Drop, pf.In, protocol(6), to("198.18.0.2"), dport(23, 23),
					at(2, "drop in proto tcp from any to 198.18.0.2/32 port 23")),
				rule(pf.Allow, pf.Out, protocol(17), dport(53, 53),
					at(3, "allow out proto udp to any port 53")),
				rule(pf.Drop, pf.Any, protocol(1), from("198.18.1.0/24"),
					at(4, "drop any proto icmp from 198.18.1.0/24")),
				rule(pf.Allow, pf.In, at(5, "allow in")),
			},
		},
		{
			name: "every field",
			text: "allow out proto tcp from 10.0.0.0/8 port 1024-65535 to 192.0.2.7 port 80",
			want: []pf.Rule{rule(pf.Allow, pf.Out, protocol(6), from("10.0.0.0/8"), sport(1024, 65535),
				to("192.0.2.7"), dport(80, 80),
				at(1, "allow out proto tcp from 10.0.0.0/8 port 1024-65535 to 192.0.2.7 port 80"))},
		},
		{
			name: "port edges",
			text: "drop in proto udp from any port 1 to any port 65535\ndrop in proto udp to any port 1-65535",
			want: []pf.Rule{
				rule(pf.Drop, pf.In, protocol(17), sport(1, 1), dport(65535, 65535),
					at(1, "drop in proto udp from any port 1 to any port 65535")),
				rule(pf.Drop, pf.In, protocol(17), dport(1, 65535), at(2, "drop in proto udp to any port 1-65535")),
			},
		},
		{
			name: "protocol numbers",
			text: "drop in proto 0\ndrop in proto 255\ndrop in proto 6 to any port 22\nallow in proto any\ndrop in proto 017",
			want: []pf.Rule{
				rule(pf.Drop, pf.In, protocol(0), at(1, "drop in proto 0")),
				rule(pf.Drop, pf.In, protocol(255), at(2, "drop in proto 255")),
				rule(pf.Drop, pf.In, protocol(6), dport(22, 22), at(3, "drop in proto 6 to any port 22")),
				rule(pf.Allow, pf.In, at(4, "allow in proto any")),
				rule(pf.Drop, pf.In, protocol(17), at(5, "drop in proto 017")),
			},
		},
		{
			name: "addresses",
			text: "drop in from 0.0.0.0/0 to 0.0.0.0/32\ndrop out to 255.255.255.255\ndrop out to 128.0.0.0/1",
			want: []pf.Rule{
				rule(pf.Drop, pf.In, to("0.0.0.0/32"), at(1, "drop in from 0.0.0.0/0 to 0.0.0.0/32")),
				rule(pf.Drop, pf.Out, to("255.255.255.255"), at(2, "drop out to 255.255.255.255")),
				rule(pf.Drop, pf.Out, to("128.0.0.0/1"), at(3, "drop out to 128.0.0.0/1")),
			},
		},
		{
			name: "blanks, tabs, CRLF, trailing comments, no final newline",
			text: "  allow\t in   proto udp # DNS and such\r\n\r\n#\r\ndrop    any#everything else",
			want: []pf.Rule{
				rule(pf.Allow, pf.In, protocol(17), at(1, "allow in proto udp")),
				rule(pf.Drop, pf.Any, at(4, "drop any")),
			},
		},
		{
			name: "a line of exactly the longest length",
			text: "# first\nallow in" + strings.Repeat(" ", pf.MaxLineLen-len("allow in")-2) + "#x\r\n",
			want: []pf.Rule{rule(pf.Allow, pf.In, at(2, "allow in"))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := pf.Parse(strings.NewReader(tt.text), "test.rules")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if rs.Source != "test.rules" {
				t.Errorf("Source = %q, want test.rules", rs.Source)
			}
			if len(rs.Rules) != len(tt.want) {
				t.Fatalf("Parse gave %d rules, want %d:\n%s", len(rs.Rules), len(tt.want), rs)
			}
			for i, got := range rs.Rules {
				if got != tt.want[i] {
					t.Errorf("rule %d:\n got %+v\nwant %+v", i, got, tt.want[i])
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const addr = `expected an address after "from" (any, a.b.c.d or a.b.c.d/n), found `
	const ports = `expected ports after "port" (N or N-M, from 1 to 65535), found `
	const protos = `expected a protocol after "proto" (tcp, udp, icmp, any or a number 0-255), found `
	tests := []struct {
		name string
		text string
		line int
		want string // the reason
	}{
		{"bad action", "permit in", 1, `expected action "allow" or "drop", found "permit"`},
		{"upper case", "ALLOW in", 1, `expected action "allow" or "drop", found "ALLOW"`},
		{"no direction", "allow", 1, `expected direction "in", "out" or "any" after "allow", found end of line`},
		{"bad direction", "drop inbound", 1, `expected direction "in", "out" or "any" after "drop", found "inbound"`},
		{"no protocol", "allow in proto", 1, protos + "end of line"},
		{"bad protocol", "allow in proto gre", 1, protos + `"gre"`},
		{"protocol 256", "allow in proto 256", 1, protos + `"256"`},
		{"protocol -1", "allow in proto -1", 1, protos + `"-1"`},
		{"protocol +6", "allow in proto +6", 1, protos + `"+6"`},
		{"no address", "allow in from", 1, addr + "end of line"},
		{"short address", "allow in from 1.2.3", 1, addr + `"1.2.3": not an IPv4 address`},
		{"leading zero", "allow in from 01.2.3.4", 1, addr + `"01.2.3.4": not an IPv4 address`},
		{"IPv6 address", "allow in from ::1", 1, addr + `"::1": not an IPv4 address`},
		{"IPv4-mapped address", "allow in from ::ffff:1.2.3.4", 1, addr + `"::ffff:1.2.3.4": not an IPv4 address`},
		{"IPv6 prefix", "allow in from ::/0", 1, addr + `"::/0": not an IPv4 prefix`},
		{"prefix too long", "allow in from 10.0.0.0/33", 1, addr + `"10.0.0.0/33": not an IPv4 prefix`},
		{"prefix without bits", "allow in from 10.0.0.0/", 1, addr + `"10.0.0.0/": not an IPv4 prefix`},
		{"host bits", "allow in from 10.0.0.1/8", 1, addr + `"10.0.0.1/8": host bits are set (the network is 10.0.0.0/8)`},
		{"long word quoted short", "allow in from " + strings.Repeat("x", 100), 1,
			addr + `"` + strings.Repeat("x", 40) + `"...: not an IPv4 address`},
		{"to without address", "allow in to", 1,
			`expected an address after "to" (any, a.b.c.d or a.b.c.d/n), found end of line`},
		{"port with any protocol", "allow in from any port 80", 1,
			`"port" after "from" needs proto tcp or udp, and the rule has proto any`},
		{"port with icmp", "allow in proto icmp to any port 80", 1,
			`"port" after "to" needs proto tcp or udp, and the rule has proto icmp`},
		{"port with a number", "allow in proto 132 to any port 80", 1,
			`"port" after "to" needs proto tcp or udp, and the rule has proto 132`},
		{"no port", "allow in proto tcp to any port", 1, ports + "end of line"},
		{"port 0", "allow in proto tcp to any port 0", 1, ports + `"0": ports are numbers from 1 to 65535`},
		{"port 65536", "allow in proto tcp to any port 65536", 1, ports + `"65536": ports are numbers from 1 to 65535`},
		{"range from 0", "allow in proto tcp to any port 0-10", 1, ports + `"0-10": ports are numbers from 1 to 65535`},
		{"reversed range", "allow in proto tcp to any port 90-80", 1,
			ports + `"90-80": the range starts above its end (90 > 80)`},
		{"open range", "allow in proto tcp to any port 80-", 1, ports + `"80-": ports are numbers from 1 to 65535`},
		{"negative port", "allow in proto tcp to any port -80", 1, ports + `"-80": ports are numbers from 1 to 65535`},
		{"hex port", "allow in proto udp to any port 0x50", 1, ports + `"0x50": ports are numbers from 1 to 65535`},
		{"three-part range", "allow in proto udp to any port 1-2-3", 1, ports + `"1-2-3": ports are numbers from 1 to 65535`},
		{"port by name", "allow in proto udp to any port domain", 1, ports + `"domain": ports are numbers from 1 to 65535`},
		{"extra word", "allow in extra", 1, `expected "proto", "from", "to" or end of line, found "extra"`},
		{"port before from", "allow in proto tcp port 80", 1, `expected "from", "to" or end of line, found "port"`},
		{"proto after from", "allow in from any proto tcp", 1, `expected "port", "to" or end of line, found "proto"`},
		{"from after to", "allow in to any from any", 1, `expected "port" or end of line, found "from"`},
		{"from twice", "allow in from any from any", 1, `expected "port", "to" or end of line, found "from"`},
		{"two ports", "allow in proto tcp from any port 1 port 2", 1, `expected "to" or end of line, found "port"`},
		{"junk after to's port", "allow in proto tcp to any port 80 80", 1, `expected end of line, found "80"`},
		{"junk after everything", "allow in proto tcp from any port 1 to 1.2.3.4 port 5 x", 1,
			`expected end of line, found "x"`},
		{"line counted past comments, blanks and good rules", "# head\n\nallow in\r\n  # x\ndrop out\ndrop sideways\nallow in",
			6, `expected direction "in", "out" or "any" after "drop", found "sideways"`},
		{"first error wins", "allow in\nbad\nworse", 2, `expected action "allow" or "drop", found "bad"`},
		{"line too long", "allow in\n#\nallow in" + strings.Repeat(" ", pf.MaxLineLen-len("allow in")+1) + "\nallow out", 3,
			"line too long: more than 4096 bytes"},
		{"last line too long", "allow in\n" + strings.Repeat("#", pf.MaxLineLen+1), 2,
			"line too long: more than 4096 bytes"},
		{"very long line", strings.Repeat("x", 1<<20), 1, "line too long: more than 4096 bytes"},
		{"too many rules", "# many\n" + strings.Repeat("drop in proto tcp\n", pf.MaxRules) + "\nallow in\n", pf.MaxRules + 3,
			"too many rules: at most 10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := pf.Parse(strings.NewReader(tt.text), "bad.rules")
			if err == nil {
				t.Fatalf("Parse accepted it:\n%s", rs)
			}
			if rs != nil {
				t.Errorf("Parse returned a Ruleset with its error")
			}
			want := fmt.Sprintf("bad.rules:%d: %s", tt.line, tt.want)
			if err.Error() != want {
				t.Errorf("error:\n got %s\nwant %s", err, want)
			}
			var pe *pf.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *pf.ParseError", err)
			}
			if pe.Name != "bad.rules" || pe.Line != tt.line || pe.Reason != tt.want {
				t.Errorf("ParseError = %+v", pe)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	many := strings.Repeat("# a comment\n\ndrop in proto udp to any port 9\n", pf.MaxRules)
	rs, err := pf.Parse(strings.NewReader(many), "many.rules")
	if err != nil {
		t.Fatalf("Parse of %d rules: %v", pf.MaxRules, err)
	}
	if len(rs.Rules) != pf.MaxRules {
		t.Errorf("got %d rules, want %d", len(rs.Rules), pf.MaxRules)
	}
	if last := rs.Rules[len(rs.Rules)-1]; last.Line != 3*pf.MaxRules {
		t.Errorf("last rule on line %d, want %d", last.Line, 3*pf.MaxRules)
	}
}

func TestParseReader(t *testing.T) {
	t.Run("one byte at a time", func(t *testing.T) {
		text := "allow in proto tcp to any port 22\n# c\ndrop in\n"
		rs, err := pf.Parse(iotest.OneByteReader(strings.NewReader(text)), "slow.rules")
		if err != nil {
			t.Fatal(err)
		}
		if got := rs.String(); got != "allow in proto tcp to any port 22\ndrop in\n" {
			t.Errorf("String() = %q", got)
		}
	})
	t.Run("read error", func(t *testing.T) {
		boom := errors.New("disk on fire")
		r := io.MultiReader(strings.NewReader("allow in\ndrop "), iotest.ErrReader(boom))
		_, err := pf.Parse(r, "err.rules")
		if !errors.Is(err, boom) {
			t.Fatalf("error %v does not wrap the reader's", err)
		}
		if want := "err.rules:2: reading: disk on fire"; err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	})
	t.Run("nil reader", func(t *testing.T) {
		if _, err := pf.Parse(nil, "nil.rules"); err == nil {
			t.Fatal("Parse(nil) succeeded")
		}
	})
}

func TestExampleFile(t *testing.T) {
	f, err := os.Open("testdata/example.rules")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs, err := pf.Parse(f, "testdata/example.rules")
	if err != nil {
		t.Fatal(err)
	}
	const host, peer = "198.18.0.2", "198.18.0.1"
	tests := []struct {
		name string
		p    pf.Packet
		want pf.Action
	}{
		{"telnet in", pkt(pf.In, proto.TCP, peer, 40000, host, 23), pf.Drop},
		{"ssh in", pkt(pf.In, proto.TCP, peer, 40000, host, 22), pf.Allow},
		{"http in", pkt(pf.In, proto.TCP, peer, 40000, host, 80), pf.Allow},
		{"dns out", pkt(pf.Out, proto.UDP, host, 5353, "192.0.2.53", 53), pf.Allow},
		{"other udp out", pkt(pf.Out, proto.UDP, host, 5353, "192.0.2.53", 5353), pf.Drop},
		{"ping from the bad net", pkt(pf.In, proto.ICMP, "198.18.1.9", 0, host, 0), pf.Drop},
		{"ping to the bad net", pkt(pf.Out, proto.ICMP, host, 0, "198.18.1.9", 0), pf.Allow},
		{"ping from the peer", pkt(pf.In, proto.ICMP, peer, 0, host, 0), pf.Allow},
		{"tcp out", pkt(pf.Out, proto.TCP, host, 40000, peer, 80), pf.Allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, i := rs.Match(tt.p); got != tt.want {
				t.Errorf("Match = %v (rule %d), want %v", got, i, tt.want)
			}
		})
	}
	// The file's canonical form parses back to the same rules.
	again := mustParse(t, rs.String())
	if !equalRules(rs, again) {
		t.Errorf("String() did not parse back to the same rules:\n%s", rs)
	}
}

// equalRules reports whether a and b have Equal rules in the same order.
func equalRules(a, b *pf.Ruleset) bool {
	if len(a.Rules) != len(b.Rules) {
		return false
	}
	for i := range a.Rules {
		if !a.Rules[i].Equal(b.Rules[i]) {
			return false
		}
	}
	return true
}

func TestString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"minimal", "allow in", "allow in"},
		{"any dropped", "drop out proto any from any to 0.0.0.0/0", "drop out"},
		{"protocol numbers named", "drop any proto 6", "drop any proto tcp"},
		{"protocol number kept", "drop any proto 47", "drop any proto 47"},
		{"host prefix bare", "drop in from 10.0.0.1/32", "drop in from 10.0.0.1"},
		{"port kept with any address", "allow in proto udp from any port 53", "allow in proto udp from any port 53"},
		{"single-port range", "allow in proto udp to any port 53-53", "allow in proto udp to any port 53"},
		{"full range", "allow in proto tcp to 10.0.0.0/8 port 1-65535", "allow in proto tcp to 10.0.0.0/8 port 1-65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustParse(t, tt.in)
			if got := rs.Rules[0].String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := rs.String(); got != tt.want+"\n" {
				t.Errorf("Ruleset.String() = %q, want %q", got, tt.want+"\n")
			}
			if again := mustParse(t, rs.String()); !equalRules(rs, again) {
				t.Errorf("%q parsed back to %+v", rs.String(), again.Rules)
			}
		})
	}
	if got := (*pf.Ruleset)(nil).String(); got != "" {
		t.Errorf("nil Ruleset String() = %q", got)
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		name string
		got  fmt.Stringer
		want string
	}{
		{"allow", pf.Allow, "allow"},
		{"drop", pf.Drop, "drop"},
		{"unknown action", pf.Action(7), "Action(7)"},
		{"in", pf.In, "in"},
		{"out", pf.Out, "out"},
		{"any", pf.Any, "any"},
		{"unknown direction", pf.Direction(9), "Direction(9)"},
		{"any ports", pf.PortRange{}, "any"},
		{"one port", pf.PortRange{Lo: 80, Hi: 80}, "80"},
		{"ports", pf.PortRange{Lo: 80, Hi: 88}, "80-88"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.got.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

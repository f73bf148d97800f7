package pf_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/servers/pf"
	"github.com/newtsim/newtsim/servers/proto"
)

// FuzzParse feeds Parse arbitrary rules files. Parse must never panic; a
// refused file must come back as a *ParseError naming a line of the
// file; an accepted one must print in canonical form (String) as text
// that parses back to the same rules and prints the same again, and each
// rule's Text must parse to that rule.
func FuzzParse(f *testing.F) {
	f.Add("allow in\n")
	f.Fuzz(func(t *testing.T, text string) {
		rs, err := pf.Parse(strings.NewReader(text), "fuzz.rules")
		if err != nil {
			var pe *pf.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			if lines := strings.Count(text, "\n") + 1; pe.Line < 1 || pe.Line > lines {
				t.Fatalf("error on line %d of a %d-line file: %v", pe.Line, lines, err)
			}
			if prefix := fmt.Sprintf("fuzz.rules:%d: ", pe.Line); !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("error %q does not start with %q", err, prefix)
			}
			if rs != nil {
				t.Fatal("Parse returned a Ruleset with its error")
			}
			return
		}
		if len(rs.Rules) > pf.MaxRules {
			t.Fatalf("%d rules, more than MaxRules", len(rs.Rules))
		}
		line := 0
		for i, r := range rs.Rules {
			if r.Line <= line {
				t.Fatalf("rule %d on line %d, after line %d", i, r.Line, line)
			}
			line = r.Line
			one, err := pf.Parse(strings.NewReader(r.Text), "text")
			if err != nil || len(one.Rules) != 1 || !one.Rules[0].Equal(r) {
				t.Fatalf("rule %d's Text %q does not parse back to it: %v", i, r.Text, err)
			}
		}
		canon := rs.String()
		again, err := pf.Parse(strings.NewReader(canon), "canon.rules")
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, canon)
		}
		if !equalRules(rs, again) {
			t.Fatalf("canonical form parses to other rules:\n%s", canon)
		}
		if s := again.String(); s != canon {
			t.Fatalf("canonical form is not stable:\n%s\nthen\n%s", canon, s)
		}
		// The filter judges as Match does, on packets made to meet the
		// rules' own addresses and ports (those of the first rules only,
		// as this is quadratic).
		flt := pf.NewFilter(rs)
		for _, r := range rs.Rules[:min(len(rs.Rules), 32)] {
			for _, dir := range []pf.Direction{pf.In, pf.Out} {
				p := pf.Packet{
					Dir: dir, Proto: uint8(max(r.Proto, 0)),
					Src: r.Src.Addr(), Dst: r.Dst.Addr(),
					SrcPort: r.SrcPorts.Hi, DstPort: r.DstPorts.Lo,
				}
				want, i := rs.Match(p)
				if got := flt.Check(p); got != want {
					t.Fatalf("Check(%+v) = %v, Match = %v (rule %d)", p, got, want, i)
				}
			}
		}
	})
}

// FuzzDecode feeds Decode arbitrary packets. It must never panic nor
// change the packet; a refused packet's error must wrap ErrMalformed; an
// accepted one must have the addresses and protocol of its header, and
// ports only if it is TCP or UDP. DecodeFrame and CheckIPv4 must agree
// with Decode.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(pf.In), ipv4(proto.UDP, "10.0.0.1", "10.0.0.2", udp(1, 2, nil)))
	f.Fuzz(func(t *testing.T, dir uint8, b []byte) {
		orig := bytes.Clone(b)
		p, err := pf.Decode(pf.Direction(dir), b)
		if !bytes.Equal(b, orig) {
			t.Fatal("Decode changed the packet")
		}
		fp, ferr := pf.DecodeFrame(pf.Direction(dir), ether(0x0800, b))
		if fp != p || (ferr == nil) != (err == nil) {
			t.Fatalf("DecodeFrame = %+v, %v; Decode = %+v, %v", fp, ferr, p, err)
		}
		flt := pf.NewFilter(nil)
		a, cerr := flt.CheckIPv4(pf.Direction(dir), b)
		s := flt.Stats()
		if err != nil {
			if !errors.Is(err, pf.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if p != (pf.Packet{}) {
				t.Fatalf("Decode returned %+v with its error", p)
			}
			if a != pf.Drop || cerr == nil || s.Malformed != 1 || s.Checks != 0 {
				t.Fatalf("CheckIPv4 = %v, %v with stats %+v for a malformed packet", a, cerr, s)
			}
			return
		}
		if a != pf.Allow || cerr != nil || s.Malformed != 0 || s.Checks != 1 {
			t.Fatalf("CheckIPv4 = %v, %v with stats %+v for a good packet", a, cerr, s)
		}
		if p.Dir != pf.Direction(dir) || p.Proto != b[9] {
			t.Fatalf("Packet %+v: wrong direction or protocol", p)
		}
		if p.Src != netip.AddrFrom4([4]byte(b[12:16])) || p.Dst != netip.AddrFrom4([4]byte(b[16:20])) {
			t.Fatalf("Packet %+v: wrong addresses", p)
		}
		if p.Proto != proto.TCP && p.Proto != proto.UDP && (p.SrcPort != 0 || p.DstPort != 0) {
			t.Fatalf("Packet %+v: ports without TCP or UDP", p)
		}
	})
}

package pf_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/servers/pf"
	"github.com/newtsim/newtsim/servers/proto"
)

// hundredRules returns 100 rules of which only the last matches the
// packet of lastMatch, each of the first 99 failing on a different field.
func hundredRules() string {
	var b strings.Builder
	for i := range 99 {
		switch i % 4 {
		case 0: // wrong destination port
			fmt.Fprintf(&b, "drop in proto tcp from any to 198.18.0.2 port %d\n", 1000+i)
		case 1: // wrong source network
			fmt.Fprintf(&b, "drop in proto tcp from 10.%d.0.0/16 to any port 80\n", i)
		case 2: // wrong protocol
			fmt.Fprintf(&b, "drop in proto %d to 198.18.0.2\n", 100+i)
		case 3: // wrong direction
			fmt.Fprintf(&b, "drop out proto tcp to 198.18.0.%d\n", i)
		}
	}
	b.WriteString("allow in proto tcp from 198.18.0.0/24 port 1024-65535 to 198.18.0.2 port 80\n")
	return b.String()
}

var lastMatch = pkt(pf.In, proto.TCP, "198.18.0.1", 40000, "198.18.0.2", 80)

// BenchmarkCheck measures one packet checked against 100 rules, of which
// the last matches: the worst case of a first-match filter short of no
// match at all.
func BenchmarkCheck(b *testing.B) {
	f := pf.NewFilter(mustParse(b, hundredRules()))
	if a := f.Check(lastMatch); a != pf.Allow || f.Hits()[99].Hits != 1 {
		b.Fatal("the last rule does not match")
	}
	b.ReportAllocs()
	for b.Loop() {
		f.Check(lastMatch)
	}
}

// BenchmarkMatch measures the same with Ruleset.Match, which reads the
// rules as they are rather than compiled.
func BenchmarkMatch(b *testing.B) {
	rs := mustParse(b, hundredRules())
	if _, i := rs.Match(lastMatch); i != 99 {
		b.Fatalf("matched rule %d, want 99", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		rs.Match(lastMatch)
	}
}

// BenchmarkCheckFrame measures a frame decoded and checked against the
// 100 rules: what the pf server does per packet.
func BenchmarkCheckFrame(b *testing.B) {
	f := pf.NewFilter(mustParse(b, hundredRules()))
	frame := ether(0x0800, ipv4(proto.TCP, "198.18.0.1", "198.18.0.2", tcp(40000, 80, 0, make([]byte, 1400))))
	b.ReportAllocs()
	for b.Loop() {
		if a, err := f.CheckFrame(pf.In, frame); a != pf.Allow || err != nil {
			b.Fatal(a, err)
		}
	}
}

// BenchmarkDecode measures decoding one TCP packet.
func BenchmarkDecode(b *testing.B) {
	p := ipv4(proto.TCP, "198.18.0.1", "198.18.0.2", tcp(40000, 80, 0, nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pf.Decode(pf.In, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse measures parsing the 100 rules.
func BenchmarkParse(b *testing.B) {
	text := hundredRules()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pf.Parse(strings.NewReader(text), "bench.rules"); err != nil {
			b.Fatal(err)
		}
	}
}

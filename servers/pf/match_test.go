package pf_test

import (
	"net/netip"
	"testing"

	"github.com/newtsim/newtsim/servers/pf"
)

func TestMatch(t *testing.T) {
	const rules = `
drop in proto tcp from any to 198.18.0.2/32 port 23       # 0
allow out proto udp to any port 53                        # 1
drop any proto icmp from 198.18.1.0/24                    # 2
allow in proto tcp to 198.18.0.2 port 23                  # 3: shadowed by 0
drop in proto udp from 10.0.0.0/8 port 1000-2000          # 4
drop out proto tcp from 0.0.0.0/0 to 192.0.2.0/31         # 5
drop in proto 0                                           # 6
drop out proto 255                                        # 7
drop in proto udp to 203.0.113.0/24 port 1-65535          # 8
drop any proto tcp to 128.0.0.0/1 port 1-1                # 9
drop out                                                  # 10
`
	rs := mustParse(t, rules)
	tests := []struct {
		name  string
		p     pf.Packet
		want  pf.Action
		index int
	}{
		{"first match wins", pkt(pf.In, 6, "1.2.3.4", 999, "198.18.0.2", 23), pf.Drop, 0},
		{"rule 0 wrong direction", pkt(pf.Out, 6, "1.2.3.4", 999, "198.18.0.2", 23), pf.Drop, 10},
		{"rule 0 wrong port", pkt(pf.In, 6, "1.2.3.4", 999, "198.18.0.2", 24), pf.Allow, -1},
		{"rule 0 wrong protocol", pkt(pf.In, 17, "1.2.3.4", 999, "198.18.0.2", 23), pf.Allow, -1},
		{"rule 0 other host", pkt(pf.In, 6, "1.2.3.4", 999, "198.18.0.3", 23), pf.Allow, -1},
		{"rule 0 source port is not destination port", pkt(pf.In, 6, "1.2.3.4", 23, "198.18.0.2", 999), pf.Allow, -1},
		{"dns out", pkt(pf.Out, 17, "198.18.0.2", 40000, "8.8.8.8", 53), pf.Allow, 1},
		{"dns in is not out", pkt(pf.In, 17, "8.8.8.8", 53, "198.18.0.2", 53), pf.Allow, -1},
		{"any direction in", pkt(pf.In, 1, "198.18.1.0", 0, "198.18.0.2", 0), pf.Drop, 2},
		{"any direction out", pkt(pf.Out, 1, "198.18.1.255", 0, "198.18.0.2", 0), pf.Drop, 2},
		{"prefix just below", pkt(pf.In, 1, "198.18.0.255", 0, "198.18.0.2", 0), pf.Allow, -1},
		{"prefix just above", pkt(pf.In, 1, "198.18.2.0", 0, "198.18.0.2", 0), pf.Allow, -1},
		{"port range low edge", pkt(pf.In, 17, "10.0.0.1", 1000, "198.18.0.2", 7), pf.Drop, 4},
		{"port range high edge", pkt(pf.In, 17, "10.255.255.255", 2000, "198.18.0.2", 7), pf.Drop, 4},
		{"port range below", pkt(pf.In, 17, "10.0.0.1", 999, "198.18.0.2", 7), pf.Allow, -1},
		{"port range above", pkt(pf.In, 17, "10.0.0.1", 2001, "198.18.0.2", 7), pf.Allow, -1},
		{"/31 first", pkt(pf.Out, 6, "198.18.0.2", 1, "192.0.2.0", 80), pf.Drop, 5},
		{"/31 second", pkt(pf.Out, 6, "198.18.0.2", 1, "192.0.2.1", 80), pf.Drop, 5},
		{"protocol 0", pkt(pf.In, 0, "1.1.1.1", 0, "2.2.2.2", 0), pf.Drop, 6},
		{"protocol 255", pkt(pf.Out, 255, "1.1.1.1", 0, "2.2.2.2", 0), pf.Drop, 7},
		{"1-65535 is not port 0", pkt(pf.In, 17, "1.1.1.1", 0, "203.0.113.9", 0), pf.Allow, -1},
		{"1-65535 top", pkt(pf.In, 17, "1.1.1.1", 0, "203.0.113.9", 65535), pf.Drop, 8},
		{"/1 port 1", pkt(pf.In, 6, "1.1.1.1", 0, "255.255.255.255", 1), pf.Drop, 9},
		{"/1 other half", pkt(pf.In, 6, "1.1.1.1", 0, "127.255.255.255", 1), pf.Allow, -1},
		{"catch-all out", pkt(pf.Out, 47, "1.1.1.1", 0, "2.2.2.2", 0), pf.Drop, 10},
		{"default allow in", pkt(pf.In, 47, "1.1.1.1", 0, "2.2.2.2", 0), pf.Allow, -1},
		{"IPv4-mapped addresses", pkt(pf.In, 1, "::ffff:198.18.1.7", 0, "::ffff:198.18.0.2", 0), pf.Drop, 2},
		{"IPv6 source matches only any", pkt(pf.In, 1, "2001:db8::1", 0, "198.18.0.2", 0), pf.Allow, -1},
		{"IPv6 packet out hits the catch-all", pkt(pf.Out, 1, "2001:db8::1", 0, "2001:db8::2", 0), pf.Drop, 10},
		{"zero addresses", pf.Packet{Dir: pf.Out, Proto: 1}, pf.Drop, 10},
		{"direction any packet", pf.Packet{Dir: pf.Any, Proto: 1, Src: netip.MustParseAddr("198.18.1.1")}, pf.Drop, 2},
		{"bad direction packet", pf.Packet{Dir: 9, Proto: 6, Dst: netip.MustParseAddr("198.18.0.2"), DstPort: 23}, pf.Allow, -1},
	}
	f := pf.NewFilter(rs)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, i := rs.Match(tt.p)
			if got != tt.want || i != tt.index {
				t.Errorf("Match = %v, %d; want %v, %d", got, i, tt.want, tt.index)
			}
			if got := f.Check(tt.p); got != tt.want {
				t.Errorf("Check = %v, want %v", got, tt.want)
			}
			if i >= 0 && !rs.Rules[i].Matches(tt.p) {
				t.Errorf("rule %d does not match what it matched", i)
			}
		})
	}
}

func TestMatchEmpty(t *testing.T) {
	p := pkt(pf.In, 6, "1.1.1.1", 1, "2.2.2.2", 2)
	for _, rs := range []*pf.Ruleset{nil, {}, mustParse(t, "# nothing\n")} {
		if a, i := rs.Match(p); a != pf.Allow || i != -1 {
			t.Errorf("Match on %#v = %v, %d; want allow, -1", rs, a, i)
		}
	}
}

// Rules built by hand with fields Parse refuses match nothing.
func TestMatchHandBuilt(t *testing.T) {
	p := pkt(pf.In, 6, "10.0.0.1", 80, "10.0.0.2", 80)
	good := pf.Rule{Action: pf.Drop, Dir: pf.In, Proto: pf.AnyProto,
		Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("0.0.0.0/0")}
	tests := []struct {
		name  string
		edit  func(*pf.Rule)
		match bool
	}{
		{"the good rule", func(*pf.Rule) {}, true},
		{"host bits ignored", func(r *pf.Rule) { r.Src = netip.MustParsePrefix("10.9.9.9/8") }, true},
		{"zero PortRange is any", func(r *pf.Rule) { r.SrcPorts = pf.PortRange{} }, true},
		{"range from 0", func(r *pf.Rule) { r.SrcPorts = pf.PortRange{Lo: 0, Hi: 80} }, true},
		{"zero prefix", func(r *pf.Rule) { r.Src = netip.Prefix{} }, false},
		{"IPv6 prefix", func(r *pf.Rule) { r.Dst = netip.MustParsePrefix("::/0") }, false},
		{"IPv4-mapped prefix", func(r *pf.Rule) { r.Dst = netip.MustParsePrefix("::ffff:10.0.0.0/104") }, false},
		{"protocol 256", func(r *pf.Rule) { r.Proto = 256 }, false},
		{"protocol -2", func(r *pf.Rule) { r.Proto = -2 }, false},
		{"bad direction", func(r *pf.Rule) { r.Dir = 3 }, false},
		{"reversed ports", func(r *pf.Rule) { r.DstPorts = pf.PortRange{Lo: 90, Hi: 70} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.edit(&r)
			if got := r.Matches(p); got != tt.match {
				t.Errorf("Matches = %v, want %v", got, tt.match)
			}
			rs := &pf.Ruleset{Rules: []pf.Rule{r}}
			want := pf.Allow
			if tt.match {
				want = pf.Drop
			}
			if got, _ := rs.Match(p); got != want {
				t.Errorf("Match = %v, want %v", got, want)
			}
			if got := pf.NewFilter(rs).Check(p); got != want {
				t.Errorf("Check = %v, want %v", got, want)
			}
		})
	}
}

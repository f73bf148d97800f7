package pf_test

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/newtsim/newtsim/servers/pf"
	"github.com/newtsim/newtsim/servers/proto"
)

func Example() {
	const rules = `
drop in proto tcp from any to 198.18.0.2/32 port 23   # no telnet
allow out proto udp to any port 53
drop out proto udp
`
	rs, err := pf.Parse(strings.NewReader(rules), "pf.rules")
	if err != nil {
		fmt.Println(err)
		return
	}
	f := pf.NewFilter(rs)

	telnet := pf.Packet{
		Dir: pf.In, Proto: proto.TCP,
		Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2"),
		SrcPort: 40000, DstPort: 23,
	}
	fmt.Println(f.Check(telnet))

	// A bad file is refused and the rules in force stay.
	err = f.Reload(strings.NewReader("allow in\ndrop in proto icmp port 7\n"), "new.rules")
	fmt.Println(err)
	fmt.Println(f.Check(telnet))

	for _, h := range f.Hits() {
		fmt.Printf("%d %q %d\n", h.Line, h.Text, h.Hits)
	}
	// Output:
	// drop
	// pf: reload refused, the 3 rules from "pf.rules" stay in force: new.rules:2: expected "from", "to" or end of line, found "port"
	// drop
	// 2 "drop in proto tcp from any to 198.18.0.2/32 port 23" 2
	// 3 "allow out proto udp to any port 53" 0
	// 4 "drop out proto udp" 0
	// 0 "default allow" 0
}

func ExampleRuleset_String() {
	rs, err := pf.Parse(strings.NewReader("drop  any proto 6 from 10.0.0.1/32 to 0.0.0.0/0 port 22-22 # ssh\n"), "x")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(rs)
	// Output:
	// drop any proto tcp from 10.0.0.1 to any port 22
}

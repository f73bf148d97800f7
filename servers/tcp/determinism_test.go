package tcp

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/proto"
)

// TestCloseListenerResetsInOrder: closing a listener with half-open
// connections resets them in one order, by remote address, on every run.
// (They were kept in a map, and reset in its order.)
func TestCloseListenerResetsInOrder(t *testing.T) {
	var first []uint16
	for run := range 20 {
		n := newNet(t, Config{}, Config{})
		l := n.listen(80, 64)
		for _, port := range []uint16{40007, 40001, 40005, 40003, 40002, 40006, 40004, 40008} {
			n.inject(n.b, netip.AddrPortFrom(addrA, port), netip.AddrPortFrom(addrB, 80), Header{Seq: 1000, Flags: SYN, Window: 65535}, nil)
		}
		n.b.Out() // the SYN-ACKs
		if err := n.b.Close(n.now, l); err != nil {
			t.Fatalf("close: %v", err)
		}
		var got []uint16
		for _, seg := range n.b.Out() {
			checker.Segment(t, proto.TCP, seg.Src, seg.Dst, seg.Data, checker.Addrs(addrB, addrA),
				checker.TCP(checker.FlagsMasked(checker.RST, checker.RST|checker.SYN|checker.FIN), checker.SrcPort(80)))
			h, _, err := Parse(seg.Data)
			if err != nil {
				t.Fatalf("malformed segment: %v", err)
			}
			got = append(got, h.DstPort)
		}
		if !slices.IsSorted(got) || len(got) != 8 {
			t.Fatalf("run %d: RSTs to ports %v, want all 8 in order", run, got)
		}
		if run == 0 {
			first = got
		} else if !slices.Equal(got, first) {
			t.Fatalf("run %d: RSTs to %v, run 0 to %v", run, got, first)
		}
	}
}

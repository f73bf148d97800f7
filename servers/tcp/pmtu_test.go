package tcp

import (
	"net/netip"
	"testing"
	"time"
)

// TestPathMTUCache: a fragmentation needed about one connection teaches
// the Stack the destination's path MTU; a connection opened to it later,
// actively or passively, starts with an MSS that fits, until the learned
// MTU expires; another destination keeps the link's.
func TestPathMTUCache(t *testing.T) {
	const routerMTU = 1000
	n := newNet(t, Config{}, Config{})
	_, x := lossyClient(t, n, Established) // listening on 80
	l := n.listen(81, 8)
	n.a.ICMPError(n.now, x.local, x.remote, x.sndUna, 3, 4, routerMTU)
	n.filter = nil
	other := netip.MustParseAddr("198.18.0.9")
	if got := n.a.PathMTU(n.now, addrB); got != routerMTU {
		t.Fatalf("path MTU to b %d, want %d", got, routerMTU)
	}
	if got := n.a.PathMTU(n.now, other); got != 1500 {
		t.Fatalf("path MTU to another host %d, want the link's", got)
	}

	c, _ := n.dial(l, 81)
	if got, want := n.a.socks[c].mss, routerMTU-52; got != want {
		t.Errorf("a new connection to b: MSS %d, want %d (the learned MTU less headers and timestamps)", got, want)
	}

	// b learns a's path MTU: the connections it accepts from a fit it.
	n.b.learnPathMTU(n.now, addrA, 1200)
	_, s := n.dial(l, 81)
	if got, want := n.b.socks[s].mss, 1200-52; got != want {
		t.Errorf("a connection b accepted: MSS %d, want %d", got, want)
	}

	n.now = n.now.Add(PathMTUExpiry)
	if got := n.a.PathMTU(n.now, addrB); got != 1500 {
		t.Errorf("path MTU to b after %v: %d, want the link's again", PathMTUExpiry, got)
	}
	c, _ = n.dial(l, 81)
	if got, want := n.a.socks[c].mss, 1500-52; got != want {
		t.Errorf("a connection after the expiry: MSS %d, want %d", got, want)
	}
}

// TestPathMTUCacheBounds: the cache only lowers a destination's MTU
// (until it expires), ignores one not below the link's, and holds at most
// MaxPathMTUs destinations, replacing the one that expires first.
func TestPathMTUCacheBounds(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(Config{Addrs: []netip.Addr{addrA}})
	dst := addrB
	s.learnPathMTU(t0, dst, 1500)
	s.learnPathMTU(t0, dst, 9000)
	if s.PathMTUs() != 0 {
		t.Fatalf("learned an MTU not below the link's: %d entries", s.PathMTUs())
	}
	s.learnPathMTU(t0, dst, 1000)
	s.learnPathMTU(t0, dst, 1200)
	if got := s.PathMTU(t0, dst); got != 1000 {
		t.Errorf("after 1000 then 1200: %d, want 1000 (only ever lower)", got)
	}
	s.learnPathMTU(t0, dst, 900)
	if got := s.PathMTU(t0, dst); got != 900 {
		t.Errorf("after 900: %d", got)
	}

	s = New(Config{Addrs: []netip.Addr{addrA}})
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := range MaxPathMTUs + 10 {
		s.learnPathMTU(t0.Add(PathMTUExpiry*time.Duration(i)/(4*MaxPathMTUs)), addr(i), 1000)
	}
	if s.PathMTUs() != MaxPathMTUs {
		t.Fatalf("%d entries, want at most %d", s.PathMTUs(), MaxPathMTUs)
	}
	now := t0.Add(PathMTUExpiry / 4)
	for i := range 10 {
		if got := s.PathMTU(now, addr(i)); got != 1500 {
			t.Errorf("destination %d, learned first: %d, want evicted", i, got)
		}
	}
	if got := s.PathMTU(now, addr(MaxPathMTUs+9)); got != 1000 {
		t.Errorf("the last destination learned: %d, want 1000", got)
	}
}

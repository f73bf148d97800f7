package tcp

import (
	"errors"
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

// TestLoopbackMTU: a connection within the host (to 127.0.0.1 or to one
// of the host's addresses) announces the loopback's MSS, 65495 as Linux's
// lo, and sends segments that large; one to another host keeps the
// Ethernet link's 1460.
func TestLoopbackMTU(t *testing.T) {
	for _, tt := range []struct {
		name     string
		to       netip.Addr
		mss      int
		largest  int // the largest payload sent
		loopback bool
	}{
		{"127.0.0.1", netip.MustParseAddr("127.0.0.1"), 65495, 65495 - 12, true},
		{"the host's address", addrA, 65495, 65495 - 12, true},
		{"another host", addrB, 1460, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{Addrs: []netip.Addr{addrA}, Secret: 1})
			now := epoch
			l := s.Open()
			if err := s.Bind(l, netip.AddrPortFrom(netip.IPv4Unspecified(), 80)); err != nil {
				t.Fatal(err)
			}
			if err := s.Listen(l, 8); err != nil {
				t.Fatal(err)
			}
			c := s.Open()
			if err := s.Connect(now, c, netip.AddrPortFrom(tt.to, 80)); !errors.Is(err, ErrInProgress) {
				t.Fatal(err)
			}
			out := copySegments(s.Out())
			h, _, err := Parse(out[0].Data)
			if err != nil || h.Flags&SYN == 0 {
				t.Fatalf("first segment %+v (%v), want a SYN", h, err)
			}
			if int(h.Opts.MSS) != tt.mss {
				t.Errorf("SYN announces MSS %d, want %d", h.Opts.MSS, tt.mss)
			}
			if !tt.loopback {
				return
			}
			data := pattern(1<<20, 5)
			sent, largest := 0, 0
			var got []byte
			buf := make([]byte, 256<<10)
			var a SockID
			for i := 0; i < 100000 && len(got) < len(data); i++ {
				now = now.Add(10 * time.Microsecond)
				for _, seg := range out {
					if h, p, err := Parse(seg.Data); err == nil && h.Flags&SYN == 0 {
						largest = max(largest, len(p))
					}
					s.Input(now, seg.Src, seg.Dst, seg.Data) // over the loopback
				}
				if a == 0 {
					a, _, _ = s.Accept(l)
				}
				if sent < len(data) {
					k, _ := s.Send(now, c, data[sent:])
					sent += k
				}
				if a != 0 {
					if k, err := s.Recv(now, a, buf, false); err == nil {
						got = append(got, buf[:k]...)
					}
				}
				s.Tick(now)
				out = copySegments(s.Out()) // valid only until the next call
			}
			if string(got) != string(data) {
				t.Fatalf("received %d of %d bytes, or other bytes", len(got), len(data))
			}
			// Simulated time: a window of four segments waited for a
			// delayed ACK after every read when the window update needed
			// two segments' worth (120 ms for the MiB); the last, short
			// segment, held by Nagle's rule, waited for one more (40 ms)
			// until the read that empties the buffer after a short
			// segment acknowledged it (afterRead).
			if took := now.Sub(epoch); took > time.Millisecond {
				t.Errorf("the transfer took %v of simulated time, want no delayed ACK (%v) in it", took, DefaultDelayedAck)
			}
			if largest != tt.largest {
				t.Errorf("largest segment %d bytes of payload, want %d (the MSS less timestamps)", largest, tt.largest)
			}
		})
	}
}

// copySegments copies what Out returned, which the next call into the
// Stack reuses.
func copySegments(out []Segment) []Segment {
	c := make([]Segment, len(out))
	for i, seg := range out {
		c[i] = seg
		c[i].Data = append([]byte(nil), seg.Data...)
	}
	return c
}

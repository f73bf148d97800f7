package ip_test

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
)

// tcpSegment returns a TCP segment: a 20-byte header (no options, the
// checksum left zero: ip does not read it) and n bytes of data.
func tcpSegment(n int) []byte {
	seg := append(make([]byte, proto.TCPHeaderLen), pattern(0, n, 3)...)
	seg[0], seg[1], seg[2], seg[3] = 0xc0, 0x00, 0x00, 0x50 // ports 49152 -> 80
	seg[12] = 5 << 4
	return seg
}

// A segment tagged with a segment size goes whole in one frame, larger
// than the MTU, with DF set, for the NIC to cut (TSO); the same segment
// untagged is fragmented as before.
func TestSendSegmented(t *testing.T) {
	tests := []struct {
		name    string
		data    int // TCP data bytes
		segSize int
		frames  int    // FrameOut events
		tag     uint16 // their SegSize
	}{
		{"64 KiB segment tagged", 65442, 1448, 1, 1448},
		{"two segments tagged", 2 * 1448, 1448, 1, 1448},
		{"a segment and a byte tagged", 1449, 1448, 1, 1448},
		{"one segment tagged: nothing to cut", 1448, 1448, 1, 0},
		{"short segment tagged", 100, 1448, 1, 0},
		{"a lowered path MTU: fits the link, not the path", 1100, 1000, 1, 1000},
		{"64 KiB segment untagged: fragments", 65442, 0, 45, 0},
		{"two segments untagged: fragments", 2 * 1448, 0, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			resolve(t, s, t0, peerMAC, peer)
			seg := tcpSegment(tt.data)
			if err := s.SendSegmented(t0, proto.TCP, netip.Addr{}, peer, seg, tt.segSize); err != nil {
				t.Fatalf("SendSegmented(%d bytes, %d): %v", len(seg), tt.segSize, err)
			}
			evs := s.Out()
			if len(evs) != tt.frames {
				t.Fatalf("%d events, want %d frames", len(evs), tt.frames)
			}
			for i, ev := range evs {
				if ev.Kind != ip.FrameOut || ev.SegSize != tt.tag {
					t.Fatalf("event %d: %v with segment size %d, want FrameOut with %d", i, ev.Kind, ev.SegSize, tt.tag)
				}
			}
			st := s.Stats()
			if tt.frames > 1 {
				if st.Fragmented != 1 || st.Segmented != 0 {
					t.Errorf("Stats() = %+v, want one datagram fragmented", st)
				}
				checkDrops(t, s, nil)
				return
			}
			f := evs[0].Frame
			if len(f) != proto.EthHeaderLen+ip.HeaderLen+len(seg) {
				t.Errorf("frame of %d bytes, want %d", len(f), proto.EthHeaderLen+ip.HeaderLen+len(seg))
			}
			checker.Frame(t, f, checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
				checker.InIPv4(checker.Addrs(host, peer), checker.DontFragment(), checker.Protocol(proto.TCP),
					checker.IPPayload(seg)))
			if wantSeg := uint64(min(tt.tag, 1)); st.Segmented != wantSeg || st.Fragmented != 0 {
				t.Errorf("Stats() = %+v, want %d segmented, none fragmented", st, wantSeg)
			}
			checkDrops(t, s, nil)
		})
	}
}

// A tagged segment held for ARP keeps its tag until the address resolves.
func TestSendSegmentedHeldForARP(t *testing.T) {
	s := newStack(t)
	seg := tcpSegment(10 * 1448)
	if err := s.SendSegmented(t0, proto.TCP, netip.Addr{}, peer, seg, 1448); err != nil {
		t.Fatal(err)
	}
	only(t, s.Out(), ip.FrameOut) // the ARP request
	s.FrameIn(t0, arpReplyFrom(t, peerMAC, peer))
	ev := only(t, s.Out(), ip.FrameOut)
	if ev.SegSize != 1448 || !bytes.Equal(ev.Frame[proto.EthHeaderLen+ip.HeaderLen:], seg) {
		t.Fatalf("held frame: %d bytes, segment size %d; want %d bytes, 1448", len(ev.Frame), ev.SegSize,
			proto.EthHeaderLen+ip.HeaderLen+len(seg))
	}
}

// A tagged segment to the host itself goes over the loopback whole, as
// any other; the tag means nothing there.
func TestSendSegmentedLoopback(t *testing.T) {
	s := newStack(t)
	seg := tcpSegment(3 * 1448)
	if err := s.SendSegmented(t0, proto.TCP, netip.Addr{}, host, seg, 1448); err != nil {
		t.Fatal(err)
	}
	ev := only(t, s.Out(), ip.Deliver)
	if !bytes.Equal(ev.Payload, seg) {
		t.Errorf("delivered %d bytes, want %d", len(ev.Payload), len(seg))
	}
}

// What the NIC could not cut is refused and counted, never sent.
func TestSendSegmentedRefused(t *testing.T) {
	tests := []struct {
		name    string
		proto   uint8
		dst     netip.Addr
		seg     []byte
		segSize int
	}{
		{"udp", proto.UDP, peer, tcpSegment(3000), 1448},
		{"segments over the MTU", proto.TCP, peer, tcpSegment(3000), 1461},
		{"negative segment size", proto.TCP, peer, tcpSegment(3000), -1},
		{"shorter than a TCP header", proto.TCP, peer, tcpSegment(3000)[:19], 1448},
		{"data offset past the end", proto.TCP, peer, func() []byte { b := tcpSegment(0); b[12] = 6 << 4; return b }(), 1448},
		{"data offset below 5", proto.TCP, peer, func() []byte { b := tcpSegment(3000); b[12] = 4 << 4; return b }(), 1448},
		{"subnet broadcast", proto.TCP, subnetBC, tcpSegment(3000), 1448},
		{"multicast", proto.TCP, netip.MustParseAddr("224.0.0.1"), tcpSegment(3000), 1448},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			resolve(t, s, t0, peerMAC, peer)
			err := s.SendSegmented(t0, tt.proto, netip.Addr{}, tt.dst, tt.seg, tt.segSize)
			if !errors.Is(err, ip.ErrSegSize) {
				t.Fatalf("SendSegmented: %v, want ErrSegSize", err)
			}
			none(t, s.Out())
			checkDrops(t, s, map[string]uint64{"bad-seg-size": 1})
		})
	}
}

// Sending segments of up to 64 KiB allocates nothing once the stack is
// warm: the frames are built in the chunks of the last call, reused.
func TestSendSegmentedReusesBuffers(t *testing.T) {
	s := newStack(t)
	resolve(t, s, t0, peerMAC, peer)
	seg := tcpSegment(65442)
	send := func() {
		for range 4 { // a burst of frames in one call's worth of events
			if err := s.SendSegmented(t0, proto.TCP, netip.Addr{}, peer, seg, 1448); err != nil {
				t.Fatal(err)
			}
		}
		if evs := s.Out(); len(evs) != 4 {
			t.Fatalf("%d events, want 4 frames", len(evs))
		}
	}
	send()
	if allocs := testing.AllocsPerRun(20, send); allocs > 0 {
		t.Errorf("a burst of four 64 KiB frames allocated %.0f times once warm", allocs)
	}
}

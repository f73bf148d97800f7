package ip_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// BenchmarkFrameInEcho measures an ICMP echo request in and its reply out:
// checks, the reply built, ARP looked up, events drained.
func BenchmarkFrameInEcho(b *testing.B) {
	for _, n := range []int{56, 1400} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := newStack(b)
			resolve(b, s, t0, peerMAC, peer)
			frame := echoFrame(b, peerMAC, peer, host, 1, 1, make([]byte, n))
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				s.FrameIn(t0, frame)
				if evs := s.Out(); len(evs) != 1 {
					b.Fatalf("%d events", len(evs))
				}
			}
		})
	}
}

// BenchmarkSend measures a UDP payload out to a resolved neighbor.
func BenchmarkSend(b *testing.B) {
	for _, n := range []int{64, 1400} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := newStack(b)
			resolve(b, s, t0, peerMAC, peer)
			payload := make([]byte, 8+n)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Send(t0, 17, netip.Addr{}, peer, payload); err != nil {
					b.Fatal(err)
				}
				if evs := s.Out(); len(evs) != 1 {
					b.Fatalf("%d events", len(evs))
				}
			}
		})
	}
}

// BenchmarkFrameInUDP measures a UDP datagram in and delivered: the
// receive path's checks by hand. Compare BenchmarkDecodeGopacket, which
// only decodes the same frame.
func BenchmarkFrameInUDP(b *testing.B) {
	s := newStack(b)
	frame := udpFrame(b, make([]byte, 1400))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		s.FrameIn(t0, frame)
		if evs := s.Out(); len(evs) != 1 {
			b.Fatalf("%d events", len(evs))
		}
	}
}

// BenchmarkDecodeGopacket decodes the frame of BenchmarkFrameInUDP with
// gopacket: a reused DecodingLayerParser, the fast way, and NewPacket, the
// convenient one. Neither verifies a checksum.
func BenchmarkDecodeGopacket(b *testing.B) {
	frame := udpFrame(b, make([]byte, 1400))
	b.Run("DecodingLayerParser", func(b *testing.B) {
		var (
			eth     layers.Ethernet
			ip4     layers.IPv4
			udp     layers.UDP
			payload gopacket.Payload
		)
		p := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &udp, &payload)
		p.IgnoreUnsupported = true
		decoded := make([]gopacket.LayerType, 0, 4)
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			if err := p.DecodeLayers(frame, &decoded); err != nil || len(decoded) < 3 { // Ethernet, IPv4, UDP; port 53 names DNS, which the parser lacks
				b.Fatalf("decoded %v: %v", decoded, err)
			}
		}
	})
	b.Run("NewPacket", func(b *testing.B) {
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.NoCopy)
			if p.Layer(layers.LayerTypeUDP) == nil {
				b.Fatal("no UDP layer")
			}
		}
	})
}

// BenchmarkReassembly measures a 2960-byte datagram in two fragments,
// reassembled and delivered.
func BenchmarkReassembly(b *testing.B) {
	s := newStack(b)
	data := pattern(0, 2960, 1)
	f1 := fragFrame(peer, 1, 17, 0, true, data[:1480])
	f2 := fragFrame(peer, 1, 17, 1480, false, data[1480:])
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s.FrameIn(t0, f1)
		s.FrameIn(t0, f2)
		if evs := s.Out(); len(evs) != 1 {
			b.Fatalf("%d events", len(evs))
		}
	}
}

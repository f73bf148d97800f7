package ip_test

import (
	"bytes"
	"encoding/binary"
	"maps"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/ip"
)

// The simulated link: the host, its gateway, an on-link peer, and a host
// beyond the gateway.
var (
	hostMAC = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	gwMAC   = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	peerMAC = [6]byte{0x02, 0, 0, 0, 0, 0x03}
	bcast   = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

	hostPrefix = netip.MustParsePrefix("198.18.0.2/24")
	host       = hostPrefix.Addr()
	gw         = netip.MustParseAddr("198.18.0.1")
	peer       = netip.MustParseAddr("198.18.0.3")
	peer2      = netip.MustParseAddr("198.18.0.4")
	remote     = netip.MustParseAddr("203.0.113.9")
	subnetBC   = netip.MustParseAddr("198.18.0.255")
	allBC      = netip.MustParseAddr("255.255.255.255")
	lo         = netip.MustParseAddr("127.0.0.1")

	t0 = time.Unix(1_700_000_000, 0)
)

// config returns the host's Config, with a gateway.
func config() ip.Config {
	return ip.Config{MAC: hostMAC, Addr: hostPrefix, Gateway: gw}
}

// newStack returns a Stack for config(), changed by mods.
func newStack(t testing.TB, mods ...func(*ip.Config)) *ip.Stack {
	t.Helper()
	c := config()
	for _, m := range mods {
		m(&c)
	}
	s, err := ip.New(c)
	if err != nil {
		t.Fatalf("New(%+v): %v", c, err)
	}
	return s
}

// at returns the time d after t0.
func at(d time.Duration) time.Time { return t0.Add(d) }

// serialize builds a packet from layers, with lengths and checksums fixed.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return bytes.Clone(buf.Bytes())
}

// eth returns an Ethernet header layer.
func eth(src, dst [6]byte, typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: net.HardwareAddr(src[:]), DstMAC: net.HardwareAddr(dst[:]), EthernetType: typ}
}

// ipv4Hdr returns an IPv4 header layer from src to dst; Length, IHL and
// Checksum are filled in by serialize.
func ipv4Hdr(src, dst netip.Addr, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, Id: 0x1234, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

// arpFrame returns an ARP packet in a frame.
func arpFrame(t testing.TB, op uint16, sha [6]byte, spa netip.Addr, ethDst, tha [6]byte, tpa netip.Addr) []byte {
	t.Helper()
	return serialize(t, eth(sha, ethDst, layers.EthernetTypeARP), &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: sha[:], SourceProtAddress: spa.AsSlice(),
		DstHwAddress: tha[:], DstProtAddress: tpa.AsSlice(),
	})
}

// arpRequestFrom returns a broadcast ARP request from mac, addr for target.
func arpRequestFrom(t testing.TB, mac [6]byte, addr, target netip.Addr) []byte {
	return arpFrame(t, layers.ARPRequest, mac, addr, bcast, [6]byte{}, target)
}

// arpReplyFrom returns an ARP reply from mac, addr to the host.
func arpReplyFrom(t testing.TB, mac [6]byte, addr netip.Addr) []byte {
	return arpFrame(t, layers.ARPReply, mac, addr, hostMAC, hostMAC, host)
}

// echoFrame returns an ICMP echo request from src to dst in a frame from
// srcMAC to the host.
func echoFrame(t testing.TB, srcMAC [6]byte, src, dst netip.Addr, id, seq uint16, data []byte) []byte {
	t.Helper()
	return serialize(t, eth(srcMAC, hostMAC, layers.EthernetTypeIPv4), ipv4Hdr(src, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq},
		gopacket.Payload(data))
}

// udpPacket returns a UDP datagram from src:sport to dst:dport in an IPv4
// packet, with correct checksums.
func udpPacket(t testing.TB, src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	t.Helper()
	h := ipv4Hdr(src, dst, layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := u.SetNetworkLayerForChecksum(h); err != nil {
		t.Fatal(err)
	}
	return serialize(t, h, u, gopacket.Payload(data))
}

// inFrame puts an IPv4 packet in a frame from srcMAC to dstMAC.
func inFrame(srcMAC, dstMAC [6]byte, pkt []byte) []byte {
	f := make([]byte, 14, max(60, 14+len(pkt)))
	copy(f[0:], dstMAC[:])
	copy(f[6:], srcMAC[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	f = append(f, pkt...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

// udpFrame returns a UDP datagram from the peer to the host in a frame.
func udpFrame(t testing.TB, data []byte) []byte {
	return inFrame(peerMAC, hostMAC, udpPacket(t, peer, host, 5000, 53, data))
}

// fixIPv4Checksum recomputes the header checksum of the packet in frame.
func fixIPv4Checksum(frame []byte) {
	h := frame[14:]
	hl := int(h[0]&0xf) * 4
	h[10], h[11] = 0, 0
	var s uint32
	for i := 0; i+1 < hl; i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(s))
}

// inetSum returns the Internet checksum of b, independently of the package.
func inetSum(b []byte) uint16 {
	var s uint32
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		s += w
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// resolve teaches s that addr is at mac, with an ARP request from it for
// the host, and discards the reply.
func resolve(t testing.TB, s *ip.Stack, now time.Time, mac [6]byte, addr netip.Addr) {
	t.Helper()
	s.FrameIn(now, arpRequestFrom(t, mac, addr, host))
	if ev := s.Out(); len(ev) != 1 || ev[0].Kind != ip.FrameOut {
		t.Fatalf("ARP request from %v: got %d events, want one reply", addr, len(ev))
	}
}

// kinds returns the kinds of evs, for messages.
func kinds(evs []ip.Event) []ip.EventKind {
	k := make([]ip.EventKind, len(evs))
	for i, e := range evs {
		k[i] = e.Kind
	}
	return k
}

// only returns the single event in evs, which must be of kind k.
func only(t *testing.T, evs []ip.Event, k ip.EventKind) ip.Event {
	t.Helper()
	if len(evs) != 1 || evs[0].Kind != k {
		t.Fatalf("events %v, want one %v", kinds(evs), k)
	}
	return evs[0]
}

// none checks that evs is empty.
func none(t *testing.T, evs []ip.Event) {
	t.Helper()
	if len(evs) != 0 {
		t.Fatalf("events %v, want none", kinds(evs))
	}
}

// checkDrops checks that the drop counters are exactly want, all others
// zero.
func checkDrops(t *testing.T, s *ip.Stack, want map[string]uint64) {
	t.Helper()
	got := s.Drops()
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if got[k] != want[k] {
			t.Errorf("Drops()[%q] = %d, want %d", k, got[k], want[k])
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("Drops() has no key %q", k)
		}
	}
}

// checkFrame checks that frame has a length the host may send, decodes it
// and applies the checkers (package servers/checker).
func checkFrame(t *testing.T, frame []byte, checks ...checker.Checker) {
	t.Helper()
	if len(frame) < ip.MinFrameLen || len(frame) > ip.MaxFrameLen {
		t.Errorf("frame of %d bytes, want %d to %d", len(frame), ip.MinFrameLen, ip.MaxFrameLen)
	}
	checker.Frame(t, frame, checks...)
}

// checkPacket decodes an IPv4 packet and applies the checkers.
func checkPacket(t *testing.T, pkt []byte, checks ...checker.Checker) {
	t.Helper()
	checker.Packet(t, pkt, checks...)
}

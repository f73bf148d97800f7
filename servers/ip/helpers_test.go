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

// A checker checks one aspect of a decoded frame. Checkers compose:
// ipv4(srcAddr(a), icmp(echo(1, 2))) checks an IPv4 packet from a carrying
// an ICMP echo message with id 1 and sequence number 2, in the shape of
// gVisor's checker package.
type checker func(t *testing.T, p gopacket.Packet)

// checkFrame decodes frame with gopacket and applies the checkers.
func checkFrame(t *testing.T, frame []byte, checks ...checker) {
	t.Helper()
	if len(frame) < ip.MinFrameLen || len(frame) > ip.MaxFrameLen {
		t.Errorf("frame of %d bytes, want %d to %d", len(frame), ip.MinFrameLen, ip.MaxFrameLen)
	}
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	decodeErr(t, p)
	for _, c := range checks {
		c(t, p)
	}
}

// checkPacket decodes an IPv4 packet with gopacket and applies the
// checkers.
func checkPacket(t *testing.T, pkt []byte, checks ...checker) {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
	decodeErr(t, p)
	for _, c := range checks {
		c(t, p)
	}
}

// decodeErr fails t if gopacket could not decode p down to its network
// layer, or an ICMP message. What a transport payload holds is no concern
// of ip's, and tests send arbitrary bytes as one.
func decodeErr(t *testing.T, p gopacket.Packet) {
	t.Helper()
	el := p.ErrorLayer()
	if el == nil {
		return
	}
	if h, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && h.Protocol != layers.IPProtocolICMPv4 {
		return
	}
	t.Fatalf("does not decode: %v", el.Error())
}

// ethernet checks the frame's Ethernet header.
func ethernet(src, dst [6]byte, typ layers.EthernetType) checker {
	return func(t *testing.T, p gopacket.Packet) {
		t.Helper()
		e, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if e == nil {
			t.Fatal("no Ethernet header")
		}
		if !bytes.Equal(e.SrcMAC, src[:]) || !bytes.Equal(e.DstMAC, dst[:]) || e.EthernetType != typ {
			t.Errorf("Ethernet %v -> %v type %v, want %v -> %v type %v",
				e.SrcMAC, e.DstMAC, e.EthernetType, net.HardwareAddr(src[:]), net.HardwareAddr(dst[:]), typ)
		}
	}
}

// arp checks an ARP packet's operation, sender and target.
func arp(op uint16, sha [6]byte, spa netip.Addr, tha [6]byte, tpa netip.Addr) checker {
	return func(t *testing.T, p gopacket.Packet) {
		t.Helper()
		a, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		if a == nil {
			t.Fatal("no ARP packet")
		}
		if a.AddrType != layers.LinkTypeEthernet || a.Protocol != layers.EthernetTypeIPv4 || a.HwAddressSize != 6 || a.ProtAddressSize != 4 {
			t.Errorf("ARP for hardware %v protocol %v sizes %d, %d", a.AddrType, a.Protocol, a.HwAddressSize, a.ProtAddressSize)
		}
		if a.Operation != op ||
			!bytes.Equal(a.SourceHwAddress, sha[:]) || !bytes.Equal(a.SourceProtAddress, spa.AsSlice()) ||
			!bytes.Equal(a.DstHwAddress, tha[:]) || !bytes.Equal(a.DstProtAddress, tpa.AsSlice()) {
			t.Errorf("ARP op %d %v/%v -> %v/%v, want op %d %v/%v -> %v/%v",
				a.Operation, net.HardwareAddr(a.SourceHwAddress), net.IP(a.SourceProtAddress), net.HardwareAddr(a.DstHwAddress), net.IP(a.DstProtAddress),
				op, net.HardwareAddr(sha[:]), spa, net.HardwareAddr(tha[:]), tpa)
		}
	}
}

// ipv4 checks that the packet is a well-formed IPv4 packet, header
// checksum included, and applies the checkers.
func ipv4(checks ...checker) checker {
	return func(t *testing.T, p gopacket.Packet) {
		t.Helper()
		h, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if h == nil {
			t.Fatal("no IPv4 packet")
		}
		if h.Version != 4 || h.IHL != 5 {
			t.Errorf("IPv4 version %d IHL %d, want 4 and 5", h.Version, h.IHL)
		}
		if got := inetSum(h.Contents); got != 0 {
			t.Errorf("IPv4 header checksum %#04x does not verify", h.Checksum)
		}
		if int(h.Length) != len(h.Contents)+len(h.Payload) {
			t.Errorf("IPv4 total length %d, header and payload %d", h.Length, len(h.Contents)+len(h.Payload))
		}
		if h.Flags&layers.IPv4MoreFragments != 0 || h.FragOffset != 0 {
			t.Errorf("IPv4 flags %v offset %d: a fragment", h.Flags, h.FragOffset)
		}
		for _, c := range checks {
			c(t, p)
		}
	}
}

// addrs checks the IPv4 source and destination.
func addrs(src, dst netip.Addr) checker {
	return func(t *testing.T, p gopacket.Packet) {
		t.Helper()
		h := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !bytes.Equal(h.SrcIP.To4(), src.AsSlice()) || !bytes.Equal(h.DstIP.To4(), dst.AsSlice()) {
			t.Errorf("IPv4 %v -> %v, want %v -> %v", h.SrcIP, h.DstIP, src, dst)
		}
	}
}

// ttl checks the IPv4 TTL.
func ttl(want uint8) checker {
	return func(t *testing.T, p gopacket.Packet) {
		t.Helper()
		if h := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); h.TTL != want {
			t.Errorf("TTL %d, want %d", h.TTL, want)
		}
	}
}

// protocol checks the IPv4 protocol and payload.
func protocol(proto layers.IPProtocol, payload []byte) checker {
	return func(t *testing.T, p gopacket.Packet) {
		t.Helper()
		h := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if h.Protocol != proto || !bytes.Equal(h.Payload, payload) {
			t.Errorf("protocol %v with %d bytes, want %v with %d", h.Protocol, len(h.Payload), proto, len(payload))
		}
	}
}

// icmp checks that the packet carries an ICMP message whose checksum
// verifies, of type typ and code, and applies the checkers.
func icmp(typ, code uint8, checks ...checker) checker {
	return func(t *testing.T, p gopacket.Packet) {
		t.Helper()
		m, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if m == nil {
			t.Fatal("no ICMP message")
		}
		if got := inetSum(append(bytes.Clone(m.Contents), m.Payload...)); got != 0 {
			t.Errorf("ICMP checksum %#04x does not verify", m.Checksum)
		}
		if m.TypeCode.Type() != typ || m.TypeCode.Code() != code {
			t.Errorf("ICMP %v, want type %d code %d", m.TypeCode, typ, code)
		}
		for _, c := range checks {
			c(t, p)
		}
	}
}

// echo checks an ICMP echo's identifier, sequence number and data.
func echo(id, seq uint16, data []byte) checker {
	return func(t *testing.T, p gopacket.Packet) {
		t.Helper()
		m := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if m.Id != id || m.Seq != seq || !bytes.Equal(m.Payload, data) {
			t.Errorf("echo id %d seq %d with %d bytes, want id %d seq %d with %d", m.Id, m.Seq, len(m.Payload), id, seq, len(data))
		}
	}
}

// quotes checks an ICMP error's body: 4 unused bytes, then quote.
func quotes(quote []byte) checker {
	return func(t *testing.T, p gopacket.Packet) {
		t.Helper()
		m := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		body := append(bytes.Clone(m.Contents[4:]), m.Payload...)
		if !bytes.Equal(body[:4], make([]byte, 4)) || !bytes.Equal(body[4:], quote) {
			t.Errorf("ICMP error body\n% x\nwant 4 zeros, then\n% x", body, quote)
		}
	}
}

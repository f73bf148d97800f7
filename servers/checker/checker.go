// Package checker checks packets in tests, in the shape of gVisor's
// pkg/tcpip/checker: a test takes a packet out of an engine and checks it
// with composable checkers that read as a sentence,
//
//	checker.IPv4(t, pkt,
//		checker.Src(host), checker.Protocol(proto.TCP),
//		checker.TCP(checker.Flags(tcp.SYN|tcp.ACK), checker.AckNum(1001)))
//
// Each checker looks at one aspect of a packet decoded with gopacket, and
// the layer checkers (InIPv4, ICMP, TCP, UDP) first check that their layer
// is well formed, checksums included, then apply the checkers inside them.
// The ip, tcp and udp tests share it; engines never import it.
package checker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
)

// A Checker checks one aspect of a decoded packet, failing t if it is
// wrong.
type Checker func(t testing.TB, p gopacket.Packet)

// Frame decodes an Ethernet frame and applies the checkers.
func Frame(t testing.TB, frame []byte, checks ...Checker) {
	t.Helper()
	apply(t, gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default), checks)
}

// Packet decodes an IPv4 packet and applies the checkers.
func Packet(t testing.TB, pkt []byte, checks ...Checker) {
	t.Helper()
	apply(t, gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default), checks)
}

// IPv4 checks that pkt is a well-formed IPv4 packet (see InIPv4) and
// applies the checkers.
func IPv4(t testing.TB, pkt []byte, checks ...Checker) {
	t.Helper()
	Packet(t, pkt, InIPv4(checks...))
}

// Segment checks a transport segment an engine hands ip (a TCP segment or
// a UDP datagram, no IP header) as if it were sent from src to dst with
// protocol number prot: it puts it in an IPv4 packet and checks that.
func Segment(t testing.TB, prot uint8, src, dst netip.Addr, seg []byte, checks ...Checker) {
	t.Helper()
	pkt := make([]byte, proto.IPv4HeaderLen+len(seg))
	pkt[0] = 4<<4 | 5
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[6] = 0x40 // DF
	pkt[8] = 64
	pkt[9] = prot
	s, d := src.As4(), dst.As4()
	copy(pkt[12:], s[:])
	copy(pkt[16:], d[:])
	binary.BigEndian.PutUint16(pkt[10:], ^sum(pkt[:proto.IPv4HeaderLen]))
	copy(pkt[proto.IPv4HeaderLen:], seg)
	IPv4(t, pkt, checks...)
}

// apply fails t if gopacket could not decode p down to its network layer,
// or an ICMP message in it, then applies the checkers. What a transport
// carries is no concern of the network layer, and tests send arbitrary
// bytes as one: TCP and UDP check their own headers.
func apply(t testing.TB, p gopacket.Packet, checks []Checker) {
	t.Helper()
	if el := p.ErrorLayer(); el != nil {
		if h, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); !ok || h.Protocol == layers.IPProtocolICMPv4 {
			t.Fatalf("does not decode: %v", el.Error())
		}
	}
	for _, c := range checks {
		c(t, p)
	}
}

// sum returns the Internet checksum's one's-complement sum of b, folded;
// a correct checksum over its own bytes gives 0xffff.
func sum(b []byte) uint16 {
	var s uint32
	for ; len(b) > 1; b = b[2:] {
		s += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// Ethernet checks the frame's Ethernet II header.
func Ethernet(src, dst [6]byte, typ layers.EthernetType) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		e, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if e == nil {
			t.Fatal("no Ethernet header")
		}
		if !bytes.Equal(e.SrcMAC, src[:]) || !bytes.Equal(e.DstMAC, dst[:]) || e.EthernetType != typ {
			t.Errorf("Ethernet %s -> %s type %v, want %s -> %s type %v",
				mac(e.SrcMAC), mac(e.DstMAC), e.EthernetType, mac(src[:]), mac(dst[:]), typ)
		}
	}
}

// ARP checks an ARP packet for IPv4 over Ethernet: its operation, sender
// and target.
func ARP(op uint16, sha [6]byte, spa netip.Addr, tha [6]byte, tpa netip.Addr) Checker {
	return func(t testing.TB, p gopacket.Packet) {
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
			t.Errorf("ARP op %d %s/%v -> %s/%v, want op %d %s/%v -> %s/%v",
				a.Operation, mac(a.SourceHwAddress), addr(a.SourceProtAddress), mac(a.DstHwAddress), addr(a.DstProtAddress),
				op, mac(sha[:]), spa, mac(tha[:]), tpa)
		}
	}
}

// mac formats a hardware address as 02:00:00:00:00:01.
func mac(b []byte) string {
	var sb strings.Builder
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02x", x)
	}
	return sb.String()
}

// addr returns the address b holds (4 or 16 bytes), invalid otherwise.
func addr(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a
}

// ipv4 returns the packet's IPv4 header, failing t when it has none.
func ipv4(t testing.TB, p gopacket.Packet) *layers.IPv4 {
	t.Helper()
	h, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if h == nil {
		t.Fatal("no IPv4 packet")
	}
	return h
}

// InIPv4 checks that the packet (or the frame's payload) is a well-formed
// IPv4 packet as the host sends them: version 4, no options, a header
// checksum that verifies, a total length that matches, not a fragment;
// then it applies the checkers.
func InIPv4(checks ...Checker) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		h := ipv4(t, p)
		if h.Version != 4 || h.IHL != 5 {
			t.Errorf("IPv4 version %d IHL %d, want 4 and 5", h.Version, h.IHL)
		}
		if got := sum(h.Contents); got != 0xffff {
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

// Addrs checks the IPv4 source and destination.
func Addrs(src, dst netip.Addr) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		h := ipv4(t, p)
		if !bytes.Equal(h.SrcIP.To4(), src.AsSlice()) || !bytes.Equal(h.DstIP.To4(), dst.AsSlice()) {
			t.Errorf("IPv4 %v -> %v, want %v -> %v", h.SrcIP, h.DstIP, src, dst)
		}
	}
}

// Src checks the IPv4 source.
func Src(a netip.Addr) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if h := ipv4(t, p); !bytes.Equal(h.SrcIP.To4(), a.AsSlice()) {
			t.Errorf("IPv4 source %v, want %v", h.SrcIP, a)
		}
	}
}

// Dst checks the IPv4 destination.
func Dst(a netip.Addr) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if h := ipv4(t, p); !bytes.Equal(h.DstIP.To4(), a.AsSlice()) {
			t.Errorf("IPv4 destination %v, want %v", h.DstIP, a)
		}
	}
}

// TTL checks the IPv4 TTL.
func TTL(want uint8) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if h := ipv4(t, p); h.TTL != want {
			t.Errorf("TTL %d, want %d", h.TTL, want)
		}
	}
}

// DontFragment checks that the IPv4 header has DF set.
func DontFragment() Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if h := ipv4(t, p); h.Flags&layers.IPv4DontFragment == 0 {
			t.Errorf("IPv4 flags %v, want DF", h.Flags)
		}
	}
}

// Protocol checks the IPv4 protocol number (proto.TCP, ...).
func Protocol(want uint8) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if h := ipv4(t, p); uint8(h.Protocol) != want {
			t.Errorf("protocol %v, want %v", h.Protocol, layers.IPProtocol(want))
		}
	}
}

// IPPayload checks the bytes the IPv4 packet carries.
func IPPayload(want []byte) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if h := ipv4(t, p); !bytes.Equal(h.Payload, want) {
			t.Errorf("IPv4 payload of %d bytes\n% x\nwant %d bytes\n% x", len(h.Payload), h.Payload, len(want), want)
		}
	}
}

// ICMP checks that the packet carries an ICMP message whose checksum
// verifies, of type typ and code, and applies the checkers.
func ICMP(typ, code uint8, checks ...Checker) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		m, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if m == nil {
			t.Fatal("no ICMP message")
		}
		if got := sum(append(bytes.Clone(m.Contents), m.Payload...)); got != 0xffff {
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

// Echo checks an ICMP echo's identifier, sequence number and data.
func Echo(id, seq uint16, data []byte) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		m, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if m == nil {
			t.Fatal("no ICMP message")
		}
		if m.Id != id || m.Seq != seq || !bytes.Equal(m.Payload, data) {
			t.Errorf("echo id %d seq %d with %d bytes, want id %d seq %d with %d", m.Id, m.Seq, len(m.Payload), id, seq, len(data))
		}
	}
}

// Quotes checks an ICMP error's body: 4 unused bytes, then quote.
func Quotes(quote []byte) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		m, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if m == nil {
			t.Fatal("no ICMP message")
		}
		body := append(bytes.Clone(m.Contents[4:]), m.Payload...)
		if len(body) < 4 || !bytes.Equal(body[:4], make([]byte, 4)) || !bytes.Equal(body[4:], quote) {
			t.Errorf("ICMP error body\n% x\nwant 4 zeros, then\n% x", body, quote)
		}
	}
}

// transport checks the checksum of the packet's transport segment over the
// IPv4 pseudo-header.
func transport(t testing.TB, p gopacket.Packet, name string) {
	t.Helper()
	h := ipv4(t, p)
	if got := checksum.Pseudo(uint8(h.Protocol), addr(h.SrcIP.To4()), addr(h.DstIP.To4()), h.Payload); got != 0 {
		t.Errorf("%s checksum does not verify (sums to %#04x)", name, got)
	}
}

// tcpLayer returns the packet's TCP header, failing t when it has none or
// it does not decode.
func tcpLayer(t testing.TB, p gopacket.Packet) *layers.TCP {
	t.Helper()
	s, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if s == nil || ipv4(t, p).Protocol != layers.IPProtocolTCP {
		t.Fatal("no TCP segment")
	}
	if n := len(ipv4(t, p).Payload); n < proto.TCPHeaderLen || int(s.DataOffset)*4 < proto.TCPHeaderLen || int(s.DataOffset)*4 > n {
		t.Fatalf("TCP header of %d bytes in a segment of %d", int(s.DataOffset)*4, n)
	}
	return s
}

// TCP checks that the packet carries a TCP segment whose checksum verifies
// and applies the checkers.
func TCP(checks ...Checker) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		tcpLayer(t, p)
		transport(t, p, "TCP")
		for _, c := range checks {
			c(t, p)
		}
	}
}

// TCP flags, as Flags takes them: the header's byte 13.
const (
	FIN = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
)

// Flags checks the TCP flags: exactly want (FIN, SYN, RST, PSH, ACK, URG
// bits).
func Flags(want uint8) Checker { return FlagsMasked(want, 0xff) }

// FlagsMasked checks the TCP flags under mask against want.
func FlagsMasked(want, mask uint8) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if got := tcpFlags(tcpLayer(t, p)); got&mask != want&mask {
			t.Errorf("TCP flags %06b (mask %06b), want %06b", got&mask, mask, want&mask)
		}
	}
}

// tcpFlags returns the header's flags byte.
func tcpFlags(s *layers.TCP) uint8 {
	var f uint8
	for _, b := range []struct {
		on  bool
		bit uint8
	}{{s.FIN, FIN}, {s.SYN, SYN}, {s.RST, RST}, {s.PSH, PSH}, {s.ACK, ACK}, {s.URG, URG}} {
		if b.on {
			f |= b.bit
		}
	}
	return f
}

// SrcPort checks the TCP or UDP source port.
func SrcPort(want uint16) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if got, ok := ports(t, p); ok && got[0] != want {
			t.Errorf("source port %d, want %d", got[0], want)
		}
	}
}

// DstPort checks the TCP or UDP destination port.
func DstPort(want uint16) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if got, ok := ports(t, p); ok && got[1] != want {
			t.Errorf("destination port %d, want %d", got[1], want)
		}
	}
}

// ports returns the transport's source and destination ports.
func ports(t testing.TB, p gopacket.Packet) ([2]uint16, bool) {
	t.Helper()
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		return [2]uint16{uint16(l.SrcPort), uint16(l.DstPort)}, true
	case *layers.UDP:
		return [2]uint16{uint16(l.SrcPort), uint16(l.DstPort)}, true
	}
	t.Fatal("no TCP or UDP header")
	return [2]uint16{}, false
}

// SeqNum checks the TCP sequence number.
func SeqNum(want uint32) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if s := tcpLayer(t, p); s.Seq != want {
			t.Errorf("TCP sequence number %d, want %d", s.Seq, want)
		}
	}
}

// AckNum checks the TCP acknowledgment number.
func AckNum(want uint32) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if s := tcpLayer(t, p); s.Ack != want {
			t.Errorf("TCP acknowledgment number %d, want %d", s.Ack, want)
		}
	}
}

// Window checks the TCP window field, unscaled.
func Window(want uint16) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		if s := tcpLayer(t, p); s.Window != want {
			t.Errorf("TCP window %d, want %d", s.Window, want)
		}
	}
}

// UDP checks that the packet carries a UDP datagram whose length field
// matches and whose checksum, when sent, verifies; then it applies the
// checkers.
func UDP(checks ...Checker) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if u == nil || len(ipv4(t, p).Payload) < proto.UDPHeaderLen {
			t.Fatal("no UDP datagram")
		}
		if int(u.Length) != len(u.Contents)+len(u.Payload) {
			t.Errorf("UDP length %d, header and payload %d", u.Length, len(u.Contents)+len(u.Payload))
		}
		if u.Checksum != 0 {
			transport(t, p, "UDP")
		}
		for _, c := range checks {
			c(t, p)
		}
	}
}

// Payload checks the bytes the TCP segment or UDP datagram carries.
func Payload(want []byte) Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		l := p.TransportLayer()
		if l == nil {
			t.Fatal("no TCP or UDP header")
		}
		if got := l.LayerPayload(); !bytes.Equal(got, want) {
			t.Errorf("payload %q, want %q", got, want)
		}
	}
}

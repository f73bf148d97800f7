package ip_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
)

// tcpPacket returns a TCP segment from src:sport to dst:dport with sequence
// number seq in an IPv4 packet.
func tcpPacket(t testing.TB, src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	t.Helper()
	h := ipv4Hdr(src, dst, layers.IPProtocolTCP)
	s := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: seq, SYN: true, Window: 1000}
	if err := s.SetNetworkLayerForChecksum(h); err != nil {
		t.Fatal(err)
	}
	return serialize(t, h, s)
}

// icmpErrorFrame returns an ICMP error of type typ and code from `from` to
// the host, in a frame from the gateway, quoting quote; rest is the
// header's second word (the next-hop MTU of a fragmentation needed).
func icmpErrorFrame(t testing.TB, from netip.Addr, typ, code uint8, rest uint32, quote []byte) []byte {
	t.Helper()
	return serialize(t, eth(gwMAC, hostMAC, layers.EthernetTypeIPv4), ipv4Hdr(from, host, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: uint16(rest >> 16), Seq: uint16(rest)},
		gopacket.Payload(quote))
}

func TestICMPErrorEvent(t *testing.T) {
	udpOut := udpPacket(t, host, peer, 5000, 53, pattern(0, 40, 1))
	tcpOut := tcpPacket(t, host, remote, 40000, 80, 0x01020304)
	withOpts := rawPacket(host, peer, proto.UDP, 24, 0, []byte{0x13, 0x88, 0, 53, 0, 8, 0, 0})
	tests := []struct {
		name  string
		from  netip.Addr
		typ   uint8
		code  uint8
		rest  uint32
		quote []byte
		want  ip.Event // Proto, Src, Dst, SrcPort, DstPort, Type, Code, MTU
	}{
		{"UDP port unreachable", peer, 3, proto.CodePortUnreachable, 0, udpOut[:28],
			ip.Event{Proto: proto.UDP, Src: host, Dst: peer, SrcPort: 5000, DstPort: 53, Type: 3, Code: 3}},
		{"whole quote", peer, 3, proto.CodePortUnreachable, 0, udpOut,
			ip.Event{Proto: proto.UDP, Src: host, Dst: peer, SrcPort: 5000, DstPort: 53, Type: 3, Code: 3}},
		{"TCP port unreachable", remote, 3, proto.CodePortUnreachable, 0, tcpOut[:28],
			ip.Event{Proto: proto.TCP, Src: host, Dst: remote, SrcPort: 40000, DstPort: 80, Type: 3, Code: 3}},
		{"TCP protocol unreachable", remote, 3, proto.CodeProtoUnreachable, 0, tcpOut[:28],
			ip.Event{Proto: proto.TCP, Src: host, Dst: remote, SrcPort: 40000, DstPort: 80, Type: 3, Code: 2}},
		{"TCP host unreachable from a router", gw, 3, proto.CodeHostUnreachable, 0, tcpOut[:28],
			ip.Event{Proto: proto.TCP, Src: host, Dst: remote, SrcPort: 40000, DstPort: 80, Type: 3, Code: 1}},
		{"TCP net unreachable", gw, 3, proto.CodeNetUnreachable, 0, tcpOut[:28],
			ip.Event{Proto: proto.TCP, Src: host, Dst: remote, SrcPort: 40000, DstPort: 80, Type: 3, Code: 0}},
		{"TCP administratively prohibited", gw, 3, proto.CodeAdminProhibited, 0, tcpOut[:28],
			ip.Event{Proto: proto.TCP, Src: host, Dst: remote, SrcPort: 40000, DstPort: 80, Type: 3, Code: 13}},
		{"TCP fragmentation needed", gw, 3, proto.CodeFragNeeded, 1400, tcpOut[:28],
			ip.Event{Proto: proto.TCP, Src: host, Dst: remote, SrcPort: 40000, DstPort: 80, Type: 3, Code: 4, MTU: 1400}},
		{"TCP time exceeded", gw, 11, 0, 0, tcpOut[:28],
			ip.Event{Proto: proto.TCP, Src: host, Dst: remote, SrcPort: 40000, DstPort: 80, Type: 11, Code: 0}},
		{"quote with options", peer, 3, proto.CodePortUnreachable, 0, withOpts,
			ip.Event{Proto: proto.UDP, Src: host, Dst: peer, SrcPort: 5000, DstPort: 53, Type: 3, Code: 3}},
		{"about our echo request", gw, 3, proto.CodeHostUnreachable, 0, rawPacket(host, remote, proto.ICMP, 20, 0, icmpMsg(8))[:28],
			ip.Event{Proto: proto.ICMP, Src: host, Dst: remote, Type: 3, Code: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			frame := icmpErrorFrame(t, tt.from, tt.typ, tt.code, tt.rest, tt.quote)
			s.FrameIn(t0, frame)
			ev := only(t, s.Out(), ip.ICMPError)
			ev.Kind = 0
			hl := int(tt.quote[0]&0xf) * 4
			if !bytes.Equal(ev.Quote, tt.quote[hl:]) {
				t.Errorf("Quote % x, want % x", ev.Quote, tt.quote[hl:])
			}
			if !bytes.Equal(ev.Packet, frame[14:]) || !bytes.Equal(ev.Payload, frame[34:]) {
				t.Errorf("Packet or Payload is not the ICMP packet or message")
			}
			if ev.From != tt.from {
				t.Errorf("From %v, want %v", ev.From, tt.from)
			}
			type fields struct {
				proto            uint8
				src, dst         netip.Addr
				srcPort, dstPort uint16
				typ, code        uint8
				mtu              uint16
			}
			f := func(e ip.Event) fields {
				return fields{e.Proto, e.Src, e.Dst, e.SrcPort, e.DstPort, e.Type, e.Code, e.MTU}
			}
			if f(ev) != f(tt.want) {
				t.Errorf("event %+v\nwant %+v", ev, tt.want)
			}
			checkDrops(t, s, nil)
			if st := s.Stats(); st.ICMPErrorsIn != 1 || st.PacketsDelivered != 0 {
				t.Errorf("Stats() = %+v", st)
			}
		})
	}
}

func TestICMPErrorEventRefused(t *testing.T) {
	udpOut := udpPacket(t, host, peer, 5000, 53, pattern(0, 40, 1))
	bad := func(f func(q []byte) []byte) []byte { return f(bytes.Clone(udpOut[:28])) }
	tests := []struct {
		name  string
		typ   uint8
		code  uint8
		quote []byte
	}{
		{"quote of header and 7 bytes", 3, 3, udpOut[:27]},
		{"quote of a header only", 3, 3, udpOut[:20]},
		{"empty quote", 3, 3, nil},
		{"quoted IHL 4", 3, 3, bad(func(q []byte) []byte { q[0] = 0x44; return q })},
		{"quoted IHL past the quote", 3, 3, bad(func(q []byte) []byte { q[0] = 0x47; return q })},
		{"quoted version 6", 3, 3, bad(func(q []byte) []byte { q[0] = 0x65; return q })},
		{"quoted source not ours", 3, 3, udpPacket(t, peer2, peer, 5000, 53, nil)},
		{"quoted source loopback from the wire", 3, 3, udpPacket(t, lo, peer, 5000, 53, nil)},
		{"quoted later fragment", 3, 3, rawPacket(host, peer, proto.UDP, 20, 0x0003, pattern(0, 8, 1))},
		{"unreachable code 16", 3, 16, udpOut[:28]},
		{"time exceeded code 2", 11, 2, udpOut[:28]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			s.FrameIn(t0, icmpErrorFrame(t, peer, tt.typ, tt.code, 0, tt.quote))
			ev := only(t, s.Out(), ip.Deliver) // as any ICMP message, for the server to ignore
			if ev.Proto != proto.ICMP {
				t.Errorf("Deliver of protocol %d", ev.Proto)
			}
			checkDrops(t, s, nil)
			if st := s.Stats(); st.ICMPErrorsIn != 0 || st.ICMPErrorsIgnored != 1 {
				t.Errorf("Stats() = %+v", st)
			}
		})
	}
}

package ip_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
)

func TestPing(t *testing.T) {
	for _, n := range []int{0, 1, 56, 1001, ip.MaxPayload - 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := newStack(t)
			resolve(t, s, t0, peerMAC, peer)
			data := pattern(0, n, 3)
			s.FrameIn(t0, echoFrame(t, peerMAC, peer, host, 0x4242, 7, data))
			ev := only(t, s.Out(), ip.FrameOut)
			checkFrame(t, ev.Frame,
				checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
				checker.InIPv4(checker.Addrs(host, peer), checker.TTL(64), checker.DontFragment(), checker.ICMP(0, 0, checker.Echo(0x4242, 7, data))))

			// Byte for byte what gopacket builds for the same reply, given
			// the IP ID the Stack chose.
			got := gopacket.NewPacket(ev.Frame, layers.LayerTypeEthernet, gopacket.Default)
			id := got.Layer(layers.LayerTypeIPv4).(*layers.IPv4).Id
			h := ipv4Hdr(host, peer, layers.IPProtocolICMPv4)
			h.Id, h.Flags = id, layers.IPv4DontFragment
			want := serialize(t, eth(hostMAC, peerMAC, layers.EthernetTypeIPv4), h,
				&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0), Id: 0x4242, Seq: 7},
				gopacket.Payload(data))
			if !bytes.Equal(ev.Frame, want) {
				t.Errorf("reply\n% x\nwant (gopacket)\n% x", ev.Frame, want)
			}
			if st := s.Stats(); st.EchoRepliesSent != 1 || st.PacketsDelivered != 0 {
				t.Errorf("Stats() = %+v", st)
			}
			checkDrops(t, s, nil)
		})
	}
}

func TestPingNonzeroCode(t *testing.T) {
	s := newStack(t)
	resolve(t, s, t0, peerMAC, peer)
	f := echoFrame(t, peerMAC, peer, host, 1, 2, []byte("data"))
	m := f[34:]
	m[1] = 5
	binary.BigEndian.PutUint16(m[2:], 0)
	binary.BigEndian.PutUint16(m[2:], inetSum(m[:8+4]))
	s.FrameIn(t0, f)
	ev := only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.InIPv4(checker.ICMP(0, 0, checker.Echo(1, 2, []byte("data")))))
}

func TestPingUnresolved(t *testing.T) {
	s := newStack(t)
	data := []byte("ping")
	s.FrameIn(t0, echoFrame(t, peerMAC, peer, host, 1, 1, data))
	ev := only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, bcast, layers.EthernetTypeARP),
		checker.ARP(layers.ARPRequest, hostMAC, host, [6]byte{}, peer))
	s.FrameIn(t0, arpReplyFrom(t, peerMAC, peer))
	ev = only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
		checker.InIPv4(checker.Addrs(host, peer), checker.ICMP(0, 0, checker.Echo(1, 1, data))))
}

func TestPingOffLink(t *testing.T) {
	s := newStack(t)
	resolve(t, s, t0, gwMAC, gw)
	s.FrameIn(t0, echoFrame(t, gwMAC, remote, host, 9, 9, nil))
	ev := only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, gwMAC, layers.EthernetTypeIPv4),
		checker.InIPv4(checker.Addrs(host, remote), checker.ICMP(0, 0, checker.Echo(9, 9, nil))))

	s = newStack(t, func(c *ip.Config) { c.Gateway = netip.Addr{} })
	s.FrameIn(t0, echoFrame(t, gwMAC, remote, host, 9, 9, nil))
	none(t, s.Out())
	checkDrops(t, s, map[string]uint64{"no-route": 1})
}

func TestICMPDelivered(t *testing.T) {
	tests := []struct {
		name string
		typ  layers.ICMPv4TypeCode
	}{
		{"echo reply", layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0)},
		{"port unreachable", layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort)},
		{"timestamp", layers.CreateICMPv4TypeCode(layers.ICMPv4TypeTimestampRequest, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			frame := serialize(t, eth(peerMAC, hostMAC, layers.EthernetTypeIPv4), ipv4Hdr(peer, host, layers.IPProtocolICMPv4),
				&layers.ICMPv4{TypeCode: tt.typ, Id: 1, Seq: 2}, gopacket.Payload("0123456789"))
			s.FrameIn(t0, frame)
			ev := only(t, s.Out(), ip.Deliver)
			if ev.Proto != proto.ICMP || ev.Src != peer || ev.Dst != host || !bytes.Equal(ev.Payload, frame[34:34+18]) {
				t.Errorf("Deliver proto %d %v -> %v payload % x", ev.Proto, ev.Src, ev.Dst, ev.Payload)
			}
			checkDrops(t, s, nil)
		})
	}
}

func TestPingLoopback(t *testing.T) {
	for _, dst := range []netip.Addr{lo, host} {
		t.Run(dst.String(), func(t *testing.T) {
			s := newStack(t)
			req := serialize(t, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 5, Seq: 6},
				gopacket.Payload("loop"))
			if err := s.Send(t0, proto.ICMP, netip.Addr{}, dst, req); err != nil {
				t.Fatal(err)
			}
			ev := only(t, s.Out(), ip.Deliver)
			if ev.Proto != proto.ICMP || ev.Src != dst || ev.Dst != dst {
				t.Errorf("Deliver proto %d %v -> %v", ev.Proto, ev.Src, ev.Dst)
			}
			checkPacket(t, ev.Packet, checker.InIPv4(checker.Addrs(dst, dst), checker.ICMP(0, 0, checker.Echo(5, 6, []byte("loop")))))
			if st := s.Stats(); st.EchoRepliesSent != 1 || st.LoopbackPackets != 2 || st.FramesOut != 0 {
				t.Errorf("Stats() = %+v", st)
			}
		})
	}
}

// rawPacket returns an IPv4 packet with the given header fields, a header
// of hlen bytes, and payload, with a correct header checksum.
func rawPacket(src, dst netip.Addr, proto uint8, hlen int, fragOff uint16, payload []byte) []byte {
	p := make([]byte, hlen+len(payload))
	p[0] = 0x40 | byte(hlen/4)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], 77)
	binary.BigEndian.PutUint16(p[6:], fragOff)
	p[8], p[9] = 64, proto
	copy(p[12:], src.AsSlice())
	copy(p[16:], dst.AsSlice())
	for i := 20; i < hlen; i++ {
		p[i] = 1 // NOP options
	}
	binary.BigEndian.PutUint16(p[10:], inetSum(p[:hlen]))
	copy(p[hlen:], payload)
	return p
}

// icmpMsg returns an ICMP message of type typ with a correct checksum.
func icmpMsg(typ uint8) []byte {
	m := []byte{typ, 0, 0, 0, 0, 0, 0, 0, 'x', 'y'}
	binary.BigEndian.PutUint16(m[2:], inetSum(m))
	return m
}

func TestUnreachable(t *testing.T) {
	udp100 := udpPacket(t, peer, host, 5000, 9, pattern(0, 92, 1))
	tests := []struct {
		name   string
		orig   []byte
		code   uint8
		dstMAC [6]byte
		to     netip.Addr
		quote  []byte // what the error quotes; nil when none is sent
		reason string // the drop counted, if any
	}{
		{name: "port", orig: udp100, code: 3, dstMAC: peerMAC, to: peer, quote: udp100[:28]},
		{name: "protocol", orig: udp100, code: 2, dstMAC: peerMAC, to: peer, quote: udp100[:28]},
		{name: "short payload", orig: rawPacket(peer, host, 17, 20, 0, []byte{1, 2, 3, 4}), code: 3, dstMAC: peerMAC, to: peer,
			quote: rawPacket(peer, host, 17, 20, 0, []byte{1, 2, 3, 4})},
		{name: "options", orig: rawPacket(peer, host, 17, 24, 0, pattern(0, 20, 1)), code: 3, dstMAC: peerMAC, to: peer,
			quote: rawPacket(peer, host, 17, 24, 0, pattern(0, 20, 1))[:32]},
		{name: "trailing bytes", orig: append(bytes.Clone(udp100), 0xee, 0xee), code: 3, dstMAC: peerMAC, to: peer, quote: udp100[:28]},
		{name: "header only", orig: rawPacket(peer, host, 17, 20, 0, nil), code: 3, dstMAC: peerMAC, to: peer,
			quote: rawPacket(peer, host, 17, 20, 0, nil)},
		{name: "off-link", orig: udpPacket(t, remote, host, 1, 2, nil), code: 3, dstMAC: gwMAC, to: remote,
			quote: udpPacket(t, remote, host, 1, 2, nil)},
		{name: "to loopback from a peer", orig: udpPacket(t, peer, lo, 1, 2, nil), code: 3, dstMAC: peerMAC, to: peer,
			quote: udpPacket(t, peer, lo, 1, 2, nil)}, // never from 127.0.0.1 on the wire
		{name: "about an echo request", orig: rawPacket(peer, host, 1, 20, 0, icmpMsg(8)), code: 2, dstMAC: peerMAC, to: peer,
			quote: rawPacket(peer, host, 1, 20, 0, icmpMsg(8))[:28]},
		{name: "first fragment", orig: rawPacket(peer, host, 17, 20, 0x2000, pattern(0, 16, 1)), code: 3, dstMAC: peerMAC, to: peer,
			quote: rawPacket(peer, host, 17, 20, 0x2000, pattern(0, 16, 1))[:28]},

		{name: "about an unreachable", orig: rawPacket(peer, host, 1, 20, 0, icmpMsg(3)), reason: "icmp-error-suppressed"},
		{name: "about a redirect", orig: rawPacket(peer, host, 1, 20, 0, icmpMsg(5)), reason: "icmp-error-suppressed"},
		{name: "about a time exceeded", orig: rawPacket(peer, host, 1, 20, 0, icmpMsg(11)), reason: "icmp-error-suppressed"},
		{name: "about an unknown ICMP type", orig: rawPacket(peer, host, 1, 20, 0, icmpMsg(42)), reason: "icmp-error-suppressed"},
		{name: "about ICMP without a header", orig: rawPacket(peer, host, 1, 20, 0, nil), reason: "icmp-error-suppressed"},
		{name: "to subnet broadcast", orig: udpPacket(t, peer, subnetBC, 1, 2, nil), reason: "icmp-error-suppressed"},
		{name: "to limited broadcast", orig: udpPacket(t, peer, allBC, 1, 2, nil), reason: "icmp-error-suppressed"},
		{name: "to multicast", orig: udpPacket(t, peer, netip.MustParseAddr("224.0.0.251"), 1, 2, nil), reason: "icmp-error-suppressed"},
		{name: "from broadcast", orig: udpPacket(t, subnetBC, host, 1, 2, nil), reason: "icmp-error-suppressed"},
		{name: "from zero", orig: udpPacket(t, netip.IPv4Unspecified(), host, 1, 2, nil), reason: "icmp-error-suppressed"},
		{name: "from multicast", orig: udpPacket(t, netip.MustParseAddr("239.1.1.1"), host, 1, 2, nil), reason: "icmp-error-suppressed"},
		{name: "later fragment", orig: rawPacket(peer, host, 17, 20, 0x0003, pattern(24, 8, 1)), reason: "icmp-error-suppressed"},

		{name: "nothing", orig: nil, reason: "unreach-bad-packet"},
		{name: "19 bytes", orig: udp100[:19], reason: "unreach-bad-packet"},
		{name: "IPv6", orig: append([]byte{0x60}, udp100[1:]...), reason: "unreach-bad-packet"},
		{name: "IHL 4", orig: append([]byte{0x44}, udp100[1:]...), reason: "unreach-bad-packet"},
		{name: "IHL past the end", orig: append([]byte{0x4f}, udp100[1:40]...), reason: "unreach-bad-packet"},
		{name: "total length below header", orig: append(bytes.Clone(udp100[:2]), append([]byte{0, 10}, udp100[4:]...)...), reason: "unreach-bad-packet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			resolve(t, s, t0, peerMAC, peer)
			resolve(t, s, t0, gwMAC, gw)
			orig := bytes.Clone(tt.orig)
			s.Unreachable(t0, tt.orig, tt.code)
			if !bytes.Equal(orig, tt.orig) {
				t.Error("Unreachable changed orig")
			}
			evs := s.Out()
			if tt.quote == nil {
				none(t, evs)
				checkDrops(t, s, map[string]uint64{tt.reason: 1})
				return
			}
			ev := only(t, evs, ip.FrameOut)
			checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, tt.dstMAC, layers.EthernetTypeIPv4),
				checker.InIPv4(checker.Addrs(host, tt.to), checker.TTL(64), checker.ICMP(3, tt.code, checker.Quotes(tt.quote))))
			checkDrops(t, s, nil)
			if st := s.Stats(); st.ICMPErrorsSent != 1 {
				t.Errorf("Stats() = %+v", st)
			}
		})
	}
}

func TestUnreachableLoopback(t *testing.T) {
	s := newStack(t)
	seg := []byte{0x13, 0x88, 0, 9, 0, 12, 0, 0, 'd', 'a', 't', 'a'}
	if err := s.Send(t0, 17, netip.Addr{}, lo, seg); err != nil {
		t.Fatal(err)
	}
	ev := only(t, s.Out(), ip.Deliver)
	orig := bytes.Clone(ev.Packet)
	s.Unreachable(t0, ev.Packet, proto.CodePortUnreachable)
	// It comes back as an error for the sending transport.
	ev = only(t, s.Out(), ip.ICMPError)
	if ev.Proto != proto.UDP || ev.Src != lo || ev.Dst != lo || ev.SrcPort != 5000 || ev.DstPort != 9 || ev.From != lo ||
		ev.Type != 3 || ev.Code != proto.CodePortUnreachable {
		t.Errorf("ICMPError %+v", ev)
	}
	checkPacket(t, ev.Packet, checker.InIPv4(checker.Addrs(lo, lo), checker.ICMP(3, 3, checker.Quotes(orig[:28]))))

	// An error about that error is not sent.
	s.Unreachable(t0, ev.Packet, proto.CodePortUnreachable)
	none(t, s.Out())
	checkDrops(t, s, map[string]uint64{"icmp-error-suppressed": 1})
}

package pf_test

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/servers/pf"
	"github.com/newtsim/newtsim/servers/proto"
)

// ipv4 builds an IPv4 packet from src to dst carrying payload, with a
// 20-byte header, no fragmentation and a correct total length.
func ipv4(prot uint8, src, dst string, payload []byte) []byte {
	b := make([]byte, proto.IPv4HeaderLen+len(payload))
	b[0] = 4<<4 | 5
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 0x1234) // identification
	b[8] = 64                                 // TTL
	b[9] = prot
	a, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:16], a[:])
	copy(b[16:20], d[:])
	copy(b[proto.IPv4HeaderLen:], payload)
	return b
}

// withOptions returns p with n 4-byte words of IPv4 options (NOPs) added
// to its header.
func withOptions(p []byte, n int) []byte {
	hlen := int(p[0]&0x0f) * 4
	b := make([]byte, 0, len(p)+4*n)
	b = append(b, p[:hlen]...)
	for range 4 * n {
		b = append(b, 1) // NOP
	}
	b = append(b, p[hlen:]...)
	b[0] = 4<<4 | byte(hlen/4+n)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// fragment sets p's fragment offset (in 8-byte units) and more-fragments
// flag.
func fragment(p []byte, offset uint16, more bool) []byte {
	v := offset
	if more {
		v |= 0x2000
	}
	binary.BigEndian.PutUint16(p[6:], v)
	return p
}

// tcp builds a TCP header from sp to dp with opts 4-byte words of
// options, followed by data.
func tcp(sp, dp uint16, opts int, data []byte) []byte {
	b := make([]byte, proto.TCPHeaderLen+4*opts, proto.TCPHeaderLen+4*opts+len(data))
	binary.BigEndian.PutUint16(b[0:], sp)
	binary.BigEndian.PutUint16(b[2:], dp)
	b[12] = byte(5+opts) << 4
	b[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(b[14:], 65535)
	return append(b, data...)
}

// udp builds a UDP header from sp to dp followed by data.
func udp(sp, dp uint16, data []byte) []byte {
	b := make([]byte, proto.UDPHeaderLen, proto.UDPHeaderLen+len(data))
	binary.BigEndian.PutUint16(b[0:], sp)
	binary.BigEndian.PutUint16(b[2:], dp)
	binary.BigEndian.PutUint16(b[4:], uint16(proto.UDPHeaderLen+len(data)))
	return append(b, data...)
}

// icmpEcho builds an ICMP echo request.
func icmpEcho() []byte {
	return []byte{8, 0, 0, 0, 0, 1, 0, 1, 'p', 'i', 'n', 'g'}
}

// ether puts p in an Ethernet II frame of the given type.
func ether(etherType uint16, p []byte) []byte {
	b := make([]byte, proto.EthHeaderLen, proto.EthHeaderLen+len(p))
	copy(b[0:6], []byte{0x02, 0, 0, 0, 0, 1})
	copy(b[6:12], []byte{0x02, 0, 0, 0, 0, 2})
	binary.BigEndian.PutUint16(b[12:], etherType)
	return append(b, p...)
}

// pkt makes a Packet.
func pkt(dir pf.Direction, proto uint8, src string, sp uint16, dst string, dp uint16) pf.Packet {
	return pf.Packet{
		Dir: dir, Proto: proto,
		Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
		SrcPort: sp, DstPort: dp,
	}
}

// mustParse parses rules or fails the test.
func mustParse(t testing.TB, text string) *pf.Ruleset {
	t.Helper()
	rs, err := pf.Parse(strings.NewReader(text), "test.rules")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return rs
}

package pf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/newtsim/newtsim/servers/proto"
)

// Errors of Decode and DecodeFrame. Returned errors wrap them with the
// reason: test with errors.Is.
var (
	// ErrMalformed is a packet or frame too broken to judge.
	ErrMalformed = errors.New("pf: malformed packet")
	// ErrNotIPv4 is a well-formed Ethernet frame that carries no IPv4
	// packet (ARP, say): pf has no rules for it.
	ErrNotIPv4 = errors.New("pf: frame carries no IPv4")
)

const (
	offsetMask = 0x1fff // IPv4 fragment offset, in 8-byte units
)

// Decode returns the Packet that the IPv4 packet b (header and payload)
// is, travelling in direction dir. It trusts nothing in b: it refuses a
// packet shorter than an IPv4 header, a version other than 4, a header
// length below 20 bytes or past the end of b, a total length shorter than
// the header or past the end of b, and a first fragment (or unfragmented
// packet) of TCP or UDP whose header it does not hold whole, options
// included for TCP. The error wraps ErrMalformed and says which.
//
// Bytes past the total length (a link's padding) are ignored. The header
// checksum is not checked (ip does that) nor are the TCP and UDP ones.
//
// A fragment other than the first carries no TCP or UDP header: its ports
// are 0, so it matches only rules that give no ports. Its first fragment,
// which holds the ports, is judged by them; a first fragment too short to
// hold its transport header whole is malformed, which defeats the tiny
// fragment attack of RFC 1858.
func Decode(dir Direction, b []byte) (Packet, error) {
	if len(b) < proto.IPv4HeaderLen {
		return Packet{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte IPv4 header",
			ErrMalformed, len(b), proto.IPv4HeaderLen)
	}
	if v := b[0] >> 4; v != 4 {
		return Packet{}, fmt.Errorf("%w: IP version %d, not 4", ErrMalformed, v)
	}
	hlen := int(b[0]&0x0f) * 4
	if hlen < proto.IPv4HeaderLen {
		return Packet{}, fmt.Errorf("%w: header length %d bytes, below %d",
			ErrMalformed, hlen, proto.IPv4HeaderLen)
	}
	if hlen > len(b) {
		return Packet{}, fmt.Errorf("%w: header length %d bytes, past the end of the %d-byte packet",
			ErrMalformed, hlen, len(b))
	}
	total := int(binary.BigEndian.Uint16(b[2:]))
	if total < hlen {
		return Packet{}, fmt.Errorf("%w: total length %d, shorter than the %d-byte header",
			ErrMalformed, total, hlen)
	}
	if total > len(b) {
		return Packet{}, fmt.Errorf("%w: total length %d, past the end of the %d-byte packet",
			ErrMalformed, total, len(b))
	}
	p := Packet{
		Dir:   dir,
		Proto: b[9],
		Src:   netip.AddrFrom4([4]byte(b[12:16])),
		Dst:   netip.AddrFrom4([4]byte(b[16:20])),
	}
	if binary.BigEndian.Uint16(b[6:])&offsetMask != 0 {
		return p, nil // not the first fragment: no transport header
	}
	payload := b[hlen:total]
	switch p.Proto {
	case proto.TCP:
		if len(payload) < proto.TCPHeaderLen {
			return Packet{}, fmt.Errorf("%w: TCP header cut short: %d bytes, below %d",
				ErrMalformed, len(payload), proto.TCPHeaderLen)
		}
		off := int(payload[12]>>4) * 4
		if off < proto.TCPHeaderLen {
			return Packet{}, fmt.Errorf("%w: TCP data offset %d bytes, below %d",
				ErrMalformed, off, proto.TCPHeaderLen)
		}
		if off > len(payload) {
			return Packet{}, fmt.Errorf("%w: TCP header cut short: %d bytes of its %d",
				ErrMalformed, len(payload), off)
		}
	case proto.UDP:
		if len(payload) < proto.UDPHeaderLen {
			return Packet{}, fmt.Errorf("%w: UDP header cut short: %d bytes, below %d",
				ErrMalformed, len(payload), proto.UDPHeaderLen)
		}
	default:
		return p, nil
	}
	p.SrcPort = binary.BigEndian.Uint16(payload[0:])
	p.DstPort = binary.BigEndian.Uint16(payload[2:])
	return p, nil
}

// DecodeFrame returns the Packet that the Ethernet II frame (without its
// FCS) carries, travelling in direction dir. A frame shorter than an
// Ethernet header is malformed; a frame of another type than IPv4 returns
// an error wrapping ErrNotIPv4; the IPv4 packet is decoded as Decode does.
func DecodeFrame(dir Direction, frame []byte) (Packet, error) {
	if len(frame) < proto.EthHeaderLen {
		return Packet{}, fmt.Errorf("%w: frame of %d bytes, shorter than the %d-byte Ethernet header",
			ErrMalformed, len(frame), proto.EthHeaderLen)
	}
	if t := binary.BigEndian.Uint16(frame[12:]); t != proto.EtherTypeIPv4 {
		return Packet{}, fmt.Errorf("%w: EtherType %#04x", ErrNotIPv4, t)
	}
	return Decode(dir, frame[proto.EthHeaderLen:])
}

package udp

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// IP protocol numbers for PseudoChecksum.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// Checksum returns the UDP checksum (RFC 768) of segment, a UDP header and
// its payload, sent from src to dst: the ones' complement of the ones'
// complement sum (RFC 1071) of the IPv4 pseudo-header (src, dst, a zero
// byte, protocol 17, the UDP length len(segment)) and of segment, padded
// with a zero byte to an even length.
//
// The sum covers segment as it is. To fill in a header, zero its checksum
// field first and store the result, writing 0xffff for a computed 0 (RFC
// 768: a transmitted 0 means no checksum). To verify a received segment,
// compute over it with its checksum field in place: a correct one gives 0.
//
// Checksum is PseudoChecksum(ProtoUDP, src, dst, segment).
func Checksum(src, dst netip.Addr, segment []byte) uint16 {
	return PseudoChecksum(ProtoUDP, src, dst, segment)
}

// PseudoChecksum returns the Internet checksum of segment under the
// pseudo-header of the given IP protocol, as TCP (RFC 793) and UDP (RFC
// 768) define it: Checksum with another protocol number.
//
// Addresses are IPv4; an IPv6 address is summed with the IPv6 pseudo-header
// of RFC 8200, whose ones' complement sum has the same terms, and an
// IPv4-mapped IPv6 address gives the same result as the IPv4 address it
// maps. An invalid (zero) Addr contributes nothing.
func PseudoChecksum(proto uint8, src, dst netip.Addr, segment []byte) uint16 {
	s := addrSum(src) + addrSum(dst) + uint64(proto) + uint64(len(segment))
	return ^fold(sum(s, segment))
}

// addrSum returns an address's contribution to a ones' complement sum.
func addrSum(a netip.Addr) uint64 {
	switch {
	case a.Is4():
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:]))
	case a.Is6():
		b := a.As16()
		return uint64(binary.BigEndian.Uint32(b[0:])) + uint64(binary.BigEndian.Uint32(b[4:])) +
			uint64(binary.BigEndian.Uint32(b[8:])) + uint64(binary.BigEndian.Uint32(b[12:]))
	}
	return 0
}

// sum adds b, as big-endian 16-bit words with an odd last byte padded by a
// zero, to the ones' complement sum s. It adds 64 bits at a time: since
// 2^16 = 1 modulo 2^16-1, a 64-bit word is congruent to the sum of its four
// 16-bit words, and a carry out of bit 63 is added back in (end-around
// carry). The result is congruent to the 16-bit sum; fold reduces it.
func sum(s uint64, b []byte) uint64 {
	var carry uint64
	for len(b) >= 32 {
		s, carry = bits.Add64(s, binary.BigEndian.Uint64(b[0:]), carry)
		s, carry = bits.Add64(s, binary.BigEndian.Uint64(b[8:]), carry)
		s, carry = bits.Add64(s, binary.BigEndian.Uint64(b[16:]), carry)
		s, carry = bits.Add64(s, binary.BigEndian.Uint64(b[24:]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		s, carry = bits.Add64(s, binary.BigEndian.Uint64(b), carry)
		b = b[8:]
	}
	if len(b) >= 4 {
		s, carry = bits.Add64(s, uint64(binary.BigEndian.Uint32(b)), carry)
		b = b[4:]
	}
	if len(b) >= 2 {
		s, carry = bits.Add64(s, uint64(binary.BigEndian.Uint16(b)), carry)
		b = b[2:]
	}
	if len(b) == 1 {
		s, carry = bits.Add64(s, uint64(b[0])<<8, carry)
	}
	s, carry = bits.Add64(s, carry, 0)
	return s + carry // s is 0 when carry is 1: no second overflow
}

// fold reduces a ones' complement sum to 16 bits. Like the 16-bit
// arithmetic it stands for, it gives 0 only for a sum of zeros, and 0xffff
// for any other multiple of 0xffff.
func fold(s uint64) uint16 {
	s = s>>32 + s&0xffffffff
	s = s>>32 + s&0xffffffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}

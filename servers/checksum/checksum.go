// Package checksum is the Internet checksum (RFC 1071) that IPv4, ICMP,
// UDP and TCP share: a ones' complement sum of 16-bit words, computed 64
// bits at a time, its incremental update (RFC 1624), and the pseudo-header
// checksum of the transports (RFC 768, RFC 9293).
package checksum

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Of returns the Internet checksum of b: the ones' complement of the ones'
// complement sum of b's 16-bit words. Over data whose checksum field is in
// place and correct, it is 0.
func Of(b []byte) uint16 { return ^Fold(Sum(0, b)) }

// Pseudo returns the checksum of segment under the IPv4 pseudo-header of
// the given IP protocol (src, dst, a zero byte, proto, len(segment)), as TCP
// and UDP define it. An IPv6 address is summed with the IPv6 pseudo-header
// of RFC 8200, whose sum has the same terms; an IPv4-mapped IPv6 address
// gives the same result as the IPv4 address it maps; an invalid Addr
// contributes nothing.
func Pseudo(proto uint8, src, dst netip.Addr, segment []byte) uint16 {
	s := addrSum(src) + addrSum(dst) + uint64(proto) + uint64(len(segment))
	return ^Fold(Sum(s, segment))
}

// Update returns the checksum hc of a message after one of its 16-bit
// words changes from old to new, without summing the message again (RFC
// 1624, equation 3: HC' = ~(~HC + ~m + m')).
func Update(hc, old, new uint16) uint16 {
	return ^Fold(uint64(^hc) + uint64(^old) + uint64(new))
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

// Sum adds b, as big-endian 16-bit words with an odd last byte padded by a
// zero, to the ones' complement sum s. It adds 64 bits at a time: since
// 2^16 = 1 modulo 2^16-1, a 64-bit word is congruent to the sum of its four
// 16-bit words, and a carry out of bit 63 is added back in (end-around
// carry). The result is congruent to the 16-bit sum; Fold reduces it.
func Sum(s uint64, b []byte) uint64 {
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

// Fold reduces a ones' complement sum to 16 bits. Like the 16-bit
// arithmetic it stands for, it gives 0 only for a sum of zeros, and 0xffff
// for any other multiple of 0xffff.
func Fold(s uint64) uint16 {
	s = s>>32 + s&0xffffffff
	s = s>>32 + s&0xffffffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}

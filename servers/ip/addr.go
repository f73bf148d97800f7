package ip

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
)

// Addresses are kept as big-endian uint32s inside the Stack: they hash and
// compare faster than netip.Addr, and the wire holds them that way.

// addrU32 returns an IPv4 address as a uint32.
func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// unicast reports whether a can name a single host: not in 0.0.0.0/8 ("this
// network"), 224.0.0.0/4 (multicast) or 240.0.0.0/4 (reserved, and the
// limited broadcast). Loopback addresses are unicast here.
func unicast(a uint32) bool {
	first := a >> 24
	return first != 0 && first < 224
}

// multicast reports whether a is in 224.0.0.0/4.
func multicast(a uint32) bool { return a>>28 == 0xe }

// loopback reports whether a is in 127.0.0.0/8.
func loopback(a uint32) bool { return a>>24 == loopbackFirst }

// subnet is the host's on-link subnet.
type subnet struct {
	network, mask uint32
	bits          int
}

// newSubnet returns p's subnet.
func newSubnet(p netip.Prefix) subnet {
	mask := ^uint32(0) << (32 - p.Bits()) // Validate keeps Bits in 8..32
	return subnet{network: addrU32(p.Addr()) & mask, mask: mask, bits: p.Bits()}
}

// contains reports whether a is on-link.
func (n subnet) contains(a uint32) bool { return a&n.mask == n.network }

// broadcast reports whether a is the subnet's directed broadcast address.
// A /31 or /32 has none (RFC 3021).
func (n subnet) broadcast(a uint32) bool {
	return n.bits <= 30 && a == n.network|^n.mask
}

// isBroadcast reports whether a is the limited broadcast or the subnet's
// broadcast address.
func (s *Stack) isBroadcast(a uint32) bool {
	return a == broadcastAll || s.subnet.broadcast(a)
}

// isLocal reports whether a packet to a stays in the host: the host's
// address or 127.0.0.0/8.
func (s *Stack) isLocal(a uint32) bool { return a == s.addr || loopback(a) }

// macString formats a MAC address.
func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// checksum returns the Internet checksum (RFC 1071) of b: the ones'
// complement of the ones' complement sum of its 16-bit words. Over a
// header or message with its checksum field in place, a correct one gives
// 0.
func checksum(b []byte) uint16 { return ^fold(sum(0, b)) }

// sum adds b, as big-endian 16-bit words with an odd last byte padded by a
// zero, to the ones' complement sum s. It adds 64 bits at a time: since
// 2^16 = 1 modulo 2^16-1, a 64-bit word is congruent to the sum of its four
// 16-bit words, and a carry out of bit 63 is added back in.
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

// fold reduces a ones' complement sum to 16 bits.
func fold(s uint64) uint16 {
	s = s>>32 + s&0xffffffff
	s = s>>32 + s&0xffffffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}

// checksumUpdate returns the checksum hc of a message after one of its
// 16-bit words changes from old to new, without summing the message again
// (RFC 1624, equation 3: HC' = ~(~HC + ~m + m')).
func checksumUpdate(hc, old, new uint16) uint16 {
	s := uint64(^hc) + uint64(^old) + uint64(new)
	return ^fold(s)
}

package ip

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Addresses are kept as big-endian uint32s inside the Stack: they hash and
// compare faster than netip.Addr, and the wire holds them that way.

// addrU32 returns an IPv4 address as a uint32.
func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// u32Addr returns a uint32 as an IPv4 address.
func u32Addr(a uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a)
	return netip.AddrFrom4(b)
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

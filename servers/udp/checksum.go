package udp

import (
	"net/netip"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
)

// Checksum returns the UDP checksum (RFC 768) of segment, a UDP header and
// its payload, sent from src to dst: the Internet checksum of the IPv4
// pseudo-header and of segment (checksum.Pseudo with protocol 17).
//
// The sum covers segment as it is. To fill in a header, zero its checksum
// field first and store the result, writing 0xffff for a computed 0 (RFC
// 768: a transmitted 0 means no checksum). To verify a received segment,
// compute over it with its checksum field in place: a correct one gives 0.
func Checksum(src, dst netip.Addr, segment []byte) uint16 {
	return checksum.Pseudo(proto.UDP, src, dst, segment)
}

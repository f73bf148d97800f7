package tcp

import (
	"net/netip"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
)

func checksumPseudo(src, dst netip.Addr, b []byte) uint16 {
	return checksum.Pseudo(proto.TCP, src, dst, b)
}

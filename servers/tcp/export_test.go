package tcp

import (
	"net/netip"

	"github.com/newtsim/newtsim/servers/checksum"
)

func checksumPseudo(src, dst netip.Addr, b []byte) uint16 {
	return checksum.Pseudo(ProtoTCP, src, dst, b)
}

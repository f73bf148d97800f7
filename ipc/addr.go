package ipc

import "net/netip"

// IPv4 addresses travel in messages as one word each: the address's four
// bytes in network order in the low 32 bits. A port, where one goes with
// it, takes the next word. This is the one packing every message uses.

// PackAddr packs an IPv4 address (or an IPv4-mapped IPv6 one) into a word;
// anything else, such as the zero Addr of an unbound socket, packs as 0.
func PackAddr(a netip.Addr) uint64 {
	a = a.Unmap()
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// UnpackAddr unpacks a word packed by PackAddr; bits above the low 32 are
// ignored.
func UnpackAddr(w uint64) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w)})
}

// PackAddrPort packs an address and port into two words.
func PackAddrPort(a netip.AddrPort) (addr, port uint64) {
	return PackAddr(a.Addr()), uint64(a.Port())
}

// UnpackAddrPort unpacks two words packed by PackAddrPort.
func UnpackAddrPort(addr, port uint64) netip.AddrPort {
	return netip.AddrPortFrom(UnpackAddr(addr), uint16(port))
}

// Package proto holds the numbers the protocol engines share on the wire:
// IP protocol numbers (the IPv4 header's protocol field, RFC 790 and the
// IANA registry), ICMP types and codes, and EtherTypes. Each is defined here and nowhere else, so
// that ip, tcp, udp, pf and the servers around them agree on one value.
//
// The constants are untyped, as syscall's IPPROTO_* are, so that they fit a
// uint8 header field and an int rule field alike.
package proto

// IP protocol numbers.
const (
	ICMP = 1  // Internet Control Message Protocol, RFC 792
	TCP  = 6  // Transmission Control Protocol, RFC 9293
	UDP  = 17 // User Datagram Protocol, RFC 768
)

// ICMP (RFC 792) message types.
const (
	ICMPEchoReply    = 0
	ICMPDestUnreach  = 3
	ICMPEcho         = 8
	ICMPTimeExceeded = 11
)

// Destination unreachable codes (RFC 792, RFC 1122, RFC 1812) that more
// than one engine names: ip makes them, tcp and udp hear them.
const (
	CodeNetUnreachable   = 0
	CodeHostUnreachable  = 1
	CodeProtoUnreachable = 2  // a protocol no transport handles
	CodePortUnreachable  = 3  // a UDP datagram no socket wants
	CodeFragNeeded       = 4  // fragmentation needed and DF set; the next-hop MTU follows (RFC 1191)
	CodeAdminProhibited  = 13 // communication administratively prohibited (RFC 1812)
)

// EtherTypes: the Ethernet II header's type field.
const (
	EtherTypeIPv4 = 0x0800 // IPv4, RFC 894
	EtherTypeARP  = 0x0806 // ARP, RFC 826
)

// Header sizes, in bytes, without options.
const (
	EthHeaderLen  = 14 // Ethernet II: two addresses and the type
	IPv4HeaderLen = 20 // IPv4
	TCPHeaderLen  = 20 // TCP
	UDPHeaderLen  = 8  // UDP
)

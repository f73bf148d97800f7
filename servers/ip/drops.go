package ip

// A reason is why the Stack dropped a frame or a packet; Drops counts each.
type reason uint8

// Drop reasons, in the order a frame meets them. docs/IP.md explains each.
const (
	// Ethernet.
	dropShortFrame   reason = iota // shorter than an Ethernet header
	dropNotOurMAC                  // destination MAC neither ours nor broadcast
	dropBadSrcMAC                  // source MAC a group address
	dropBadEtherType               // neither IPv4 nor ARP
	// ARP.
	dropBadARP          // malformed ARP packet or impossible sender
	dropARPNotForUs     // well-formed, but its target is another host
	dropARPConflict     // a sender claims our address
	dropARPHoldOverflow // a packet beyond ARPHold for an unresolved address
	dropARPUnresolved   // a held packet whose address never resolved
	dropARPCacheFull    // a packet for a new address with the cache full of pending entries
	// IPv4.
	dropShortPacket  // shorter than an IPv4 header
	dropBadVersion   // version not 4
	dropBadIHL       // IHL below 5 or past the packet
	dropBadLength    // total length below the header or past the frame
	dropBadChecksum  // header checksum does not verify
	dropBadSrcAddr   // source not a unicast address of another host
	dropNotForUs     // destination not ours, loopback, or a broadcast
	dropUnknownProto // a protocol with no transport: answered with protocol unreachable
	// Reassembly.
	dropBadFragment       // a non-last fragment not a multiple of 8 bytes, or empty
	dropReasmDuplicate    // a fragment already held, byte for byte the same range
	dropReasmOverlap      // fragments overlap: the datagram is dropped
	dropReasmInconsistent // fragments disagree on the datagram's end: the datagram is dropped
	dropReasmTooBig       // the datagram would exceed 65535 bytes
	dropReasmTimeout      // a datagram not complete in ReasmTimeout
	dropReasmOverflow     // a datagram dropped to keep within ReasmMaxBytes
	// ICMP.
	dropBadICMP         // shorter than an ICMP header
	dropBadICMPChecksum // ICMP checksum does not verify
	dropEchoBroadcast   // echo request to a broadcast address, ignored
	// Output.
	dropNoRoute    // a reply or error the Stack made has no route
	dropFragNeeded // a datagram sent with DF (SendDF) that does not fit the MTU
	dropBadSegSize // a segment for the NIC to cut (SendSegmented) that it could not
	// Unreachable.
	dropUnreachBadPacket // Unreachable given something that is not an IPv4 packet
	dropErrorSuppressed  // an ICMP error not sent, by RFC 1122's rules
	dropRateGlobal       // an ICMP error not sent: the host's rate limit
	dropRateHost         // an ICMP error not sent: its destination's rate limit
	numReasons
)

// reasonNames are the keys of Drops, by reason.
var reasonNames = [numReasons]string{
	dropShortFrame:        "short-frame",
	dropNotOurMAC:         "not-our-mac",
	dropBadSrcMAC:         "bad-src-mac",
	dropBadEtherType:      "bad-ethertype",
	dropBadARP:            "bad-arp",
	dropARPNotForUs:       "arp-not-for-us",
	dropARPConflict:       "arp-conflict",
	dropARPHoldOverflow:   "arp-hold-overflow",
	dropARPUnresolved:     "arp-unresolved",
	dropARPCacheFull:      "arp-cache-full",
	dropShortPacket:       "short-packet",
	dropBadVersion:        "bad-ip-version",
	dropBadIHL:            "bad-ihl",
	dropBadLength:         "bad-length",
	dropBadChecksum:       "bad-checksum",
	dropBadSrcAddr:        "bad-src-addr",
	dropNotForUs:          "not-for-us",
	dropUnknownProto:      "unknown-protocol",
	dropBadFragment:       "bad-fragment",
	dropReasmDuplicate:    "reasm-duplicate",
	dropReasmOverlap:      "reasm-overlap",
	dropReasmInconsistent: "reasm-inconsistent",
	dropReasmTooBig:       "reasm-too-big",
	dropReasmTimeout:      "reasm-timeout",
	dropReasmOverflow:     "reasm-overflow",
	dropBadICMP:           "bad-icmp",
	dropBadICMPChecksum:   "bad-icmp-checksum",
	dropEchoBroadcast:     "echo-broadcast",
	dropNoRoute:           "no-route",
	dropFragNeeded:        "frag-needed",
	dropBadSegSize:        "bad-seg-size",
	dropUnreachBadPacket:  "unreach-bad-packet",
	dropErrorSuppressed:   "icmp-error-suppressed",
	dropRateGlobal:        "icmp-ratelimit-global",
	dropRateHost:          "icmp-ratelimit-host",
}

// Reasons returns every key Drops uses, in the order a frame meets them.
func Reasons() []string {
	return append([]string(nil), reasonNames[:]...)
}

// Drops returns how many frames and packets the Stack dropped, by reason
// (see Reasons and docs/IP.md). Every key is present. The map is a copy.
func (s *Stack) Drops() map[string]uint64 {
	m := make(map[string]uint64, numReasons)
	for r, n := range s.drops {
		m[reasonNames[r]] = n
	}
	return m
}

// drop counts one drop for r.
func (s *Stack) drop(r reason) { s.drops[r]++ }

// dropN counts n drops for r.
func (s *Stack) dropN(r reason, n int) { s.drops[r] += uint64(n) }

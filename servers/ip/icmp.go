package ip

import (
	"encoding/binary"
	"time"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
)

// ICMP (RFC 792) message types and codes the Stack makes or answers.
const (
	icmpHeaderLen    = 8
	icmpEchoReply    = 0
	icmpDestUnreach  = 3
	icmpEcho         = 8
	icmpTimeExceeded = 11
	// CodePortUnreachable is the destination unreachable code for a UDP
	// datagram no socket wants (RFC 792); CodeProtoUnreachable for a
	// protocol no transport handles.
	CodeProtoUnreachable = 2
	CodePortUnreachable  = 3
	codeReasmTimeout     = 1 // time exceeded: fragment reassembly
	icmpQuoteData        = 8 // bytes of the original payload an error quotes
	maxQuote             = 60 + icmpQuoteData
)

// icmpIn handles an ICMP message for the host: an echo request is
// answered; anything else is delivered for the server to pass on or
// ignore.
func (s *Stack) icmpIn(now time.Time, pkt []byte, hlen int) {
	m := pkt[hlen:]
	if len(m) < icmpHeaderLen {
		s.drop(dropBadICMP)
		return
	}
	if checksum.Of(m) != 0 {
		s.drop(dropBadICMPChecksum)
		return
	}
	if m[0] != icmpEcho {
		s.deliver(pkt, hlen)
		return
	}
	src := binary.BigEndian.Uint32(pkt[12:])
	dst := binary.BigEndian.Uint32(pkt[16:])
	if s.isBroadcast(dst) { // RFC 1122 3.2.2.6 allows it; Linux's default
		s.drop(dropEchoBroadcast)
		return
	}
	s.echoReply(now, src, dst, m)
}

// echoReply answers the echo request req from src to dst with the same
// identifier, sequence number and data (RFC 792). IP options of the
// request are not reflected.
func (s *Stack) echoReply(now time.Time, src, dst uint32, req []byte) {
	if !s.canRoute(src) {
		s.drop(dropNoRoute)
		return
	}
	if !s.isLocal(src) && len(req) > MaxPayload {
		s.drop(dropReplyTooBig)
		return
	}
	frame, pkt := s.makePacket(src, len(req))
	m := pkt[HeaderLen:]
	copy(m, req)
	old := binary.BigEndian.Uint16(m[0:])
	m[0], m[1] = icmpEchoReply, 0
	// Only the type and code change: update the checksum rather than sum
	// the data again.
	binary.BigEndian.PutUint16(m[2:], checksum.Update(binary.BigEndian.Uint16(m[2:]), old, 0))
	s.putIPv4(now, pkt, proto.ICMP, dst, src)
	s.stats.EchoRepliesSent++
	s.sendPacket(now, frame, pkt, src)
}

// Unreachable sends an ICMP destination unreachable with code (e.g.
// CodePortUnreachable) to the sender of orig, an IPv4 packet the host
// received (a Deliver event's Packet, which may be passed straight back)
// that no transport wants. The message
// quotes orig's header and the first 8 bytes of its payload (RFC 792) and
// goes like any packet the host sends: over loopback if orig came that
// way, else in a frame.
//
// By RFC 1122 3.2.2, no error is sent about an ICMP error, a datagram to a
// broadcast or multicast address, a fragment other than the first, or a
// datagram whose source does not name one host; such calls are counted as
// "icmp-error-suppressed". Something that is not an IPv4 packet is counted
// as "unreach-bad-packet". Orig is not kept.
func (s *Stack) Unreachable(now time.Time, orig []byte, code uint8) {
	s.begin()
	s.icmpError(now, orig, icmpDestUnreach, code)
}

// icmpError sends an ICMP error of type typ and code about orig, a whole
// IPv4 packet or its first bytes, unless RFC 1122 3.2.2 forbids it.
func (s *Stack) icmpError(now time.Time, orig []byte, typ, code uint8) {
	if len(orig) < HeaderLen || orig[0]>>4 != 4 {
		s.drop(dropUnreachBadPacket)
		return
	}
	hlen := int(orig[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(orig[2:]))
	if hlen < HeaderLen || hlen > len(orig) || total < hlen {
		s.drop(dropUnreachBadPacket)
		return
	}
	if total < len(orig) {
		orig = orig[:total]
	}
	src := binary.BigEndian.Uint32(orig[12:])
	dst := binary.BigEndian.Uint32(orig[16:])
	if binary.BigEndian.Uint16(orig[6:])&offsetMask != 0 ||
		!unicast(src) || s.isBroadcast(src) ||
		!unicast(dst) || s.isBroadcast(dst) ||
		orig[9] == proto.ICMP && (len(orig) == hlen || !icmpInformational(orig[hlen])) {
		s.drop(dropErrorSuppressed)
		return
	}
	if !s.canRoute(src) {
		s.drop(dropNoRoute)
		return
	}
	from := dst
	if !s.isLocal(from) {
		from = s.addr
	}
	// Copy the quote first: orig may be a Deliver event's Packet, in the
	// arena the message is about to be built in.
	var buf [maxQuote]byte
	quote := buf[:copy(buf[:], orig[:min(len(orig), hlen+icmpQuoteData)])]
	n := icmpHeaderLen + len(quote)
	frame, pkt := s.makePacket(src, n)
	m := pkt[HeaderLen:]
	m[0], m[1] = typ, code
	clear(m[2:icmpHeaderLen])
	copy(m[icmpHeaderLen:], quote)
	binary.BigEndian.PutUint16(m[2:], checksum.Of(m))
	s.putIPv4(now, pkt, proto.ICMP, from, src)
	s.stats.ICMPErrorsSent++
	s.sendPacket(now, frame, pkt, src)
}

// icmpInformational reports whether an ICMP type is a query or a reply,
// not an error. Unknown types count as errors, as Linux counts them, so
// that no error is ever sent about one.
func icmpInformational(typ uint8) bool {
	switch typ {
	case 0, 8, 13, 14, 15, 16, 17, 18: // echo, timestamp, information, address mask
		return true
	}
	return false
}

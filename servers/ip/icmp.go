package ip

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
)

// ICMP sizes and the codes only the Stack uses (the types, and the
// destination unreachable codes tcp and udp hear too, are in proto).
const (
	icmpHeaderLen    = 8
	codeReasmTimeout = 1  // time exceeded: fragment reassembly (0 is TTL exceeded in transit)
	maxUnreachCode   = 15 // the last destination unreachable code (Linux's NR_ICMP_UNREACH)
	icmpQuoteData    = 8  // bytes of the original payload an error quotes
	maxQuote         = 60 + icmpQuoteData
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
	if m[0] != proto.ICMPEcho {
		if (m[0] == proto.ICMPDestUnreach || m[0] == proto.ICMPTimeExceeded) && s.icmpErrorIn(pkt, hlen) {
			return
		}
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

// icmpErrorIn passes on an ICMP destination unreachable or time exceeded,
// pkt, with a header of hlen bytes and a message of at least 8, as an
// ICMPError event, if it is about a datagram the host sent and has a code
// the transports know, and reports whether it did. As Linux's icmp_unreach
// (net/ipv4/icmp.c), it wants the quoted header and 8 bytes beyond it;
// and the quoted source must be the address the error came to, one of the
// host's, and the quote must be a first fragment, or the ports in it would
// be data.
func (s *Stack) icmpErrorIn(pkt []byte, hlen int) bool {
	m := pkt[hlen:]
	typ, code := m[0], m[1]
	q := m[icmpHeaderLen:]
	if typ == proto.ICMPDestUnreach && code > maxUnreachCode || typ == proto.ICMPTimeExceeded && code > codeReasmTimeout ||
		len(q) < HeaderLen || q[0]>>4 != 4 {
		s.stats.ICMPErrorsIgnored++
		return false
	}
	qhl := int(q[0]&0x0f) * 4
	to := binary.BigEndian.Uint32(pkt[16:])
	if qhl < HeaderLen || qhl+icmpQuoteData > len(q) ||
		binary.BigEndian.Uint32(q[12:]) != to || !s.isLocal(to) ||
		binary.BigEndian.Uint16(q[6:])&offsetMask != 0 {
		s.stats.ICMPErrorsIgnored++
		return false
	}
	ev := Event{
		Kind:    ICMPError,
		Proto:   q[9],
		Src:     netip.AddrFrom4([4]byte(q[12:16])),
		Dst:     netip.AddrFrom4([4]byte(q[16:20])),
		Type:    typ,
		Code:    code,
		Quote:   q[qhl:],
		From:    netip.AddrFrom4([4]byte(pkt[12:16])),
		Payload: m,
		Packet:  pkt,
	}
	if ev.Proto == proto.TCP || ev.Proto == proto.UDP {
		ev.SrcPort = binary.BigEndian.Uint16(q[qhl:])
		ev.DstPort = binary.BigEndian.Uint16(q[qhl+2:])
	}
	if typ == proto.ICMPDestUnreach && code == proto.CodeFragNeeded {
		ev.MTU = binary.BigEndian.Uint16(m[6:])
	}
	s.stats.ICMPErrorsIn++
	s.events = append(s.events, ev)
	return true
}

// echoReply answers the echo request req from src to dst with the same
// identifier, sequence number and data (RFC 792). IP options of the
// request are not reflected.
func (s *Stack) echoReply(now time.Time, src, dst uint32, req []byte) {
	if !s.canRoute(src) {
		s.drop(dropNoRoute)
		return
	}
	var frame, pkt, m []byte
	big := !s.isLocal(src) && len(req) > MaxPayload
	if big { // built whole, then sent in fragments
		m = s.arena.alloc(len(req))
	} else {
		frame, pkt = s.makePacket(src, len(req))
		m = pkt[HeaderLen:]
	}
	copy(m, req)
	old := binary.BigEndian.Uint16(m[0:])
	m[0], m[1] = proto.ICMPEchoReply, 0
	// Only the type and code change: update the checksum rather than sum
	// the data again.
	binary.BigEndian.PutUint16(m[2:], checksum.Update(binary.BigEndian.Uint16(m[2:]), old, 0))
	s.stats.EchoRepliesSent++
	if big {
		s.fragment(now, proto.ICMP, dst, src, m)
		return
	}
	s.putIPv4(now, pkt, proto.ICMP, dst, src)
	s.sendPacket(now, frame, pkt, src, 0)
}

// Unreachable sends an ICMP destination unreachable with code (e.g.
// proto.CodePortUnreachable) to the sender of orig, an IPv4 packet the host
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
	s.icmpError(now, orig, proto.ICMPDestUnreach, code)
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
	if !s.icmpAllowed(now, src, typ, code) {
		return
	}
	// From the address orig was sent to, if it was one of ours; but a
	// 127/8 source only back over loopback, never on a wire.
	from := dst
	if !s.isLocal(from) || loopback(from) && !s.isLocal(src) {
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
	s.sendPacket(now, frame, pkt, src, 0)
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

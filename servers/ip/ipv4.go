package ip

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
)

// IPv4 header fields (RFC 791).
const (
	flagDF     = 0x4000 // don't fragment
	flagMF     = 0x2000 // more fragments
	offsetMask = 0x1fff // fragment offset, in 8-byte units
)

// ipv4In checks an IPv4 packet that came in a frame (b is the frame past
// its Ethernet header, padding included; linkBcast if the frame was to the
// broadcast MAC) and receives it if it is for the host. Options are not
// parsed: the header length skips them.
func (s *Stack) ipv4In(now time.Time, b []byte, linkBcast bool) {
	if len(b) < HeaderLen {
		s.drop(dropShortPacket)
		return
	}
	if b[0]>>4 != 4 {
		s.drop(dropBadVersion)
		return
	}
	hlen := int(b[0]&0x0f) * 4
	if hlen < HeaderLen || hlen > len(b) {
		s.drop(dropBadIHL)
		return
	}
	if checksum.Of(b[:hlen]) != 0 {
		s.drop(dropBadChecksum)
		return
	}
	total := int(binary.BigEndian.Uint16(b[2:]))
	if total < hlen || total > len(b) {
		s.drop(dropBadLength)
		return
	}
	pkt := b[:total] // without the link's padding
	src := binary.BigEndian.Uint32(pkt[12:])
	dst := binary.BigEndian.Uint32(pkt[16:])
	// RFC 1122 3.2.1.3: a source must name one host, and 127/8 never
	// appears on a wire; our own address coming back is a loop or a spoof.
	if !unicast(src) || loopback(src) || src == s.addr || s.isBroadcast(src) {
		s.drop(dropBadSrcAddr)
		return
	}
	if dst != s.addr && !s.isBroadcast(dst) {
		s.drop(dropNotForUs)
		return
	}
	s.receive(now, pkt, hlen, linkBcast)
}

// receive takes an IPv4 packet for the host, from a frame (linkBcast if
// the frame was to the broadcast MAC) or the loopback interface, trimmed
// to its total length, with a header of hlen bytes: fragments go to
// reassembly, ICMP to icmpIn, TCP and UDP to their transport, and any
// other protocol is answered with an ICMP protocol unreachable (RFC 1122
// 3.2.2.1), as Linux's ip_local_deliver_finish answers it.
func (s *Stack) receive(now time.Time, pkt []byte, hlen int, linkBcast bool) {
	if binary.BigEndian.Uint16(pkt[6:])&(flagMF|offsetMask) != 0 {
		if pkt, hlen = s.reassemble(now, pkt, hlen); pkt == nil {
			return
		}
	}
	switch pkt[9] {
	case proto.ICMP:
		s.icmpIn(now, pkt, hlen)
	case proto.TCP, proto.UDP:
		s.deliver(pkt, hlen)
	default:
		s.drop(dropUnknownProto)
		if linkBcast { // RFC 1122 3.2.2: no error about a link-layer broadcast
			s.drop(dropErrorSuppressed)
			return
		}
		s.icmpError(now, pkt, proto.ICMPDestUnreach, proto.CodeProtoUnreachable)
	}
}

// Send sends payload, a transport segment of protocol proto with its
// checksum already filled in, from src to dst. A zero (or unspecified) src
// means the host's address, or 127.0.0.1 for a destination in 127/8;
// otherwise src must be the host's address, or in 127/8 for a local
// destination (ErrBadAddr).
//
// A packet to the host's address or to 127/8 goes over the loopback
// interface: it comes back as a Deliver event (or an ICMP echo reply) in
// this call's events, with no frame. Any other goes out in a frame: to the
// broadcast MAC for 255.255.255.255 and the subnet's broadcast, to the
// group's MAC for multicast, to the destination on-link, and to the
// gateway off-link (ErrNoRoute if there is none). A frame to an address
// ARP has not resolved is held until it is (see Config.ARPTimeout); Send
// still returns nil, and a packet that cannot be held is counted in Drops.
//
// Payload may be up to MaxLoopback (65515) bytes (beyond, ErrTooBig). A
// datagram that fits the MTU, with up to MaxPayload (1480) bytes of
// payload, goes in one packet with the don't fragment flag set; a larger
// one goes in fragments of 1480 bytes, the last shorter (RFC 791), as
// Linux sends by default (IP_PMTUDISC_WANT). Over loopback nothing is
// fragmented. Payload is copied; Send keeps no reference to it.
func (s *Stack) Send(now time.Time, proto uint8, src, dst netip.Addr, payload []byte) error {
	return s.send(now, proto, src, dst, payload, false, 0)
}

// SendSegmented is Send for a TCP segment that the NIC cuts into
// segments of segSize payload bytes (TCP segmentation offload, as a
// virtio-net guest's stack hands its device): a segment whose data is
// longer than segSize goes to a destination on the link in one frame,
// larger than the MTU, never fragmented, its FrameOut event carrying
// segSize, and its IPv4 header that of the first segment cut from it (DF
// set, one IP ID). A segment whose data fits segSize goes as Send sends
// it, as does one to the host itself, which the loopback carries whole.
// payload must be a TCP segment with a valid header, segSize at least 1,
// and a segment of segSize with that header must fit the MTU; otherwise,
// or to a broadcast or multicast destination, it is refused (ErrSegSize)
// and counted ("bad-seg-size"). segSize 0 is Send.
func (s *Stack) SendSegmented(now time.Time, proto uint8, src, dst netip.Addr, payload []byte, segSize int) error {
	if segSize == 0 {
		return s.Send(now, proto, src, dst, payload)
	}
	thl, ok := tcpHeaderLen(proto, payload)
	if !ok || segSize < 0 || HeaderLen+thl+segSize > MTU {
		s.begin()
		s.drop(dropBadSegSize)
		return fmt.Errorf("ip: send a segment to %v in segments of %d bytes: not a TCP segment whose segments fit the MTU: %w",
			dst, segSize, ErrSegSize)
	}
	if len(payload)-thl <= segSize {
		segSize = 0 // one segment: nothing to cut
	}
	return s.send(now, proto, src, dst, payload, false, uint16(segSize))
}

// tcpHeaderLen returns the length of the TCP header at the start of seg,
// a segment of protocol p, and whether it is one.
func tcpHeaderLen(p uint8, seg []byte) (int, bool) {
	if p != proto.TCP || len(seg) < proto.TCPHeaderLen {
		return 0, false
	}
	n := int(seg[12]>>4) * 4
	return n, n >= proto.TCPHeaderLen && n <= len(seg)
}

// send is Send, SendDF if df, and SendSegmented if segSize is not 0.
func (s *Stack) send(now time.Time, proto uint8, src, dst netip.Addr, payload []byte, df bool, segSize uint16) error {
	s.begin()
	dst = dst.Unmap()
	if !dst.Is4() {
		return fmt.Errorf("ip: send to %v: not an IPv4 address: %w", dst, ErrBadAddr)
	}
	d := addrU32(dst)
	if !unicast(d) && !multicast(d) && d != broadcastAll {
		return fmt.Errorf("ip: send to %v: not a destination address: %w", dst, ErrBadAddr)
	}
	local := s.isLocal(d)
	var sa uint32
	switch src = src.Unmap(); {
	case !src.IsValid() || src == netip.IPv4Unspecified():
		sa = s.addr
		if loopback(d) {
			sa = loopbackAddr
		}
	case !src.Is4():
		return fmt.Errorf("ip: send from %v to %v: source not an IPv4 address: %w", src, dst, ErrBadAddr)
	default:
		sa = addrU32(src)
		if sa != s.addr && !(local && loopback(sa)) {
			return fmt.Errorf("ip: send from %v to %v: source not a local address: %w", src, dst, ErrBadAddr)
		}
	}
	n := len(payload)
	if local {
		segSize = 0 // the loopback carries it whole
	}
	switch {
	case n > MaxLoopback:
		return fmt.Errorf("ip: send %d bytes to %v: more than an IPv4 packet carries (%d): %w", n, dst, MaxLoopback, ErrTooBig)
	case !s.canRoute(d):
		return fmt.Errorf("ip: send to %v: off-link and no gateway: %w", dst, ErrNoRoute)
	case segSize != 0 && (!unicast(d) || s.isBroadcast(d)):
		s.drop(dropBadSegSize)
		return fmt.Errorf("ip: send to %v in segments of %d bytes: not a unicast destination: %w", dst, segSize, ErrSegSize)
	case segSize != 0:
		s.stats.Segmented++ // one frame, however large: the NIC cuts it
	case !local && n > MaxPayload && df:
		s.drop(dropFragNeeded)
		s.fragNeeded(proto, sa, d, payload)
		return fmt.Errorf("ip: send %d bytes to %v: more than the MTU allows (%d), and don't fragment is set: %w", n, dst, MaxPayload, ErrTooBig)
	case !local && n > MaxPayload:
		// Copy the payload first: it may be in the arena the fragments
		// are about to be built in (a Deliver event's Payload).
		buf := s.arena.alloc(n)
		copy(buf, payload)
		s.fragment(now, proto, sa, d, buf)
		return nil
	}
	frame, pkt := s.makePacket(d, n)
	copy(pkt[HeaderLen:], payload)
	s.putIPv4(now, pkt, proto, sa, d)
	s.sendPacket(now, frame, pkt, d, segSize)
	return nil
}

// SendDF is Send with the don't fragment flag, as Linux sends for a
// socket with IP_MTU_DISCOVER set to IP_PMTUDISC_DO: a datagram that does
// not fit the MTU is not sent but dropped ("frag-needed"), and, as Linux
// tells the sending socket, this call's events then hold an ICMPError
// about it: destination unreachable, proto.CodeFragNeeded, MTU 1500, From the
// host, with no Packet or Payload. The error returned wraps ErrTooBig.
func (s *Stack) SendDF(now time.Time, proto uint8, src, dst netip.Addr, payload []byte) error {
	return s.send(now, proto, src, dst, payload, true, 0)
}

// canRoute reports whether the host can send to dst.
func (s *Stack) canRoute(dst uint32) bool {
	return s.isLocal(dst) || s.gw != 0 || s.subnet.contains(dst) || s.isBroadcast(dst) || multicast(dst)
}

// makePacket returns a buffer for an IPv4 packet of n payload bytes to dst
// with a header without options: pkt, and, unless dst is local, the frame
// around it, with room for the Ethernet header.
func (s *Stack) makePacket(dst uint32, n int) (frame, pkt []byte) {
	if s.isLocal(dst) {
		return nil, s.arena.alloc(HeaderLen + n)
	}
	frame = s.newFrame(EthHeaderLen + HeaderLen + n)
	return frame, frame[EthHeaderLen : EthHeaderLen+HeaderLen+n]
}

// fragment sends payload, more than MaxPayload bytes of protocol proto,
// from src to dst, which is not local, in fragments of MaxPayload bytes
// (a multiple of 8, as every fragment but the last must be), the last
// shorter (RFC 791 3.2 and Linux's ip_fragment). The header has no options
// to copy. Payload must not be in the arena past where the fragments are
// built: it must have been allocated in this call, or not there at all.
func (s *Stack) fragment(now time.Time, proto uint8, src, dst uint32, payload []byte) {
	const per = MaxPayload &^ 7
	id := s.ids.take(now, src, dst, proto)
	for off := 0; off < len(payload); off += per {
		end := min(off+per, len(payload))
		frame, pkt := s.makePacket(dst, end-off)
		copy(pkt[HeaderLen:], payload[off:end])
		fo := uint16(off / 8)
		if end < len(payload) {
			fo |= flagMF
		}
		s.writeIPv4(pkt, proto, src, dst, id, fo)
		s.stats.FragmentsCreated++
		s.sendPacket(now, frame, pkt, dst, 0)
	}
	s.stats.Fragmented++
}

// fragNeeded tells the transport of protocol p that payload, for dst, was not
// sent because it needs fragmenting and may not be (SendDF), as Linux's
// ip_fragment does with an ICMP fragmentation needed to the host itself.
func (s *Stack) fragNeeded(p uint8, src, dst uint32, payload []byte) {
	ev := Event{
		Kind:  ICMPError,
		Proto: p,
		Src:   u32Addr(src),
		Dst:   u32Addr(dst),
		Type:  proto.ICMPDestUnreach,
		Code:  proto.CodeFragNeeded,
		MTU:   MTU,
		From:  u32Addr(src),
		Quote: s.arena.alloc(icmpQuoteData),
	}
	copy(ev.Quote, payload) // payload is longer than MaxPayload
	if p == proto.TCP || p == proto.UDP {
		ev.SrcPort = binary.BigEndian.Uint16(payload)
		ev.DstPort = binary.BigEndian.Uint16(payload[2:])
	}
	s.events = append(s.events, ev)
}

// putIPv4 writes the header of pkt, whose length is its total length, for
// a datagram sent whole: DF set, an ID from the destination's counter (see
// idents).
func (s *Stack) putIPv4(now time.Time, pkt []byte, proto uint8, src, dst uint32) {
	s.writeIPv4(pkt, proto, src, dst, s.ids.take(now, src, dst, proto), flagDF)
}

// writeIPv4 writes the header of pkt, whose length is its total length: no
// options, the ID and the flags and fragment offset given, the configured
// TTL (1 for multicast), and the checksum.
func (s *Stack) writeIPv4(pkt []byte, proto uint8, src, dst uint32, id, frag uint16) {
	h := pkt[:HeaderLen]
	h[0], h[1] = 0x45, 0
	binary.BigEndian.PutUint16(h[2:], uint16(len(pkt)))
	binary.BigEndian.PutUint16(h[4:], id)
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8] = s.ttl
	if multicast(dst) {
		h[8] = multicastTTL
	}
	h[9] = proto
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint32(h[12:], src)
	binary.BigEndian.PutUint32(h[16:], dst)
	binary.BigEndian.PutUint16(h[10:], checksum.Of(h))
}

// sendPacket sends pkt, made by makePacket in frame and with its header
// written, to dst, which canRoute; segSize is its FrameOut's SegSize.
func (s *Stack) sendPacket(now time.Time, frame, pkt []byte, dst uint32, segSize uint16) {
	switch {
	case frame == nil:
		s.stats.LoopbackPackets++
		s.receive(now, pkt, HeaderLen, false)
	case s.isBroadcast(dst):
		s.putEth(frame, broadcastMAC, proto.EtherTypeIPv4)
		s.emitFrame(frame, 0)
	case multicast(dst):
		s.putEth(frame, multicastMAC(dst), proto.EtherTypeIPv4)
		s.emitFrame(frame, 0)
	case s.subnet.contains(dst):
		s.sendVia(now, frame, dst, segSize)
	default:
		s.sendVia(now, frame, s.gw, segSize)
	}
}

package ip

import (
	"encoding/binary"
	"time"

	"github.com/newtsim/newtsim/servers/proto"
)

// broadcastMAC is the Ethernet broadcast address.
var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// FrameIn takes an Ethernet II frame the driver received, without its
// FCS. A frame to the host's MAC or to broadcast carrying IPv4 or ARP is
// processed; anything else, and anything malformed, is dropped and counted
// in Drops. The frame is not changed; Deliver events may alias it (see
// Event).
func (s *Stack) FrameIn(now time.Time, frame []byte) {
	s.begin()
	s.stats.FramesIn++
	if len(frame) < EthHeaderLen {
		s.drop(dropShortFrame)
		return
	}
	dst := [6]byte(frame[0:6])
	bcast := dst == broadcastMAC
	if dst != s.mac && !bcast {
		s.drop(dropNotOurMAC)
		return
	}
	if frame[6]&1 != 0 { // the group bit: no frame comes from a group
		s.drop(dropBadSrcMAC)
		return
	}
	switch binary.BigEndian.Uint16(frame[12:]) {
	case proto.EtherTypeIPv4:
		s.ipv4In(now, frame[EthHeaderLen:], bcast)
	case proto.EtherTypeARP:
		s.arpIn(now, frame[EthHeaderLen:])
	default:
		s.drop(dropBadEtherType)
	}
}

// newFrame returns a buffer for a frame of n bytes, Ethernet header
// included, from the arena. Frames shorter than MinFrameLen are padded
// with zeros to it, as a NIC pads them; the padding is zeroed here, the
// rest is the caller's to fill.
func (s *Stack) newFrame(n int) []byte {
	if n >= MinFrameLen {
		return s.arena.alloc(n)
	}
	f := s.arena.alloc(MinFrameLen)
	clear(f[n:])
	return f
}

// putEth writes an Ethernet header from the host to dst.
func (s *Stack) putEth(frame []byte, dst [6]byte, etherType uint16) {
	copy(frame[0:6], dst[:])
	copy(frame[6:12], s.mac[:])
	binary.BigEndian.PutUint16(frame[12:], etherType)
}

// multicastMAC returns the Ethernet address an IPv4 multicast group maps to
// (RFC 1112: 01:00:5e and the group's low 23 bits).
func multicastMAC(a uint32) [6]byte {
	return [6]byte{0x01, 0x00, 0x5e, byte(a>>16) & 0x7f, byte(a >> 8), byte(a)}
}

package tap

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// VnetHeaderLen is the size of struct virtio_net_hdr (linux/virtio_net.h),
// which goes before every frame of a device opened with TSO.
const VnetHeaderLen = 10

// Errors of VnetHeader and ReceiveVnetHeader.
var (
	ErrNotTSO = errors.New("tap: not a frame Linux can cut into TCP segments")
	ErrVnet   = errors.New("tap: virtio-net header asks for what the device does not do")
)

// The header's fields, in the host's byte order as the kernel reads them
// (tun without TUNSETVNETLE/BE uses the legacy virtio byte order, the
// host's):
//
//	flags       u8   VIRTIO_NET_HDR_F_NEEDS_CSUM, _DATA_VALID
//	gso_type    u8   VIRTIO_NET_HDR_GSO_NONE, _TCPV4, ...
//	hdr_len     u16  Ethernet + IP + TCP header bytes
//	gso_size    u16  the segment size (data bytes)
//	csum_start  u16  where the checksum's sum starts
//	csum_offset u16  where, from csum_start, it goes
const (
	vnetFlags   = 0
	vnetGSOType = 1
	vnetHdrLen  = 2
	vnetGSOSize = 4
)

// VnetHeader returns the virtio-net header to write before frame, to be
// cut into TCP segments of segSize data bytes (0: not to be cut). A frame
// holding an IPv4 TCP segment with more than segSize data bytes gets
// gso_type VIRTIO_NET_HDR_GSO_TCPV4, gso_size segSize and hdr_len its
// headers' length, and Linux's virtio_net_hdr_to_skb takes it as one
// packet of several segments, as a virtio-net guest's TSO segment; flags
// stay 0, since the engine filled in the whole segment's checksum (Linux
// verifies it as it does for any packet from a device). Any other frame,
// and any with segSize 0, gets the header of a frame not to cut (all
// zero). A frame with a segment size that holds no IPv4 TCP segment
// cannot be cut: ErrNotTSO.
func VnetHeader(frame []byte, segSize int) ([VnetHeaderLen]byte, error) {
	var h [VnetHeaderLen]byte
	if segSize == 0 {
		return h, nil
	}
	hl, data, err := tcpv4Headers(frame)
	if err != nil {
		return h, err
	}
	if segSize < 0 || segSize > 0xffff {
		return h, fmt.Errorf("%w: segment size %d", ErrNotTSO, segSize)
	}
	if data <= segSize {
		return h, nil // one segment: nothing to cut
	}
	h[vnetGSOType] = unix.VIRTIO_NET_HDR_GSO_TCPV4
	binary.NativeEndian.PutUint16(h[vnetHdrLen:], uint16(hl))
	binary.NativeEndian.PutUint16(h[vnetGSOSize:], uint16(segSize))
	return h, nil
}

// tcpv4Headers returns the length of the Ethernet, IPv4 and TCP headers
// of frame and the TCP data bytes after them, or ErrNotTSO when frame is
// not one IPv4 TCP segment, unfragmented, that fills it.
func tcpv4Headers(frame []byte) (hl, data int, err error) {
	const ether = 14
	if len(frame) < ether+20+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return 0, 0, fmt.Errorf("%w: not IPv4", ErrNotTSO)
	}
	ip := frame[ether:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != 6 || len(ip) < ihl+20 {
		return 0, 0, fmt.Errorf("%w: not TCP in IPv4", ErrNotTSO)
	}
	if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return 0, 0, fmt.Errorf("%w: a fragment", ErrNotTSO)
	}
	thl := int(ip[ihl+12]>>4) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if thl < 20 || total != len(ip) || total < ihl+thl {
		return 0, 0, fmt.Errorf("%w: lengths (IP %d of %d bytes, TCP header %d)", ErrNotTSO, total, len(ip), thl)
	}
	return ether + ihl + thl, total - ihl - thl, nil
}

// ReceiveVnetHeader checks the virtio-net header Linux put before a frame
// read from the device. The device offers Linux no offload (no
// TUNSETOFFLOAD), so Linux cuts its segments and finishes its checksums
// itself (validate_xmit_skb): a header that asks the device to cut the
// frame (a gso_type) or to finish its checksum
// (VIRTIO_NET_HDR_F_NEEDS_CSUM) asks for what the device does not do, and
// is ErrVnet.
func ReceiveVnetHeader(h [VnetHeaderLen]byte) error {
	if g := h[vnetGSOType]; g != unix.VIRTIO_NET_HDR_GSO_NONE {
		return fmt.Errorf("%w: gso_type %d", ErrVnet, g)
	}
	if h[vnetFlags]&unix.VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
		return fmt.Errorf("%w: a checksum left to the device", ErrVnet)
	}
	return nil
}

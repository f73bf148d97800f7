// Package packet gives the packet path's messages (docs/PACKET_PATH.md)
// named fields over the 64-byte ipc.Message: frames between nic, driver,
// pf and ip, datagrams between ip and the transports, and buffers going
// back to their owners. Each carries its buffer reference in the first
// argument word. Encode writes a message's type and arguments (the header,
// Src, Dst and Seq, is the sender's to set); Decode reads them back, and
// the receiver checks what they mean (a buffer reference with
// sys.Server.Buffer, an offset against the buffer).
package packet

import (
	"math"
	"net/netip"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
)

// Frame is an Ethernet frame in a buffer.
type Frame struct {
	// Type is ipc.FrameRx for a frame going up (received), ipc.FrameTx
	// for one going down (to send).
	Type ipc.Type
	Buf  pool.Ref
	// SegSize, going down, is the TCP segment size a frame larger than
	// the link's MTU is to be cut into by the NIC (TCP segmentation
	// offload, docs/PACKET_PATH.md); 0 for an ordinary frame.
	SegSize uint16
}

// Encode writes f into m.
func (f Frame) Encode(m *ipc.Message) {
	set(m, f.Type, f.Buf)
	m.Arg[1] = uint64(f.SegSize)
}

// Decode reads f from m. A segment size too large for 16 bits reads as 0
// (none): no sender of ours writes one.
func (f *Frame) Decode(m *ipc.Message) {
	f.Type, f.Buf, f.SegSize = m.Type, buf(m), segSize(m.Arg[1])
}

// BufFree gives a buffer back towards its owner, who frees it
// (ipc.BufFree).
type BufFree struct {
	Buf pool.Ref
}

// Encode writes b into m.
func (b BufFree) Encode(m *ipc.Message) { set(m, ipc.BufFree, b.Buf) }

// Decode reads b from m.
func (b *BufFree) Decode(m *ipc.Message) { b.Buf = buf(m) }

// Datagram is an IPv4 packet between ip and a transport (ipc.Datagram).
// Going up, ip sends the whole packet, with the offset of the transport
// segment in it; going down, a transport sends the segment alone, with the
// addresses and protocol ip is to send it with.
type Datagram struct {
	Buf pool.Ref
	// Off is where the transport segment starts in the buffer (up).
	Off int
	// Src and Dst are the packet's addresses and Proto its protocol
	// (down).
	Src, Dst netip.Addr
	Proto    uint8
	// SegSize, down, is the segment size of a TCP segment larger than
	// the link's MTU, which ip sends whole for the NIC to cut (TCP
	// segmentation offload); 0 for an ordinary segment.
	SegSize uint16
}

// Encode writes d into m.
func (d Datagram) Encode(m *ipc.Message) {
	set(m, ipc.Datagram, d.Buf)
	m.Arg[1] = uint64(d.Off)
	m.Arg[2], m.Arg[3], m.Arg[4] = ipc.PackAddr(d.Src), ipc.PackAddr(d.Dst), uint64(d.Proto)
	m.Arg[5] = uint64(d.SegSize)
}

// Decode reads d from m. An offset too large for an int reads as the
// largest int32, which no buffer holds; a segment size too large for 16
// bits as 0.
func (d *Datagram) Decode(m *ipc.Message) {
	d.Buf = buf(m)
	d.Off = int(min(m.Arg[1], math.MaxInt32))
	d.Src, d.Dst, d.Proto = ipc.UnpackAddr(m.Arg[2]), ipc.UnpackAddr(m.Arg[3]), uint8(m.Arg[4])
	d.SegSize = segSize(m.Arg[5])
}

// segSize reads a segment size word: 0 (none) unless it fits 16 bits.
func segSize(w uint64) uint16 {
	if w > math.MaxUint16 {
		return 0
	}
	return uint16(w)
}

// Unreachable gives ip back a Datagram's buffer whose destination port has
// no socket (ipc.Unreachable): ip answers with ICMP port unreachable and
// frees it.
type Unreachable struct {
	Buf pool.Ref
}

// Encode writes u into m.
func (u Unreachable) Encode(m *ipc.Message) { set(m, ipc.Unreachable, u.Buf) }

// Decode reads u from m.
func (u *Unreachable) Decode(m *ipc.Message) { u.Buf = buf(m) }

// ICMPError tells a transport that one of its segments or datagrams drew
// an ICMP destination unreachable or time exceeded (ipc.ICMPError), with
// what the error quotes of it and says. It carries no buffer.
type ICMPError struct {
	// Local is the segment's source, Remote where it was sent.
	Local, Remote netip.AddrPort
	// Seq is the sequence number the error quotes (TCP's, bytes 4 to 7
	// of the transport header).
	Seq uint32
	// Type and Code are the error's (RFC 792); MTU is a fragmentation
	// needed's next-hop MTU (RFC 1191), 0 otherwise.
	Type, Code uint8
	MTU        uint16
}

// Encode writes e into m: the ends in four words, the rest packed into
// the last.
func (e ICMPError) Encode(m *ipc.Message) {
	set(m, ipc.ICMPError, 0)
	m.Arg[1], m.Arg[2] = ipc.PackAddrPort(e.Local)
	m.Arg[3], m.Arg[4] = ipc.PackAddrPort(e.Remote)
	m.Arg[5] = uint64(e.Seq)<<32 | uint64(e.Type)<<24 | uint64(e.Code)<<16 | uint64(e.MTU)
}

// Decode reads e from m.
func (e *ICMPError) Decode(m *ipc.Message) {
	e.Local = ipc.UnpackAddrPort(m.Arg[1], m.Arg[2])
	e.Remote = ipc.UnpackAddrPort(m.Arg[3], m.Arg[4])
	w := m.Arg[5]
	e.Seq, e.Type, e.Code, e.MTU = uint32(w>>32), uint8(w>>24), uint8(w>>16), uint16(w)
}

// buf is the buffer a packet path message carries.
func buf(m *ipc.Message) pool.Ref { return pool.Ref(m.Arg[0]) }

// SetBuf sets the buffer a packet path message carries, for a sender that
// encodes the rest of the message before it has the buffer (see
// sys.Server.SendCopy).
func SetBuf(m *ipc.Message, ref pool.Ref) { m.Arg[0] = uint64(ref) }

// set writes a type and a buffer, clearing the other arguments.
func set(m *ipc.Message, t ipc.Type, ref pool.Ref) {
	m.Type, m.Flags = t, 0
	m.Arg = [ipc.NumArgs]uint64{uint64(ref)}
}

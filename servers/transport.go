package servers

import (
	"net/netip"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/servers/sys"
)

// What the transport servers (udp, tcp) and syscall share: answering a
// socket call, and moving segments to and from ip.

// sendReply answers a socket call m with result (a negated errno for a
// failure) and up to four more arguments; Arg[5] goes back as it came (the
// application's endpoint, between syscall and a transport).
func sendReply(s *sys.Server, m *ipc.Message, result int64, args ...uint64) error {
	r := ipc.Message{Type: ipc.SocketReply, Flags: m.Flags, Dst: m.Src, Seq: m.Seq}
	r.Arg[0] = uint64(result)
	copy(r.Arg[1:5], args)
	r.Arg[5] = m.Arg[5]
	return s.Send(&r)
}

// sendSegment hands ip a transport segment from src to dst, in a buffer
// of the server's pool.
func sendSegment(s *sys.Server, ip string, proto uint8, src, dst netip.Addr, seg []byte) error {
	ref, buf, err := s.Pool.Alloc()
	if err != nil {
		return err
	}
	n := copy(buf, seg)
	m := ipc.Message{Type: ipc.Datagram, Arg: [ipc.NumArgs]uint64{uint64(s.Pool.Slice(ref, n)), 0,
		Addr4(src), Addr4(dst), uint64(proto)}}
	if err := s.SendTo(ip, &m); err != nil {
		s.Pool.Free(ref)
		return err
	}
	return nil
}

// segmentIn opens a Datagram message from ip: the IPv4 packet's addresses
// and the transport segment in it, and the buffer to release. A message no
// ip would send (a bad offset) is released here and ok is false.
func segmentIn(s *sys.Server, m *ipc.Message) (src, dst netip.Addr, seg []byte, ref pool.Ref, ok bool) {
	b, ref, err := s.Buffer(m, 0)
	if err != nil {
		return src, dst, nil, ref, false
	}
	off := int(m.Arg[1])
	if off < 20 || off > len(b) {
		s.Release(ref)
		return src, dst, nil, ref, false
	}
	return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), b[off:], ref, true
}

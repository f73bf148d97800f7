package systest

import (
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
)

// The messages a test sends a server and the fields it reads from what the
// server sent: every word of a message a role test touches is named here,
// and only here.

// Kernel messages.

// Shutdown asks the server to stop; Deliver ends each batch with one.
func Shutdown() ipc.Message { return ipc.Message{Type: ipc.Shutdown} }

// Alarm is an expired kernel alarm.
func Alarm() ipc.Message { return ipc.Message{Type: ipc.Alarm} }

// Ping asks for a Pong with the same seq and arguments.
func Ping(seq uint32, args ...uint64) ipc.Message {
	m := ipc.Message{Type: ipc.Ping, Seq: seq}
	copy(m.Arg[:], args)
	return m
}

// Pong answers a Ping.
func Pong(seq uint32, args ...uint64) ipc.Message {
	m := Ping(seq, args...)
	m.Type = ipc.Pong
	return m
}

// EndpointUpdate says the process in slot is now ep.
func EndpointUpdate(slot int, ep ipc.Endpoint) ipc.Message {
	return ipc.Message{Type: ipc.EndpointUpdate, Arg: [ipc.NumArgs]uint64{uint64(slot), uint64(ep)}}
}

// KernelError is the kernel's refusal of a message of type t to dst.
func KernelError(e ipc.Errno, t ipc.Type, dst ipc.Endpoint) ipc.Message {
	return ipc.Message{Type: ipc.Error, Arg: [ipc.NumArgs]uint64{uint64(e), uint64(t), uint64(dst)}}
}

// AlarmAfter is the delay a SetAlarm asks for.
func AlarmAfter(m ipc.Message) time.Duration { return time.Duration(m.Arg[0]) }

// Packet path messages.

// FrameRx carries a received frame up.
func FrameRx(ref pool.Ref) ipc.Message { return packet(ipc.FrameRx, ref) }

// FrameTx carries a frame to send down.
func FrameTx(ref pool.Ref) ipc.Message { return packet(ipc.FrameTx, ref) }

// BufFree gives a buffer back towards its owner.
func BufFree(ref pool.Ref) ipc.Message { return packet(ipc.BufFree, ref) }

// Unreachable gives ip back a datagram no socket wanted.
func Unreachable(ref pool.Ref) ipc.Message { return packet(ipc.Unreachable, ref) }

// Datagram carries an IPv4 packet between ip and a transport, its
// transport segment at offset off.
func Datagram(ref pool.Ref, off int) ipc.Message {
	m := packet(ipc.Datagram, ref)
	m.Arg[1] = uint64(off)
	return m
}

// Segment is a transport's segment for ip to send, from src to dst.
func Segment(ref pool.Ref, src, dst netip.Addr, proto uint8) ipc.Message {
	m := packet(ipc.Datagram, ref)
	m.Arg[2], m.Arg[3], m.Arg[4] = addr4(src), addr4(dst), uint64(proto)
	return m
}

// PortUnreachable tells a transport that a datagram from local to remote
// drew an ICMP port unreachable.
func PortUnreachable(local, remote netip.AddrPort) ipc.Message {
	return ipc.Message{Type: ipc.PortUnreachable, Arg: [ipc.NumArgs]uint64{0,
		addr4(local.Addr()), uint64(local.Port()), addr4(remote.Addr()), uint64(remote.Port())}}
}

func packet(t ipc.Type, ref pool.Ref) ipc.Message {
	return ipc.Message{Type: t, Arg: [ipc.NumArgs]uint64{uint64(ref)}}
}

// Ref is the buffer a packet path message carries.
func Ref(m ipc.Message) pool.Ref { return pool.Ref(m.Arg[0]) }

// Offset is where the transport segment starts in a Datagram from ip.
func Offset(m ipc.Message) int { return int(m.Arg[1]) }

// SegmentOf opens a transport's Datagram to ip: the addresses and protocol.
func SegmentOf(m ipc.Message) (src, dst netip.Addr, proto uint8) {
	return netip.AddrFrom4(unpack4(m.Arg[2])), netip.AddrFrom4(unpack4(m.Arg[3])), uint8(m.Arg[4])
}

// PortUnreachableOf opens a PortUnreachable: the datagram's local and
// remote address and port.
func PortUnreachableOf(m ipc.Message) (local, remote netip.AddrPort) {
	return netip.AddrPortFrom(netip.AddrFrom4(unpack4(m.Arg[1])), uint16(m.Arg[2])),
		netip.AddrPortFrom(netip.AddrFrom4(unpack4(m.Arg[3])), uint16(m.Arg[4]))
}

// Socket calls, as an application sends them to syscall (fd a descriptor)
// or syscall forwards them to a transport (fd the transport's socket).

// Open opens a socket of the given type (unix.SOCK_DGRAM, SOCK_STREAM).
func Open(sockType int) ipc.Message { return call(ipc.OpOpen, uint64(sockType)) }

// OpenExposed opens a TCP socket with its buffers exposed, as an
// application calling tcp itself does.
func OpenExposed() ipc.Message {
	m := call(ipc.OpOpen, unix.SOCK_STREAM)
	m.Arg[4] = 1 // exposed
	return m
}

// Bind binds fd to a.
func Bind(fd uint64, a netip.AddrPort) ipc.Message { return withAddr(call(ipc.OpBind, fd), a) }

// Connect connects fd to a; flags unix.MSG_DONTWAIT does not wait.
func Connect(fd uint64, a netip.AddrPort, flags int) ipc.Message {
	m := withAddr(call(ipc.OpConnect, fd), a)
	m.Arg[4] = uint64(flags)
	return m
}

// Listen makes fd a listener.
func Listen(fd uint64, backlog int) ipc.Message {
	m := call(ipc.OpListen, fd)
	m.Arg[4] = uint64(backlog)
	return m
}

// Accept takes a connection from listener fd.
func Accept(fd uint64, flags int) ipc.Message {
	m := call(ipc.OpAccept, fd)
	m.Arg[4] = uint64(flags)
	return m
}

// SendTo sends the bytes data names on fd, to a (the zero AddrPort: the
// connected peer).
func SendTo(fd uint64, a netip.AddrPort, data pool.Ref, flags int) ipc.Message {
	m := withAddr(call(ipc.OpSendTo, fd), a)
	m.Arg[3], m.Arg[4] = uint64(data), uint64(flags)
	return m
}

// RecvFrom receives up to max bytes on fd (0: a buffer's worth).
func RecvFrom(fd uint64, max, flags int) ipc.Message {
	m := call(ipc.OpRecvFrom, fd)
	m.Arg[3], m.Arg[4] = uint64(max), uint64(flags)
	return m
}

// Poll asks which of events fd is ready for.
func Poll(fd uint64, events int) ipc.Message {
	m := call(ipc.OpPoll, fd)
	m.Arg[4] = uint64(events)
	return m
}

// Close closes fd.
func Close(fd uint64) ipc.Message { return call(ipc.OpClose, fd) }

// Forwarded is call m as syscall forwards it to a transport: socket sock
// instead of the application's descriptor, and the application app.
func Forwarded(m ipc.Message, sock uint64, app ipc.Endpoint) ipc.Message {
	m.Arg[0], m.Arg[5] = sock, uint64(app)
	return m
}

// Reply is a transport's answer to a forwarded call, for syscall to pass
// on to app: result and the call's other reply words (address, buffer).
func Reply(op ipc.SocketOp, seq uint32, result int64, app ipc.Endpoint) ipc.Message {
	return ipc.Message{Type: ipc.SocketReply, Flags: uint16(op), Seq: seq,
		Arg: [ipc.NumArgs]uint64{uint64(result), 0, 0, 0, 0, uint64(app)}}
}

func call(op ipc.SocketOp, fd uint64) ipc.Message {
	return ipc.Message{Type: ipc.Socket, Flags: uint16(op), Arg: [ipc.NumArgs]uint64{fd}}
}

func withAddr(m ipc.Message, a netip.AddrPort) ipc.Message {
	if a.IsValid() {
		m.Arg[1], m.Arg[2] = addr4(a.Addr()), uint64(a.Port())
	}
	return m
}

// Op is the operation of a socket call or reply.
func Op(m ipc.Message) ipc.SocketOp { return ipc.SocketOp(m.Flags) }

// Sock is the descriptor, or the transport's socket, a call names.
func Sock(m ipc.Message) uint64 { return m.Arg[0] }

// Result is a reply's result: a count, a descriptor, or a negated errno.
func Result(m ipc.Message) int64 { return int64(m.Arg[0]) }

// Errno is the error a reply reports, 0 for success.
func Errno(m ipc.Message) unix.Errno {
	if r := Result(m); r < 0 {
		return unix.Errno(-r)
	}
	return 0
}

// ReplyAddr is the address and port a reply carries (a datagram's source,
// a socket's local address, an accepted connection's peer).
func ReplyAddr(m ipc.Message) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(unpack4(m.Arg[1])), uint16(m.Arg[2]))
}

// ReplyData is the buffer a receive's reply carries the data in.
func ReplyData(m ipc.Message) pool.Ref { return pool.Ref(m.Arg[3]) }

// Caller is the application a forwarded call or its reply is for.
func Caller(m ipc.Message) ipc.Endpoint { return ipc.Endpoint(m.Arg[5]) }

func addr4(a netip.Addr) uint64 {
	if !a.Unmap().Is4() {
		return 0
	}
	b := a.Unmap().As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

func unpack4(w uint64) [4]byte { return [4]byte{byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w)} }

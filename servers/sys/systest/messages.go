package systest

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/sockcall"
)

// The messages a test sends a server and the fields it reads from what the
// server sent, short forms over the typed views of packages ipc/kcall,
// ipc/packet and ipc/sockcall: a role test names no argument word.

// encoder is a typed view of a message.
type encoder interface{ Encode(*ipc.Message) }

// msg is the message body encodes to, its header left for the sender.
func msg(body encoder) ipc.Message {
	var m ipc.Message
	body.Encode(&m)
	return m
}

// Kernel messages.

// Shutdown asks the server to stop; Deliver ends each batch with one.
func Shutdown() ipc.Message { return ipc.Message{Type: ipc.Shutdown} }

// Alarm is an expired kernel alarm.
func Alarm() ipc.Message { return msg(kcall.Alarm{}) }

// Ping asks for a Pong with the same seq and arguments.
func Ping(seq uint32, args ...uint64) ipc.Message {
	m := ipc.Message{Type: ipc.Ping, Seq: seq}
	// A ping's arguments are opaque words the Pong echoes: no view names
	// them.
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
	return msg(kcall.EndpointUpdate{Slot: slot, Endpoint: ep})
}

// EndpointDown says the process in slot, endpoint ep, died.
func EndpointDown(slot int, ep ipc.Endpoint) ipc.Message {
	return msg(kcall.EndpointDown{Slot: slot, Endpoint: ep})
}

// KernelError is the kernel's refusal of a message of type t to dst.
func KernelError(e ipc.Errno, t ipc.Type, dst ipc.Endpoint) ipc.Message {
	return msg(&ipc.KernelError{Errno: e, Type: t, Dst: dst})
}

// AlarmAfter is the delay a SetAlarm asks for.
func AlarmAfter(m ipc.Message) time.Duration {
	var a kcall.SetAlarm
	a.Decode(&m)
	return a.After
}

// Packet path messages.

// FrameRx carries a received frame up.
func FrameRx(ref pool.Ref) ipc.Message { return msg(packet.Frame{Type: ipc.FrameRx, Buf: ref}) }

// FrameTx carries a frame to send down.
func FrameTx(ref pool.Ref) ipc.Message { return msg(packet.Frame{Type: ipc.FrameTx, Buf: ref}) }

// BufFree gives a buffer back towards its owner.
func BufFree(ref pool.Ref) ipc.Message { return msg(packet.BufFree{Buf: ref}) }

// Unreachable gives ip back a datagram no socket wanted.
func Unreachable(ref pool.Ref) ipc.Message { return msg(packet.Unreachable{Buf: ref}) }

// Datagram carries an IPv4 packet from ip up to a transport, its
// transport segment at offset off.
func Datagram(ref pool.Ref, off int) ipc.Message { return msg(packet.Datagram{Buf: ref, Off: off}) }

// Segment is a transport's segment for ip to send, from src to dst.
func Segment(ref pool.Ref, src, dst netip.Addr, proto uint8) ipc.Message {
	return msg(packet.Datagram{Buf: ref, Src: src, Dst: dst, Proto: proto})
}

// ICMPError tells a transport that its segment or datagram from local to
// remote drew an ICMP error of type typ and code code; seq is what it
// quotes of a TCP segment, mtu a fragmentation needed's next-hop MTU.
func ICMPError(local, remote netip.AddrPort, seq uint32, typ, code uint8, mtu uint16) ipc.Message {
	return msg(packet.ICMPError{Local: local, Remote: remote, Seq: seq, Type: typ, Code: code, MTU: mtu})
}

// Ref is the buffer a packet path message carries. A test asking it of
// a message that carries none has a bug: Ref panics.
func Ref(m ipc.Message) pool.Ref {
	switch m.Type {
	case ipc.FrameRx, ipc.FrameTx:
		var f packet.Frame
		f.Decode(&m)
		return f.Buf
	case ipc.BufFree:
		var b packet.BufFree
		b.Decode(&m)
		return b.Buf
	case ipc.Datagram:
		return DatagramOf(m).Buf
	case ipc.Unreachable:
		var u packet.Unreachable
		u.Decode(&m)
		return u.Buf
	}
	panic(fmt.Sprintf("systest: a %s message carries no buffer", m.Type))
}

// DatagramOf opens a Datagram: up from ip, its buffer and segment offset;
// down from a transport, its buffer, addresses and protocol.
func DatagramOf(m ipc.Message) packet.Datagram {
	var d packet.Datagram
	d.Decode(&m)
	return d
}

// ICMPErrorOf opens an ICMPError.
func ICMPErrorOf(m ipc.Message) packet.ICMPError {
	var e packet.ICMPError
	e.Decode(&m)
	return e
}

// Socket calls, as an application sends them to syscall (fd a descriptor)
// or syscall forwards them to a transport (fd the transport's socket).

// Open opens a socket of the given type (unix.SOCK_DGRAM, SOCK_STREAM).
func Open(sockType int) ipc.Message { return msg(sockcall.Call{Op: ipc.OpOpen, Type: sockType}) }

// Bind binds fd to a.
func Bind(fd uint64, a netip.AddrPort) ipc.Message {
	return msg(sockcall.Call{Op: ipc.OpBind, Sock: fd, Addr: a})
}

// Connect connects fd to a; flags unix.MSG_DONTWAIT does not wait.
func Connect(fd uint64, a netip.AddrPort, flags int) ipc.Message {
	return msg(sockcall.Call{Op: ipc.OpConnect, Sock: fd, Addr: a, Flags: flags})
}

// Listen makes fd a listener.
func Listen(fd uint64, backlog int) ipc.Message {
	return msg(sockcall.Call{Op: ipc.OpListen, Sock: fd, Backlog: backlog})
}

// Accept takes a connection from listener fd.
func Accept(fd uint64, flags int) ipc.Message {
	return msg(sockcall.Call{Op: ipc.OpAccept, Sock: fd, Flags: flags})
}

// SendTo sends the bytes data names on fd, to a (the zero AddrPort: the
// connected peer).
func SendTo(fd uint64, a netip.AddrPort, data pool.Ref, flags int) ipc.Message {
	return msg(sockcall.Call{Op: ipc.OpSendTo, Sock: fd, Addr: a, Buf: data, Flags: flags})
}

// RecvFrom receives up to max bytes on fd (0: a buffer's worth).
func RecvFrom(fd uint64, max, flags int) ipc.Message {
	return msg(sockcall.Call{Op: ipc.OpRecvFrom, Sock: fd, Max: max, Flags: flags})
}

// Poll asks which of events fd is ready for.
func Poll(fd uint64, events int16) ipc.Message {
	return msg(sockcall.Call{Op: ipc.OpPoll, Sock: fd, Events: events})
}

// GetOpt reads fd's option at level.
func GetOpt(fd uint64, level, option int) ipc.Message {
	return msg(sockcall.Call{Op: ipc.OpGetOpt, Sock: fd, Level: level, Option: option})
}

// SetOpt sets fd's option at level to value.
func SetOpt(fd uint64, level, option, value int) ipc.Message {
	return msg(sockcall.Call{Op: ipc.OpSetOpt, Sock: fd, Level: level, Option: option, Value: value})
}

// Close closes fd.
func Close(fd uint64) ipc.Message { return msg(sockcall.Call{Op: ipc.OpClose, Sock: fd}) }

// Forwarded is call m as syscall forwards it to a transport: socket sock
// instead of the application's descriptor (an open names none, and keeps
// none), and the application app.
func Forwarded(m ipc.Message, sock uint64, app ipc.Endpoint) ipc.Message {
	c := CallOf(m)
	if c.Op != ipc.OpOpen {
		c.Sock = sock
	}
	c.Caller = app
	c.Encode(&m)
	return m
}

// Reply is a transport's answer to a forwarded call, for syscall to pass
// on to app: the call's operation, seq and result.
func Reply(op ipc.SocketOp, seq uint32, result int64, app ipc.Endpoint) ipc.Message {
	m := msg(sockcall.Reply{Op: op, Result: result, Caller: app})
	m.Seq = seq
	return m
}

// CallOf opens a socket call.
func CallOf(m ipc.Message) sockcall.Call {
	var c sockcall.Call
	c.Decode(&m)
	return c
}

// ReplyOf opens a socket call's reply.
func ReplyOf(m ipc.Message) sockcall.Reply {
	var r sockcall.Reply
	r.Decode(&m)
	return r
}

// Op is the operation of a socket call or reply.
func Op(m ipc.Message) ipc.SocketOp {
	if m.Type == ipc.SocketReply {
		return ReplyOf(m).Op
	}
	return CallOf(m).Op
}

// Sock is the descriptor, or the transport's socket, a call names.
func Sock(m ipc.Message) uint64 { return CallOf(m).Sock }

// Result is a reply's result: a count, a descriptor, or a negated errno.
func Result(m ipc.Message) int64 { return ReplyOf(m).Result }

// Errno is the error a reply reports, 0 for success.
func Errno(m ipc.Message) unix.Errno {
	if r := Result(m); r < 0 {
		return unix.Errno(-r)
	}
	return 0
}

// ReplyAddr is the address and port a reply carries (a datagram's source,
// a socket's local address, an accepted connection's peer).
func ReplyAddr(m ipc.Message) netip.AddrPort { return ReplyOf(m).Addr }

// ReplyData is the buffer a receive's reply carries the data in.
func ReplyData(m ipc.Message) pool.Ref { return ReplyOf(m).Buf }

// Caller is the application a forwarded call or its reply is for.
func Caller(m ipc.Message) ipc.Endpoint {
	if m.Type == ipc.SocketReply {
		return ReplyOf(m).Caller
	}
	return CallOf(m).Caller
}

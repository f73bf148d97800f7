// Package ipc is newtsim's inter-process communication layer: fixed-size
// messages between endpoints, carried either by user-space channels
// (single-producer single-consumer rings in shared memory, see package
// ipc/shm) or by kernel messages (a Unix seqpacket connection to the kernel
// process, see package ipc/kmsg). Both satisfy Transport, so a server's code
// does not know which one carries its messages.
package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

// MessageSize is the size in bytes of every message on every transport: one
// cache line.
const MessageSize = 64

// NumArgs is the number of 64-bit argument words a message carries.
const NumArgs = 6

// Endpoint names a process incarnation, as MINIX does: the low 16 bits are
// the process's slot in the kernel's endpoint table, the high 16 bits its
// generation, which the kernel bumps each time it restarts the process. A
// message sent to a dead incarnation is refused rather than delivered to its
// successor.
type Endpoint uint32

// None is the zero endpoint; no process has it.
const None Endpoint = 0

// KernelSlot is the kernel's slot in the endpoint table.
const KernelSlot = 0

// Kernel is the kernel process's endpoint. It never restarts.
var Kernel = MakeEndpoint(KernelSlot, 1)

// MaxSlots bounds the endpoint table; privilege masks are 64-bit.
const MaxSlots = 64

// MakeEndpoint builds an endpoint from a slot and a generation.
func MakeEndpoint(slot, gen int) Endpoint {
	return Endpoint(uint32(gen)<<16 | uint32(slot)&0xffff)
}

// Slot returns the endpoint's slot in the endpoint table.
func (e Endpoint) Slot() int { return int(e & 0xffff) }

// Generation returns the endpoint's incarnation number.
func (e Endpoint) Generation() int { return int(e >> 16) }

// Valid reports whether e can name a process: a slot in range and a
// non-zero generation.
func (e Endpoint) Valid() bool { return e.Slot() < MaxSlots && e.Generation() != 0 }

// String formats the endpoint as slot.generation.
func (e Endpoint) String() string { return fmt.Sprintf("%d.%d", e.Slot(), e.Generation()) }

// Type is a message type. Types fall in ranges: kernel calls, kernel
// notifications, and server protocol messages.
type Type uint16

// Kernel calls: requests a process sends to the kernel itself.
const (
	// Register tells the kernel the sender is up, with its metrics port
	// (kcall.Register). The kernel replies with Ack.
	Register Type = 1 + iota
	// Lookup asks for the endpoint of a process by name (Name/SetName);
	// the reply is Ack with the endpoint (kcall.Ack), or Error.
	Lookup
	// SetAlarm asks for an Alarm message after a delay, with a cookie
	// returned in the Alarm (kcall.SetAlarm); a zero delay cancels the
	// sender's alarm. It has no reply (but an Error for a bad duration):
	// servers set alarms often and never wait for the kernel.
	SetAlarm
	// Notify sends an asynchronous notification to Dst: it never blocks
	// the sender, and notifications pending for one destination coalesce
	// into a bitmap of sources.
	Notify
	// Ack is the kernel's successful reply to a kernel call.
	Ack
	// Error is the kernel's refusal: the Errno, the refused message's
	// type and its destination (KernelError).
	Error
)

// Kernel calls that carry a descriptor (docs/EXPOSED.md): a server hands
// one application a file through the kernel, as tcp does an exposed
// socket's region, a sealed memfd. The descriptor travels attached to the
// message (SCM_RIGHTS) on the kernel connection, on both transports.
const (
	// Deposit hands the kernel the descriptor attached, for one
	// application to collect under an id (kcall.Deposit). Only a
	// transport may deposit (the type table), and only for an
	// application its privilege mask lets it send to; the kernel keeps
	// at most kernel.MaxDeposits for one application, closes them when it
	// dies, and answers with Ack.
	Deposit Type = Error + 1 + iota
	// Collect asks for the descriptor a server deposited for the caller
	// under an id (kcall.Collect). Only an application may collect; the
	// Ack carries the descriptor attached, and an Error (ENOENT) answers
	// a collect of what was not deposited for the caller.
	Collect
)

// Kernel notifications: messages the kernel originates.
const (
	// Alarm is an expired alarm, with the caller's cookie (kcall.Alarm).
	Alarm Type = 64 + iota
	// Notification delivers coalesced notifications: a bitmap of source
	// slots (kcall.Notification).
	Notification
	// EndpointUpdate announces that the process in a slot has a new
	// endpoint: it was restarted (kcall.EndpointUpdate).
	EndpointUpdate
	// Shutdown asks a server to exit cleanly.
	Shutdown
	// EndpointDown announces that the process in a slot died, with the
	// endpoint it had (kcall.EndpointDown): the kernel tells every live
	// process before it restarts the dead one.
	EndpointDown
)

// Server protocol messages. Later layers add socket calls from here on.
const (
	// Ping asks any server for a Pong with the same Seq and arguments.
	Ping Type = 128 + iota
	// Pong answers Ping.
	Pong
	// Bench is a benchmark's request to a role that measures (see
	// package sim/bench/probe); the role answers with Pong when it is done.
	Bench
)

// Packet path messages (docs/PACKET_PATH.md); package ipc/packet gives
// them named fields. Each carries a pool.Ref in its first word.
const (
	// FrameRx carries a received Ethernet frame up: nic, driver, pf, ip.
	FrameRx Type = 160 + iota
	// FrameTx carries an Ethernet frame to send down: ip, pf, driver, nic.
	FrameTx
	// BufFree returns a buffer towards its owner, who frees it.
	BufFree
	// Datagram carries an IPv4 packet between ip and a transport.
	Datagram
	// Unreachable gives ip back a Datagram's buffer whose destination port
	// has no socket: ip answers with ICMP port unreachable and frees it.
	Unreachable
	// ICMPError tells a transport that one of its segments drew an ICMP
	// error, with its ends, sequence number, and the error.
	ICMPError
)

// Socket calls (the socket library's `message` backend; package
// ipc/sockcall gives them named fields). A call goes from an application
// to syscall, which forwards it to the transport server owning the socket
// with the caller's endpoint; the transport replies to whoever sent it the
// call, and syscall passes the reply on.
const (
	// Socket is a socket call: Flags is the SocketOp.
	Socket Type = 192 + iota
	// SocketReply answers it: Flags is the SocketOp, and the result is
	// a negated errno when the call failed.
	SocketReply
)

// Exposed sockets (package ipc/sockbuf): the few messages left once socket
// buffers are in shared memory (sockcall.Doorbell, sockcall.Wake).
const (
	// Doorbell tells a transport server that an application posted work
	// on an exposed socket while the server was not looking.
	Doorbell Type = 200 + iota
	// Wake tells an application waiting in poll that an exposed socket
	// changed.
	Wake
)

// MaxType is the highest message type in use; anything above is unknown.
const MaxType = Wake

// SocketOp is the operation of a Socket call; sockcall.Call says which
// arguments each takes.
type SocketOp uint16

// Socket operations.
const (
	OpOpen      SocketOp = 1 + iota // a socket of a type; returns the descriptor (and an exposed socket's region)
	OpBind                          // to a local address
	OpConnect                       // to a remote address, waiting unless MSG_DONTWAIT
	OpSendTo                        // data, to an address (none: connected); returns bytes sent (a stream may take fewer)
	OpRecvFrom                      // at most so many bytes; returns bytes, with the data and the source
	OpClose                         //
	OpLocalAddr                     // returns 0, with the address
	OpPoll                          // returns the events asked about that are ready now
	OpShutdown                      // SHUT_RD, SHUT_WR or SHUT_RDWR
	OpSetOpt                        // a level, an option and a value
	OpGetOpt                        // a level and an option; returns the value
	OpListen                        // with a backlog
	OpAccept                        // waiting unless MSG_DONTWAIT; returns the new socket, with its peer
	OpDropIdle                      // exposed: the application unmapped every region of its closed sockets
	OpPollSet                       // a whole descriptor set to syscall, waiting up to a timeout; returns how many are ready, with the first of them
)

// NumSocketOps bounds the socket operations: a table indexed by SocketOp
// has this many entries.
const NumSocketOps = int(OpPollSet) + 1

var typeNames = map[Type]string{
	Register: "register", Lookup: "lookup", SetAlarm: "set-alarm", Notify: "notify",
	Ack: "ack", Error: "error", Deposit: "deposit", Collect: "collect", Alarm: "alarm", Notification: "notification",
	EndpointUpdate: "endpoint-update", Shutdown: "shutdown", EndpointDown: "endpoint-down", Ping: "ping", Pong: "pong", Bench: "bench",
	FrameRx: "frame-rx", FrameTx: "frame-tx", BufFree: "buf-free",
	Datagram: "datagram", Unreachable: "unreachable", ICMPError: "icmp-error", Socket: "socket", SocketReply: "socket-reply",
	Doorbell: "doorbell", Wake: "wake",
}

// Known reports whether t is a type newtsim defines.
func (t Type) Known() bool { _, ok := typeNames[t]; return ok }

// IsKernelCall reports whether t is a request addressed to the kernel.
func (t Type) IsKernelCall() bool {
	return t >= Register && t <= Notify || t == Deposit || t == Collect
}

// String names the type.
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

// Message is the unit of every transport: 64 bytes, one cache line. Bulk
// data never travels in a message; it carries references into buffer pools
// (see package ipc/pool) instead.
type Message struct {
	// Src is the sender's endpoint. Transports fill it in; the kernel
	// refuses a message whose Src is not the connection's own endpoint.
	Src Endpoint
	// Dst is the receiver's endpoint.
	Dst Endpoint
	// Type says what the message is.
	Type Type
	// Flags are type-specific.
	Flags uint16
	// Seq matches replies to requests.
	Seq uint32
	// Arg holds the type-specific arguments.
	Arg [NumArgs]uint64
}

// The layout is fixed: rings copy messages as raw memory.
var _ [MessageSize - unsafe.Sizeof(Message{})]struct{}
var _ [unsafe.Sizeof(Message{}) - MessageSize]struct{}

// String formats a message for logs.
func (m *Message) String() string {
	return fmt.Sprintf("%s %s->%s seq=%d args=%x", m.Type, m.Src, m.Dst, m.Seq, m.Arg)
}

// Marshal encodes m into b (at least MessageSize bytes) in little-endian
// order, the wire format of kernel messages.
func (m *Message) Marshal(b []byte) {
	_ = b[MessageSize-1]
	binary.LittleEndian.PutUint32(b[0:], uint32(m.Src))
	binary.LittleEndian.PutUint32(b[4:], uint32(m.Dst))
	binary.LittleEndian.PutUint16(b[8:], uint16(m.Type))
	binary.LittleEndian.PutUint16(b[10:], m.Flags)
	binary.LittleEndian.PutUint32(b[12:], m.Seq)
	for i, a := range m.Arg {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
}

// ErrMessageSize is returned by Unmarshal for input that is not exactly one
// message long.
var ErrMessageSize = errors.New("ipc: message is not 64 bytes")

// Unmarshal decodes exactly one message from b. It checks the length only;
// what the fields mean is for the receiver to check.
func (m *Message) Unmarshal(b []byte) error {
	if len(b) != MessageSize {
		return fmt.Errorf("%w: got %d", ErrMessageSize, len(b))
	}
	m.Src = Endpoint(binary.LittleEndian.Uint32(b[0:]))
	m.Dst = Endpoint(binary.LittleEndian.Uint32(b[4:]))
	m.Type = Type(binary.LittleEndian.Uint16(b[8:]))
	m.Flags = binary.LittleEndian.Uint16(b[10:])
	m.Seq = binary.LittleEndian.Uint32(b[12:])
	for i := range m.Arg {
		m.Arg[i] = binary.LittleEndian.Uint64(b[16+8*i:])
	}
	return nil
}

// maxName is the longest name SetName can pack into a message.
const maxName = 8 * (NumArgs - 1)

// SetName packs a process name into Arg[1:] (at most 40 bytes), leaving
// Arg[0] free.
func (m *Message) SetName(name string) error {
	if len(name) > maxName {
		return fmt.Errorf("ipc: name %q longer than %d bytes", name, maxName)
	}
	var buf [maxName]byte
	copy(buf[:], name)
	for i := 0; i < NumArgs-1; i++ {
		m.Arg[1+i] = binary.LittleEndian.Uint64(buf[8*i:])
	}
	return nil
}

// Name unpacks a name packed by SetName.
func (m *Message) Name() string {
	var buf [maxName]byte
	for i := 0; i < NumArgs-1; i++ {
		binary.LittleEndian.PutUint64(buf[8*i:], m.Arg[1+i])
	}
	n := 0
	for n < len(buf) && buf[n] != 0 {
		n++
	}
	return string(buf[:n])
}

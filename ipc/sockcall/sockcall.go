// Package sockcall gives socket calls and their replies named fields over
// the 64-byte ipc.Message: what the socket library's `message` backend
// sends (to syscall, which passes it to the transport owning the socket,
// or straight to a transport), what comes back, and the two messages left
// once socket buffers are exposed (Doorbell, Wake; see package
// ipc/sockbuf).
//
// Encode writes a message's type, flags and arguments (the header, Src,
// Dst and Seq, is the sender's to set); Decode reads them back. Which
// words a call uses depends on its operation, so both follow one table
// (see Call). Decode never fails: the receiver checks the values.
package sockcall

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
)

// Call is a socket call (ipc.Socket; its Flags is the operation). The
// words of the message each operation uses:
//
//	op          word 0  words 1, 2       word 3  word 4   word 5
//	OpOpen      Type                     Region  Exposed  Caller
//	OpBind      Sock    Addr                              Caller
//	OpConnect   Sock    Addr                     Flags    Caller
//	OpSendTo    Sock    Addr             Buf     Flags    Caller
//	OpRecvFrom  Sock                     Max     Flags    Caller
//	OpAccept    Sock                             Flags    Caller
//	OpListen    Sock                             Backlog  Caller
//	OpPoll      Sock                     Arm     Events   Caller
//	OpShutdown  Sock                             How      Caller
//	OpSetOpt    Sock    Level, Option            Value    Caller
//	OpGetOpt    Sock    Level, Option                     Caller
//	OpDropIdle          Epoch (word 1)                    Caller
//	OpPollSet   Count   Timeout (word 1)  Buf             Caller
//	others      Sock                                      Caller
//
// Fields an operation does not use are not sent.
type Call struct {
	Op ipc.SocketOp
	// Sock is the descriptor: the application's, as syscall keeps it, or
	// the transport's socket id, between syscall and a transport and on
	// calls straight to a transport.
	Sock uint64
	// Type is the socket type to open (SOCK_STREAM, SOCK_DGRAM).
	Type int
	// Addr is the address to bind, connect or send to. The zero AddrPort
	// (no address: a send on a connected socket) travels as zero words,
	// and zero words read as it.
	Addr netip.AddrPort
	// Level and Option name a socket option.
	Level, Option int
	// Value is the option's value to set.
	Value int
	// Buf holds the data to send, in the caller's pool.
	Buf pool.Ref
	// Max is the most bytes a receive takes (0: a buffer's worth).
	Max int
	// Flags are MSG_ flags (MSG_DONTWAIT, MSG_PEEK).
	Flags int
	// Events are the poll events asked about.
	Events int16
	// Arm asks the transport, when none of Events is ready, to send the
	// caller a Wake once the socket changes (once): the message backend's
	// poll then sleeps until woken instead of asking again and again.
	Arm bool
	// How is shutdown's SHUT_RD, SHUT_WR or SHUT_RDWR.
	How int
	// Backlog is listen's.
	Backlog int
	// Exposed asks a transport, called straight, for an exposed socket
	// (package ipc/sockbuf); Region offers the region of one of the
	// caller's closed sockets for reuse.
	Exposed bool
	Region  uint64
	// Epoch counts the caller's drops of its idle regions (OpDropIdle).
	Epoch uint64
	// Count is how many entries (PollEntry) of a poll set Buf holds
	// (OpPollSet).
	Count int
	// Timeout is how long an OpPollSet may wait for an entry to become
	// ready: 0 not at all, negative for ever.
	Timeout time.Duration
	// Caller is the application that called, as syscall tells the
	// transport it passes the call to (zero on the application's own
	// message).
	Caller ipc.Endpoint
}

// exposedWord is word 4 of an OpOpen asking for an exposed socket.
const exposedWord = 1

// armWord is word 3 of an OpPoll that asks for a Wake.
const armWord = 1

// Encode writes c into m.
func (c Call) Encode(m *ipc.Message) {
	m.Type, m.Flags = ipc.Socket, uint16(c.Op)
	var a [ipc.NumArgs]uint64
	a[0] = c.Sock
	a[5] = uint64(c.Caller)
	switch c.Op {
	case ipc.OpOpen:
		a[0], a[3] = uint64(int64(c.Type)), c.Region
		if c.Exposed {
			a[4] = exposedWord
		}
	case ipc.OpBind:
		a[1], a[2] = packAddrPort(c.Addr)
	case ipc.OpConnect:
		a[1], a[2] = packAddrPort(c.Addr)
		a[4] = uint64(int64(c.Flags))
	case ipc.OpSendTo:
		a[1], a[2] = packAddrPort(c.Addr)
		a[3], a[4] = uint64(c.Buf), uint64(int64(c.Flags))
	case ipc.OpRecvFrom:
		a[3], a[4] = uint64(int64(c.Max)), uint64(int64(c.Flags))
	case ipc.OpAccept:
		a[4] = uint64(int64(c.Flags))
	case ipc.OpListen:
		a[4] = uint64(int64(c.Backlog))
	case ipc.OpPoll:
		a[4] = uint64(uint16(c.Events))
		if c.Arm {
			a[3] = armWord
		}
	case ipc.OpShutdown:
		a[4] = uint64(int64(c.How))
	case ipc.OpSetOpt:
		a[1], a[2], a[4] = uint64(int64(c.Level)), uint64(int64(c.Option)), uint64(int64(c.Value))
	case ipc.OpGetOpt:
		a[1], a[2] = uint64(int64(c.Level)), uint64(int64(c.Option))
	case ipc.OpDropIdle:
		a[0], a[1] = 0, c.Epoch
	case ipc.OpPollSet:
		a[0], a[1], a[3] = uint64(int64(c.Count)), uint64(int64(c.Timeout)), uint64(c.Buf)
	}
	m.Arg = a
}

// Decode reads c from m.
func (c *Call) Decode(m *ipc.Message) {
	a := &m.Arg
	*c = Call{Op: ipc.SocketOp(m.Flags), Sock: a[0], Caller: ipc.Endpoint(a[5])}
	switch c.Op {
	case ipc.OpOpen:
		c.Sock = 0
		c.Type, c.Region, c.Exposed = int(int64(a[0])), a[3], a[4] == exposedWord
	case ipc.OpBind:
		c.Addr = unpackAddrPort(a[1], a[2])
	case ipc.OpConnect:
		c.Addr, c.Flags = unpackAddrPort(a[1], a[2]), int(int64(a[4]))
	case ipc.OpSendTo:
		c.Addr = unpackAddrPort(a[1], a[2])
		c.Buf, c.Flags = pool.Ref(a[3]), int(int64(a[4]))
	case ipc.OpRecvFrom:
		c.Max, c.Flags = int(int64(a[3])), int(int64(a[4]))
	case ipc.OpAccept:
		c.Flags = int(int64(a[4]))
	case ipc.OpListen:
		c.Backlog = int(int64(a[4]))
	case ipc.OpPoll:
		c.Events, c.Arm = int16(a[4]), a[3] == armWord
	case ipc.OpShutdown:
		c.How = int(int64(a[4]))
	case ipc.OpSetOpt:
		c.Level, c.Option, c.Value = int(int64(a[1])), int(int64(a[2])), int(int64(a[4]))
	case ipc.OpGetOpt:
		c.Level, c.Option = int(int64(a[1])), int(int64(a[2]))
	case ipc.OpDropIdle:
		c.Sock, c.Epoch = 0, a[1]
	case ipc.OpPollSet:
		c.Sock = 0
		c.Count, c.Timeout, c.Buf = int(int64(a[0])), time.Duration(int64(a[1])), pool.Ref(a[3])
	}
}

// Reply starts the reply to c: its operation, the result, and the caller
// going back as it came.
func (c *Call) Reply(result int64) Reply {
	return Reply{Op: c.Op, Result: result, Caller: c.Caller}
}

// packAddrPort packs a call's address: none packs as zero words.
func packAddrPort(a netip.AddrPort) (uint64, uint64) {
	if !a.IsValid() {
		return 0, 0
	}
	return ipc.PackAddrPort(a)
}

// unpackAddrPort unpacks a call's address: words that pack no address
// and no port are none.
func unpackAddrPort(addr, port uint64) netip.AddrPort {
	if uint32(addr) == 0 && uint16(port) == 0 {
		return netip.AddrPort{}
	}
	return ipc.UnpackAddrPort(addr, port)
}

// Reply answers a socket call (ipc.SocketReply; its Flags is the call's
// operation). Its words:
//
//	word 0  Result
//	word 1  Region (OpOpen), or with word 2 Addr (OpAccept, OpRecvFrom, OpLocalAddr)
//	word 3  Buf (OpRecvFrom)
//	words 1-4  Ready (OpPollSet): two entries a word, each an index and its events
//	word 5  Caller
type Reply struct {
	Op ipc.SocketOp
	// Result is the call's result: a descriptor, a count, poll events, an
	// option's value, or a negated errno for a failure.
	Result int64
	// Addr is the peer an accept took, the source of received data or the
	// socket's own name. Zero words read as 0.0.0.0:0, an unbound
	// socket's name.
	Addr netip.AddrPort
	// Region is an exposed socket's region.
	Region uint64
	// Buf holds received data, in the transport's pool.
	Buf pool.Ref
	// Caller is the application the reply goes back to, between a
	// transport and syscall.
	Caller ipc.Endpoint
	// Ready is an OpPollSet's answer: its Result counts the set's ready
	// entries, and the first min(Result, MaxPollReady) of them, by index
	// in the set, are here.
	Ready [MaxPollReady]PollReady
}

// Encode writes r into m.
func (r Reply) Encode(m *ipc.Message) {
	m.Type, m.Flags = ipc.SocketReply, uint16(r.Op)
	var a [ipc.NumArgs]uint64
	a[0], a[5] = uint64(r.Result), uint64(r.Caller)
	switch r.Op {
	case ipc.OpOpen:
		a[1] = r.Region
	case ipc.OpAccept, ipc.OpLocalAddr:
		a[1], a[2] = ipc.PackAddrPort(r.Addr)
	case ipc.OpRecvFrom:
		a[1], a[2] = ipc.PackAddrPort(r.Addr)
		a[3] = uint64(r.Buf)
	case ipc.OpPollSet:
		for i := range r.Reported() {
			e := r.Ready[i]
			a[1+i/2] |= (uint64(e.Index) | uint64(uint16(e.Revents))<<16) << (32 * (i % 2))
		}
	}
	m.Arg = a
}

// Decode reads r from m.
func (r *Reply) Decode(m *ipc.Message) {
	a := &m.Arg
	*r = Reply{Op: ipc.SocketOp(m.Flags), Result: int64(a[0]), Caller: ipc.Endpoint(a[5])}
	switch r.Op {
	case ipc.OpOpen:
		r.Region = a[1]
	case ipc.OpAccept, ipc.OpLocalAddr:
		r.Addr = ipc.UnpackAddrPort(a[1], a[2])
	case ipc.OpRecvFrom:
		r.Addr, r.Buf = ipc.UnpackAddrPort(a[1], a[2]), pool.Ref(a[3])
	case ipc.OpPollSet:
		for i := range r.Reported() {
			w := a[1+i/2] >> (32 * (i % 2))
			r.Ready[i] = PollReady{Index: uint16(w), Revents: int16(uint16(w >> 16))}
		}
	}
}

// Reported is how many entries of Ready an OpPollSet's reply fills.
func (r *Reply) Reported() int { return int(min(max(r.Result, 0), MaxPollReady)) }

// MaxPollReady is how many ready entries an OpPollSet's reply names: a
// poll that finds more ready asks again for the entries after the last.
const MaxPollReady = 8

// PollReady is a ready entry of a poll set: its index in the set and its
// events.
type PollReady struct {
	Index   uint16
	Revents int16
}

// PollEntry is one descriptor of a poll set, as the buffer of an
// OpPollSet holds it: PollEntrySize bytes, little-endian, the descriptor
// in 4 and the events in 2, then 2 zero.
type PollEntry struct {
	Sock   uint32
	Events int16
}

// PollEntrySize is the size of a PollEntry in a buffer.
const PollEntrySize = 8

// PutPollSet writes set into b, which must hold it (len(set) *
// PollEntrySize bytes), and returns the bytes written.
func PutPollSet(b []byte, set []PollEntry) int {
	for i, e := range set {
		o := i * PollEntrySize
		binary.LittleEndian.PutUint32(b[o:], e.Sock)
		binary.LittleEndian.PutUint16(b[o+4:], uint16(e.Events))
		binary.LittleEndian.PutUint16(b[o+6:], 0)
	}
	return len(set) * PollEntrySize
}

// ErrPollSet is a poll set that its buffer does not hold.
var ErrPollSet = errors.New("sockcall: poll set larger than its buffer")

// ReadPollSet appends to dst the n entries of a poll set b holds, copied
// out of the buffer (which its sender may still write). A set b cannot
// hold, or more entries than an index can name, is ErrPollSet.
func ReadPollSet(dst []PollEntry, b []byte, n int) ([]PollEntry, error) {
	if n < 0 || n > len(b)/PollEntrySize || n > 1<<16 {
		return dst, ErrPollSet
	}
	for i := range n {
		o := i * PollEntrySize
		dst = append(dst, PollEntry{Sock: binary.LittleEndian.Uint32(b[o:]), Events: int16(binary.LittleEndian.Uint16(b[o+4:]))})
	}
	return dst, nil
}

// Doorbell tells a transport that an application posted work on an
// exposed socket while the transport was not looking (ipc.Doorbell).
type Doorbell struct {
	Sock uint64 // the transport's socket id
}

// Encode writes d into m.
func (d Doorbell) Encode(m *ipc.Message) {
	m.Type, m.Flags, m.Arg = ipc.Doorbell, 0, [ipc.NumArgs]uint64{d.Sock}
}

// Decode reads d from m.
func (d *Doorbell) Decode(m *ipc.Message) { d.Sock = m.Arg[0] }

// Wake tells an application waiting in poll that a socket changed
// (ipc.Wake): an exposed socket, or one an armed OpPoll asked about.
type Wake struct {
	Sock uint64 // the transport's socket id
	// Caller is the application to wake, where the Wake goes to syscall
	// to be passed on (zero on a Wake sent to the application itself).
	Caller ipc.Endpoint
	// Events are, for an armed OpPoll, which of the events it asked about
	// the socket was ready for when the Wake was sent (errors and hang-up
	// included, as poll reports them); 0: it changed, but none is ready.
	Events int16
}

// Encode writes w into m.
func (w Wake) Encode(m *ipc.Message) {
	m.Type, m.Flags, m.Arg = ipc.Wake, 0, [ipc.NumArgs]uint64{w.Sock, uint64(w.Caller), uint64(uint16(w.Events))}
}

// Decode reads w from m.
func (w *Wake) Decode(m *ipc.Message) {
	w.Sock, w.Caller, w.Events = m.Arg[0], ipc.Endpoint(m.Arg[1]), int16(uint16(m.Arg[2]))
}

package socket

import (
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
)

// Conn is what the `message` backend needs of the process it runs in: a way
// to make a socket call and wait for the reply, and buffers of its own pool.
// A newtsim server process (sys.Server) is one.
type Conn interface {
	Call(m *ipc.Message) (ipc.Message, error)
	Alloc() (pool.Ref, []byte, error)
	Slice(ref pool.Ref, n int) pool.Ref
	Buffer(m *ipc.Message, arg int) ([]byte, pool.Ref, error)
	Release(ref pool.Ref) error
}

// Message is the `message` backend: every call is a message to the syscall
// server, which passes it to the transport server owning the socket, as in
// NewtOS. Data to send goes in a buffer of the application's pool; data
// received comes in a buffer of the transport's, copied out here.
//
// UDP and TCP sockets: socket, bind, listen, accept, connect (blocking and
// not), send, recv, sendto, recvfrom, read, write, writev, shutdown, close,
// getsockname, non-blocking mode, poll, select, and the options
// SO_REUSEADDR, SO_ERROR, SO_SNDBUF, SO_RCVBUF and TCP_NODELAY. A stream's
// data goes one pool buffer per message: a long send is several messages.
type Message struct {
	c        Conn
	nonblock map[FD]bool
	stream   map[FD]bool
	direct   XConn  // set: calls go straight to the server named to
	to       string // the transport server direct calls go to
}

// NewMessageDirect returns the message backend with its calls sent
// straight to one transport server (to), leaving syscall out: one hop
// fewer, for the benchmark that shows what that hop costs. Descriptors are
// that server's socket ids; only its sockets (TCP for "tcp") exist.
func NewMessageDirect(c XConn, to string) *Message {
	k := NewMessage(c)
	k.direct, k.to = c, to
	return k
}

var _ API = (*Message)(nil)

// NewMessage returns the message backend over c.
func NewMessage(c Conn) *Message {
	return &Message{c: c, nonblock: map[FD]bool{}, stream: map[FD]bool{}}
}

// dontwait adds MSG_DONTWAIT to flags on a non-blocking socket.
func (k *Message) dontwait(fd FD, flags int) uint64 {
	if k.nonblock[fd] {
		flags |= MSG_DONTWAIT
	}
	return uint64(flags)
}

func (k *Message) call(op ipc.SocketOp, args ...uint64) (ipc.Message, error) {
	m := ipc.Message{Type: ipc.Socket, Flags: uint16(op)}
	copy(m.Arg[:], args)
	var r ipc.Message
	var err error
	if k.direct != nil {
		r, err = k.direct.CallTo(k.to, &m)
	} else {
		r, err = k.c.Call(&m)
	}
	if err != nil {
		return r, err
	}
	if res := int64(r.Arg[0]); res < 0 {
		return r, unix.Errno(-res)
	}
	return r, nil
}

func packAddr(a netip.AddrPort) (uint64, uint64, error) {
	if !a.IsValid() {
		return 0, 0, nil
	}
	if !a.Addr().Unmap().Is4() {
		return 0, 0, unix.EAFNOSUPPORT
	}
	b := a.Addr().Unmap().As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3]), uint64(a.Port()), nil
}

func unpackAddr(ip, port uint64) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), uint16(port))
}

// Socket opens a socket.
func (k *Message) Socket(domain, typ, proto int) (FD, error) {
	if domain != AF_INET {
		return -1, unix.EAFNOSUPPORT
	}
	r, err := k.call(ipc.OpOpen, uint64(typ))
	if err != nil {
		return -1, err
	}
	fd := FD(r.Arg[0])
	k.stream[fd] = typ == SOCK_STREAM
	return fd, nil
}

func (k *Message) addrCall(op ipc.SocketOp, fd FD, a netip.AddrPort) error {
	ip, port, err := packAddr(a)
	if err != nil {
		return err
	}
	_, err = k.call(op, uint64(fd), ip, port)
	return err
}

// Bind names the socket.
func (k *Message) Bind(fd FD, addr netip.AddrPort) error { return k.addrCall(ipc.OpBind, fd, addr) }

// Connect sets the socket's peer; on a stream socket it opens the
// connection, waiting for it unless the socket is non-blocking
// (EINPROGRESS: poll for POLLOUT, then read SO_ERROR).
func (k *Message) Connect(fd FD, addr netip.AddrPort) error {
	ip, port, err := packAddr(addr)
	if err != nil {
		return err
	}
	_, err = k.call(ipc.OpConnect, uint64(fd), ip, port, 0, k.dontwait(fd, 0))
	return err
}

// Listen makes a stream socket passive.
func (k *Message) Listen(fd FD, backlog int) error {
	if !k.stream[fd] {
		if _, ok := k.stream[fd]; ok {
			return unix.EOPNOTSUPP
		}
	}
	_, err := k.call(ipc.OpListen, uint64(fd), 0, 0, 0, uint64(uint32(int32(backlog))))
	return err
}

// Accept takes a connection from a listening socket.
func (k *Message) Accept(fd FD) (FD, netip.AddrPort, error) {
	if !k.stream[fd] {
		if _, ok := k.stream[fd]; ok {
			return -1, netip.AddrPort{}, unix.EOPNOTSUPP
		}
	}
	r, err := k.call(ipc.OpAccept, uint64(fd), 0, 0, 0, k.dontwait(fd, 0))
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	nfd := FD(r.Arg[0])
	k.stream[nfd] = true
	return nfd, unpackAddr(r.Arg[1], r.Arg[2]), nil
}

// Send sends on a connected socket.
func (k *Message) Send(fd FD, b []byte, flags int) (int, error) {
	return k.SendTo(fd, b, flags, netip.AddrPort{})
}

// SendTo sends a datagram; to may be zero on a connected socket. On a
// stream socket it sends b a pool buffer at a time: all of it when the
// socket blocks, what fits when it does not.
func (k *Message) SendTo(fd FD, b []byte, flags int, to netip.AddrPort) (int, error) {
	ip, port, err := packAddr(to)
	if err != nil {
		return -1, err
	}
	if !k.stream[fd] {
		return k.sendBuf(fd, b, flags, ip, port)
	}
	total := 0
	for total < len(b) || len(b) == 0 {
		n, err := k.sendBuf(fd, b[total:], flags, ip, port)
		if err != nil {
			if total > 0 && err == unix.EAGAIN {
				return total, nil
			}
			return -1, err
		}
		total += n
		if len(b) == 0 || (n == 0 && k.nonblock[fd]) {
			break
		}
	}
	return total, nil
}

// sendBuf sends what of b one buffer holds (a datagram must fit in one).
func (k *Message) sendBuf(fd FD, b []byte, flags int, ip, port uint64) (int, error) {
	ref, buf, err := k.c.Alloc()
	if err != nil {
		return -1, unix.ENOBUFS
	}
	if len(b) > len(buf) && !k.stream[fd] {
		k.c.Release(ref)
		return -1, unix.EMSGSIZE
	}
	n := copy(buf, b)
	r, err := k.call(ipc.OpSendTo, uint64(fd), ip, port, uint64(k.c.Slice(ref, max(n, 1))), k.dontwait(fd, flags))
	if err != nil {
		return -1, err
	}
	return int(r.Arg[0]), nil
}

// Recv receives on a socket.
func (k *Message) Recv(fd FD, b []byte, flags int) (int, error) {
	n, _, err := k.RecvFrom(fd, b, flags)
	return n, err
}

// RecvFrom receives a datagram, truncated to b as Linux truncates.
func (k *Message) RecvFrom(fd FD, b []byte, flags int) (int, netip.AddrPort, error) {
	r, err := k.call(ipc.OpRecvFrom, uint64(fd), 0, 0, uint64(len(b)), k.dontwait(fd, flags))
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	if r.Arg[0] == 0 && r.Arg[3] == 0 {
		return 0, unpackAddr(r.Arg[1], r.Arg[2]), nil // end of file, no buffer
	}
	data, ref, err := k.c.Buffer(&r, 3)
	if err != nil {
		return -1, netip.AddrPort{}, unix.EFAULT
	}
	n := min(int(r.Arg[0]), len(data))
	n = copy(b, data[:n])
	if err := k.c.Release(ref); err != nil {
		return -1, netip.AddrPort{}, err
	}
	return n, unpackAddr(r.Arg[1], r.Arg[2]), nil
}

// Writev sends the buffers as one datagram, or one stream write.
func (k *Message) Writev(fd FD, bufs [][]byte) (int, error) {
	var all []byte
	for _, b := range bufs {
		all = append(all, b...)
	}
	return k.Send(fd, all, 0)
}

// Shutdown shuts a connected socket down for receiving, sending or both.
func (k *Message) Shutdown(fd FD, how int) error {
	_, err := k.call(ipc.OpShutdown, uint64(fd), 0, 0, 0, uint64(how))
	return err
}

// Close closes the socket.
func (k *Message) Close(fd FD) error {
	delete(k.nonblock, fd)
	delete(k.stream, fd)
	_, err := k.call(ipc.OpClose, uint64(fd))
	return err
}

// SetNonblock sets or clears non-blocking mode, kept in the library.
func (k *Message) SetNonblock(fd FD, nonblocking bool) error {
	k.nonblock[fd] = nonblocking
	return nil
}

// SetsockoptInt sets an option: SO_REUSEADDR for UDP sockets so far;
// others are ENOPROTOOPT.
func (k *Message) SetsockoptInt(fd FD, level, opt, value int) error {
	_, err := k.call(ipc.OpSetOpt, uint64(fd), uint64(level), uint64(opt), 0, uint64(value))
	return err
}

// GetsockoptInt reads an option: SO_REUSEADDR and SO_ERROR (which clears
// the pending error) for UDP sockets so far.
func (k *Message) GetsockoptInt(fd FD, level, opt int) (int, error) {
	r, err := k.call(ipc.OpGetOpt, uint64(fd), uint64(level), uint64(opt))
	if err != nil {
		return 0, err
	}
	return int(int64(r.Arg[0])), nil
}

// LocalAddr returns the socket's address.
func (k *Message) LocalAddr(fd FD) (netip.AddrPort, error) {
	r, err := k.call(ipc.OpLocalAddr, uint64(fd))
	if err != nil {
		return netip.AddrPort{}, err
	}
	return unpackAddr(r.Arg[1], r.Arg[2]), nil
}

// pollEvery is how often Poll asks again while nothing is ready.
const pollEvery = 100 * time.Microsecond

// Poll asks each socket's transport what is ready (one message each) and,
// while nothing is and the timeout allows, asks again every 100 us. It is
// correct but costly; waiting in one message, woken by the transport,
// comes with the wake-up design of exposed socket buffers.
func (k *Message) Poll(fds []PollFD, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		n := 0
		for i := range fds {
			fds[i].Revents = 0
			r, err := k.call(ipc.OpPoll, uint64(fds[i].FD), 0, 0, 0, uint64(uint16(fds[i].Events)))
			switch {
			case err == unix.EBADF:
				fds[i].Revents = POLLNVAL
			case err != nil:
				return -1, err
			default:
				fds[i].Revents = int16(r.Arg[0])
			}
			if fds[i].Revents != 0 {
				n++
			}
		}
		if n > 0 || timeout == 0 || (timeout > 0 && time.Now().After(deadline)) {
			return n, nil
		}
		time.Sleep(pollEvery)
	}
}

package socket

import (
	"errors"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/sockcall"
)

// Conn is what the `message` backend needs of the process it runs in: a way
// to make a socket call and wait for the reply, and buffers of its own pool.
// A newtsim server process (sys.Server) is one.
type Conn interface {
	Call(m *ipc.Message) (ipc.Message, error)
	Alloc() (pool.Ref, []byte, error)
	Slice(ref pool.Ref, n int) pool.Ref
	Buffer(m *ipc.Message, ref pool.Ref) ([]byte, error)
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
	set      []sockcall.PollEntry
	index    []int // the entry of fds each of set is
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
func (k *Message) dontwait(fd FD, flags int) int {
	if k.nonblock[fd] {
		flags |= MSG_DONTWAIT
	}
	return flags
}

// call makes a socket call and waits for its reply; a failure comes back
// as the errno.
func (k *Message) call(c sockcall.Call) (sockcall.Reply, ipc.Message, error) {
	var m ipc.Message
	c.Encode(&m)
	var rm ipc.Message
	var err error
	if k.direct != nil {
		rm, err = k.direct.CallTo(k.to, &m)
	} else {
		rm, err = k.c.Call(&m)
	}
	if errors.Is(err, ipc.ErrDeadEndpoint) {
		// The server died with the call (docs/RECOVERY.md). A transport's
		// death resets its sockets; syscall's takes every descriptor with
		// it.
		if k.direct != nil {
			err = unix.ECONNRESET
		} else {
			err = unix.EBADF
		}
	}
	return reply(rm, err)
}

// reply decodes a call's reply message.
func reply(rm ipc.Message, err error) (sockcall.Reply, ipc.Message, error) {
	var r sockcall.Reply
	if err != nil {
		return r, rm, err
	}
	r.Decode(&rm)
	if r.Result < 0 {
		return r, rm, unix.Errno(-r.Result)
	}
	return r, rm, nil
}

// checkAddr refuses an address a message cannot carry: only IPv4 ones
// (or none) travel.
func checkAddr(a netip.AddrPort) error {
	if a.IsValid() && !a.Addr().Unmap().Is4() {
		return unix.EAFNOSUPPORT
	}
	return nil
}

// Socket opens a socket.
func (k *Message) Socket(domain, typ, proto int) (FD, error) {
	if domain != AF_INET {
		return -1, unix.EAFNOSUPPORT
	}
	r, _, err := k.call(sockcall.Call{Op: ipc.OpOpen, Type: typ})
	if err != nil {
		return -1, err
	}
	fd := FD(r.Result)
	k.stream[fd] = typ == SOCK_STREAM
	return fd, nil
}

// Bind names the socket.
func (k *Message) Bind(fd FD, addr netip.AddrPort) error {
	if err := checkAddr(addr); err != nil {
		return err
	}
	_, _, err := k.call(sockcall.Call{Op: ipc.OpBind, Sock: uint64(fd), Addr: addr})
	return err
}

// Connect sets the socket's peer; on a stream socket it opens the
// connection, waiting for it unless the socket is non-blocking
// (EINPROGRESS: poll for POLLOUT, then read SO_ERROR).
func (k *Message) Connect(fd FD, addr netip.AddrPort) error {
	if err := checkAddr(addr); err != nil {
		return err
	}
	_, _, err := k.call(sockcall.Call{Op: ipc.OpConnect, Sock: uint64(fd), Addr: addr, Flags: k.dontwait(fd, 0)})
	return err
}

// Listen makes a stream socket passive.
func (k *Message) Listen(fd FD, backlog int) error {
	if !k.stream[fd] {
		if _, ok := k.stream[fd]; ok {
			return unix.EOPNOTSUPP
		}
	}
	_, _, err := k.call(sockcall.Call{Op: ipc.OpListen, Sock: uint64(fd), Backlog: backlog})
	return err
}

// Accept takes a connection from a listening socket.
func (k *Message) Accept(fd FD) (FD, netip.AddrPort, error) {
	if !k.stream[fd] {
		if _, ok := k.stream[fd]; ok {
			return -1, netip.AddrPort{}, unix.EOPNOTSUPP
		}
	}
	r, _, err := k.call(sockcall.Call{Op: ipc.OpAccept, Sock: uint64(fd), Flags: k.dontwait(fd, 0)})
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	nfd := FD(r.Result)
	k.stream[nfd] = true
	return nfd, r.Addr, nil
}

// Send sends on a connected socket.
func (k *Message) Send(fd FD, b []byte, flags int) (int, error) {
	return k.SendTo(fd, b, flags, netip.AddrPort{})
}

// SendTo sends a datagram; to may be zero on a connected socket. On a
// stream socket it sends b a pool buffer at a time: all of it when the
// socket blocks, what fits when it does not.
func (k *Message) SendTo(fd FD, b []byte, flags int, to netip.AddrPort) (int, error) {
	return k.sendv(fd, [][]byte{b}, flags, to)
}

// sendv sends the stream of bufs: on a stream socket as much as the
// connection takes, a pool buffer at a time; on a datagram socket one
// datagram.
func (k *Message) sendv(fd FD, bufs [][]byte, flags int, to netip.AddrPort) (int, error) {
	if err := checkAddr(to); err != nil {
		return -1, err
	}
	size := Size(bufs)
	if !k.stream[fd] {
		return k.sendBuf(fd, bufs, 0, size, flags, to)
	}
	total := 0
	for total < size || size == 0 {
		n, err := k.sendBuf(fd, bufs, total, size, flags, to)
		if err != nil {
			if total > 0 && err == unix.EAGAIN {
				return total, nil
			}
			return -1, err
		}
		total += n
		if size == 0 || (n == 0 && k.nonblock[fd]) {
			break
		}
	}
	return total, nil
}

// sendBuf sends what of bufs (size bytes in all) from offset off one
// buffer holds (a datagram must fit in one).
func (k *Message) sendBuf(fd FD, bufs [][]byte, off, size, flags int, to netip.AddrPort) (int, error) {
	ref, buf, err := k.c.Alloc()
	if err != nil {
		return -1, unix.ENOBUFS
	}
	if size-off > len(buf) && !k.stream[fd] {
		k.c.Release(ref)
		return -1, unix.EMSGSIZE
	}
	n := Gather(buf, bufs, off)
	r, _, err := k.call(sockcall.Call{Op: ipc.OpSendTo, Sock: uint64(fd), Addr: to,
		Buf: k.c.Slice(ref, max(n, 1)), Flags: k.dontwait(fd, flags)})
	if err != nil {
		return -1, err
	}
	return int(r.Result), nil
}

// Recv receives on a socket.
func (k *Message) Recv(fd FD, b []byte, flags int) (int, error) {
	n, _, err := k.RecvFrom(fd, b, flags)
	return n, err
}

// RecvFrom receives a datagram, truncated to b as Linux truncates.
func (k *Message) RecvFrom(fd FD, b []byte, flags int) (int, netip.AddrPort, error) {
	r, rm, err := k.call(sockcall.Call{Op: ipc.OpRecvFrom, Sock: uint64(fd), Max: len(b), Flags: k.dontwait(fd, flags)})
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	if r.Result == 0 && r.Buf == 0 {
		return 0, r.Addr, nil // end of file, no buffer
	}
	data, err := k.c.Buffer(&rm, r.Buf)
	if err != nil {
		return -1, netip.AddrPort{}, unix.EFAULT
	}
	n := int(min(r.Result, int64(len(data))))
	n = copy(b, data[:n])
	if err := k.c.Release(r.Buf); err != nil {
		return -1, netip.AddrPort{}, err
	}
	return n, r.Addr, nil
}

// Writev sends the buffers as one datagram, or one stream write.
func (k *Message) Writev(fd FD, bufs [][]byte) (int, error) {
	return k.sendv(fd, bufs, 0, netip.AddrPort{})
}

// Shutdown shuts a connected socket down for receiving, sending or both.
func (k *Message) Shutdown(fd FD, how int) error {
	_, _, err := k.call(sockcall.Call{Op: ipc.OpShutdown, Sock: uint64(fd), How: how})
	return err
}

// Close closes the socket.
func (k *Message) Close(fd FD) error {
	delete(k.nonblock, fd)
	delete(k.stream, fd)
	_, _, err := k.call(sockcall.Call{Op: ipc.OpClose, Sock: uint64(fd)})
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
	_, _, err := k.call(sockcall.Call{Op: ipc.OpSetOpt, Sock: uint64(fd), Level: level, Option: opt, Value: value})
	return err
}

// GetsockoptInt reads an option: SO_REUSEADDR and SO_ERROR (which clears
// the pending error) for UDP sockets so far.
func (k *Message) GetsockoptInt(fd FD, level, opt int) (int, error) {
	r, _, err := k.call(sockcall.Call{Op: ipc.OpGetOpt, Sock: uint64(fd), Level: level, Option: opt})
	if err != nil {
		return 0, err
	}
	return int(r.Result), nil
}

// LocalAddr returns the socket's address.
func (k *Message) LocalAddr(fd FD) (netip.AddrPort, error) {
	r, _, err := k.call(sockcall.Call{Op: ipc.OpLocalAddr, Sock: uint64(fd)})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return r.Addr, nil
}

// pollEvery is how often Poll asks again while nothing is ready, where it
// cannot be woken (a connection without WaitWake).
const pollEvery = 100 * time.Microsecond

// pollRecheck bounds a woken poll's sleep: a Wake that was lost (dropped
// on a full channel, or never sent by a transport that restarted) costs
// at most this.
const pollRecheck = 10 * time.Millisecond

// waker is a connection on which a poll can sleep until a transport's
// Wake (sys.Server is one).
type waker interface {
	WaitWake(timeout time.Duration) error
}

// Poll names the whole set to syscall in one call (ipc.OpPollSet), its
// entries in a buffer of the process's pool (a negative descriptor is
// left out, as poll(2) skips it). syscall answers with the ready entries,
// asking the transports only where it does not know, and when none is
// ready it waits, up to the timeout, until a transport's Wake finds one
// (docs/LATENCY.md). A reply names at most sockcall.MaxPollReady ready
// entries: when more are, Poll asks again, at once, about the entries
// after the last it named.
//
// Straight to a transport (NewMessageDirect), with a set no buffer holds,
// or when no buffer is free, Poll asks descriptor by descriptor
// (pollEach).
func (k *Message) Poll(fds []PollFD, timeout time.Duration) (int, error) {
	if k.direct != nil {
		return k.pollEach(fds, timeout)
	}
	k.set, k.index = k.set[:0], k.index[:0]
	for i := range fds {
		fds[i].Revents = 0
		if fds[i].FD < 0 {
			continue // ignored, as poll(2) ignores it
		}
		if uint64(fds[i].FD) > 1<<32-1 {
			return k.pollEach(fds, timeout)
		}
		k.set = append(k.set, sockcall.PollEntry{Sock: uint32(fds[i].FD), Events: fds[i].Events})
		k.index = append(k.index, i)
	}
	if len(k.set) == 0 {
		return k.pollEach(fds, timeout) // nothing to ask: it only sleeps
	}
	total := 0
	for start := 0; start < len(k.set); {
		ref, buf, err := k.c.Alloc()
		if err != nil || len(buf) < (len(k.set)-start)*sockcall.PollEntrySize {
			if err == nil {
				k.c.Release(ref)
			}
			if total > 0 {
				return total, nil
			}
			return k.pollEach(fds, timeout)
		}
		n := sockcall.PutPollSet(buf, k.set[start:])
		r, _, err := k.call(sockcall.Call{Op: ipc.OpPollSet, Count: len(k.set) - start, Timeout: timeout,
			Buf: k.c.Slice(ref, n)})
		switch {
		case err == unix.EBADF:
			// syscall died: every descriptor went with it.
			for _, i := range k.index[start:] {
				fds[i].Revents = POLLNVAL
			}
			return total + len(k.set) - start, nil
		case err != nil:
			return -1, err
		}
		got := r.Reported()
		last := -1
		for _, e := range r.Ready[:got] {
			j := start + int(e.Index)
			if j >= len(k.set) || int(e.Index) <= last-start {
				return -1, unix.EIO // not an answer syscall gives
			}
			fds[k.index[j]].Revents = e.Revents
			last = j
		}
		total += got
		if int(r.Result) <= got {
			break
		}
		start, timeout = last+1, 0 // more are ready: ask about the rest, not waiting
	}
	return total, nil
}

// pollEach asks each socket's transport what is ready (one message each; a
// negative descriptor is skipped, as poll(2) skips it). While nothing is
// and the timeout allows, each of those calls also arms its socket: the
// transport sends one Wake when the socket next changes, and pollEach
// sleeps until a Wake comes (or pollRecheck passes), then asks again.
// Where the connection cannot wait for a Wake, it asks again every 100 us.
func (k *Message) pollEach(fds []PollFD, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	w, canWait := k.c.(waker)
	for {
		n := 0
		for i := range fds {
			fds[i].Revents = 0
			if fds[i].FD < 0 {
				continue // ignored, as poll(2) ignores it
			}
			r, _, err := k.call(sockcall.Call{Op: ipc.OpPoll, Sock: uint64(fds[i].FD), Events: fds[i].Events,
				Arm: canWait && timeout != 0})
			switch {
			case err == unix.EBADF:
				fds[i].Revents = POLLNVAL
			case err != nil:
				return -1, err
			default:
				fds[i].Revents = int16(r.Result)
			}
			if fds[i].Revents != 0 {
				n++
			}
		}
		if n > 0 || timeout == 0 || (timeout > 0 && time.Now().After(deadline)) {
			return n, nil
		}
		if !canWait {
			time.Sleep(pollEvery)
			continue
		}
		wait := pollRecheck
		if timeout > 0 {
			wait = min(wait, time.Until(deadline))
		}
		if wait > 0 {
			if err := w.WaitWake(wait); err != nil {
				return -1, err
			}
		}
	}
}

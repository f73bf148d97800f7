package host

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/servers/sockabi"
	"github.com/newtsim/newtsim/servers/tcp"
	"github.com/newtsim/newtsim/servers/udp"
)

// API is the socket library's API on a monolithic host: each call goes
// straight into the host's tcp or udp engine under the host's lock, and a
// call that must wait (blocking connect, accept, recv, send; poll) waits
// for the host to handle its next frame or timer. Like the other backends,
// an API value is for one goroutine, with descriptors of its own, as a
// process has; the host's own loop (Serve) runs beside it.
type API struct {
	h        *Host
	socks    map[socket.FD]sockRef
	next     socket.FD
	nonblock map[socket.FD]bool
	iov      [][]byte // what a Writev has left, handed to the engine
}

// sockRef is the engine socket a descriptor stands for.
type sockRef struct {
	udp bool // a udp.SockID; else a tcp.SockID
	id  int32
}

var _ socket.API = (*API)(nil)

// firstFD is the first descriptor an API gives, as a process's first
// after standard input, output and error.
const firstFD socket.FD = 3

// API returns a socket API for an application of the host.
func (h *Host) API() *API {
	return &API{h: h, socks: map[socket.FD]sockRef{}, next: firstFD, nonblock: map[socket.FD]bool{}}
}

// errno is the errno for an engine's error; an errno stays as it is.
func errno(err error) error {
	var e unix.Errno
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	}
	return sockabi.Errno(err)
}

// wouldBlock reports an engine's answer that a call must wait.
func wouldBlock(err error) bool {
	return errors.Is(err, tcp.ErrWouldBlock) || errors.Is(err, udp.ErrWouldBlock)
}

// wait runs try under the host's lock until it stops answering that it
// would block, waiting for the host to change between tries; with block
// false it tries once.
func (a *API) wait(block bool, deadline time.Time, try func(now time.Time) error) error {
	for {
		a.h.mu.Lock()
		now := time.Now()
		err := try(now)
		a.h.process(now)
		ch := a.h.changed
		a.h.mu.Unlock()
		if !wouldBlock(err) || !block {
			return err
		}
		if deadline.IsZero() {
			<-ch
			continue
		}
		d := time.Until(deadline)
		if d <= 0 {
			return err
		}
		t := time.NewTimer(d)
		select {
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// add gives the engine socket r a new descriptor.
func (a *API) add(r sockRef) socket.FD {
	fd := a.next
	a.next++
	a.socks[fd] = r
	return fd
}

// sock returns the engine socket of fd; EBADF for a descriptor not open.
func (a *API) sock(fd socket.FD) (sockRef, error) {
	r, ok := a.socks[fd]
	if !ok {
		return sockRef{}, unix.EBADF
	}
	return r, nil
}

// blocking reports whether a call on fd with flags may wait.
func (a *API) blocking(fd socket.FD, flags int) bool {
	return !a.nonblock[fd] && flags&socket.MSG_DONTWAIT == 0
}

// Socket opens a TCP (SOCK_STREAM) or UDP (SOCK_DGRAM) socket.
func (a *API) Socket(domain, typ, proto int) (socket.FD, error) {
	if domain != socket.AF_INET {
		return -1, unix.EAFNOSUPPORT
	}
	a.h.mu.Lock()
	defer a.h.mu.Unlock()
	switch typ {
	case socket.SOCK_STREAM:
		return a.add(sockRef{id: int32(a.h.tcp.Open())}), nil
	case socket.SOCK_DGRAM:
		return a.add(sockRef{udp: true, id: int32(a.h.udp.Open())}), nil
	}
	return -1, unix.EPROTONOSUPPORT
}

// call runs f once under the host's lock, with the descriptor's socket.
func (a *API) call(fd socket.FD, f func(now time.Time, r sockRef) error) error {
	r, err := a.sock(fd)
	if err != nil {
		return err
	}
	return errno(a.wait(false, time.Time{}, func(now time.Time) error { return f(now, r) }))
}

// Bind names the socket.
func (a *API) Bind(fd socket.FD, addr netip.AddrPort) error {
	return a.call(fd, func(_ time.Time, r sockRef) error {
		if r.udp {
			return a.h.udp.Bind(udp.SockID(r.id), addr)
		}
		return a.h.tcp.Bind(tcp.SockID(r.id), addr)
	})
}

// Listen makes a TCP socket passive.
func (a *API) Listen(fd socket.FD, backlog int) error {
	return a.call(fd, func(_ time.Time, r sockRef) error {
		if r.udp {
			return unix.EOPNOTSUPP
		}
		return a.h.tcp.Listen(tcp.SockID(r.id), backlog)
	})
}

// Connect opens a TCP connection, waiting for it unless the socket is
// non-blocking (EINPROGRESS), or sets a UDP socket's peer.
func (a *API) Connect(fd socket.FD, addr netip.AddrPort) error {
	r, err := a.sock(fd)
	if err != nil {
		return err
	}
	if r.udp {
		return a.call(fd, func(time.Time, sockRef) error { return a.h.udp.Connect(udp.SockID(r.id), addr) })
	}
	id := tcp.SockID(r.id)
	err = a.call(fd, func(now time.Time, _ sockRef) error { return a.h.tcp.Connect(now, id, addr) })
	if err != unix.EINPROGRESS || a.nonblock[fd] {
		return err
	}
	return errno(a.wait(true, time.Time{}, func(time.Time) error {
		done, err := a.h.tcp.ConnectDone(id)
		if !done {
			return tcp.ErrWouldBlock
		}
		return err
	}))
}

// Accept takes a connection.
func (a *API) Accept(fd socket.FD) (socket.FD, netip.AddrPort, error) {
	r, err := a.sock(fd)
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	if r.udp {
		return -1, netip.AddrPort{}, unix.EOPNOTSUPP
	}
	var nid tcp.SockID
	var from netip.AddrPort
	err = a.wait(!a.nonblock[fd], time.Time{}, func(time.Time) error {
		var err error
		nid, from, err = a.h.tcp.Accept(tcp.SockID(r.id))
		return err
	})
	if err != nil {
		return -1, netip.AddrPort{}, errno(err)
	}
	return a.add(sockRef{id: int32(nid)}), from, nil
}

// Send sends: on a TCP socket all of b when blocking, on a UDP socket one
// datagram to its peer.
func (a *API) Send(fd socket.FD, b []byte, flags int) (int, error) {
	return a.SendTo(fd, b, flags, netip.AddrPort{})
}

// SendTo sends; a stream socket has its peer, and a datagram goes to addr
// or, with the zero AddrPort, to the socket's peer.
func (a *API) SendTo(fd socket.FD, b []byte, flags int, addr netip.AddrPort) (int, error) {
	r, err := a.sock(fd)
	if err != nil {
		return -1, err
	}
	if r.udp {
		err := a.call(fd, func(now time.Time, _ sockRef) error {
			if err := a.h.udp.SendTo(udp.SockID(r.id), b, addr); err != nil {
				return err
			}
			a.h.flushUDP(now) // what ip refuses, it counts as dropped, as the udp server's datagrams
			return nil
		})
		if err != nil {
			return -1, err
		}
		return len(b), nil
	}
	return a.sendStream(fd, r, [][]byte{b}, flags)
}

// sendStream sends the stream of bufs on a stream socket, from where the
// buffers lie.
func (a *API) sendStream(fd socket.FD, r sockRef, bufs [][]byte, flags int) (int, error) {
	block := a.blocking(fd, flags)
	size := socket.Size(bufs)
	total := 0
	for {
		err := a.wait(block, time.Time{}, func(now time.Time) error {
			a.iov = slices.AppendSeq(a.iov[:0], socket.Pieces(bufs, total))
			n, err := a.h.tcp.SendV(now, tcp.SockID(r.id), a.iov)
			clear(a.iov) // keep no reference to the caller's buffers
			total += n
			return err
		})
		if err != nil {
			if total > 0 && wouldBlock(err) {
				return total, nil
			}
			return -1, errno(err)
		}
		if total == size || !block {
			return total, nil
		}
	}
}

// Recv receives.
func (a *API) Recv(fd socket.FD, b []byte, flags int) (int, error) {
	n, _, err := a.recv(fd, b, flags, false)
	return n, err
}

// RecvFrom is Recv, with the peer's address.
func (a *API) RecvFrom(fd socket.FD, b []byte, flags int) (int, netip.AddrPort, error) {
	return a.recv(fd, b, flags, true)
}

// recv receives, and with from the sender's address (a stream socket's
// peer).
func (a *API) recv(fd socket.FD, b []byte, flags int, from bool) (int, netip.AddrPort, error) {
	r, err := a.sock(fd)
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	if r.udp && flags&socket.MSG_PEEK != 0 {
		return -1, netip.AddrPort{}, unix.EOPNOTSUPP // the udp engine keeps no peeked datagram, as the udp server
	}
	var n int
	var peer netip.AddrPort
	err = a.wait(a.blocking(fd, flags), time.Time{}, func(now time.Time) error {
		var err error
		if r.udp {
			n, peer, _, err = a.h.udp.RecvFrom(udp.SockID(r.id), b)
			return err
		}
		if n, err = a.h.tcp.Recv(now, tcp.SockID(r.id), b, flags&socket.MSG_PEEK != 0); err == nil && from {
			peer, _ = a.h.tcp.RemoteAddr(tcp.SockID(r.id))
		}
		return err
	})
	if err != nil {
		return -1, netip.AddrPort{}, errno(err)
	}
	return n, peer, nil
}

// Writev sends the buffers as one write (one datagram on a UDP socket).
func (a *API) Writev(fd socket.FD, bufs [][]byte) (int, error) {
	r, err := a.sock(fd)
	if err != nil {
		return -1, err
	}
	if r.udp {
		var d []byte // one datagram
		for _, b := range bufs {
			d = append(d, b...)
		}
		return a.Send(fd, d, 0)
	}
	return a.sendStream(fd, r, bufs, 0)
}

// Shutdown shuts down one or both directions.
func (a *API) Shutdown(fd socket.FD, how int) error {
	if how < socket.SHUT_RD || how > socket.SHUT_RDWR {
		return unix.EINVAL
	}
	rd, wr := how != socket.SHUT_WR, how != socket.SHUT_RD
	return a.call(fd, func(now time.Time, r sockRef) error {
		if r.udp {
			return a.h.udp.Shutdown(udp.SockID(r.id), rd, wr)
		}
		return a.h.tcp.Shutdown(now, tcp.SockID(r.id), rd, wr)
	})
}

// Close closes the socket.
func (a *API) Close(fd socket.FD) error {
	err := a.call(fd, func(now time.Time, r sockRef) error {
		if r.udp {
			return a.h.udp.Close(udp.SockID(r.id))
		}
		return a.h.tcp.Close(now, tcp.SockID(r.id))
	})
	delete(a.socks, fd)
	delete(a.nonblock, fd)
	return err
}

// SetNonblock sets or clears non-blocking mode.
func (a *API) SetNonblock(fd socket.FD, nonblocking bool) error {
	if _, err := a.sock(fd); err != nil {
		return err
	}
	a.nonblock[fd] = nonblocking
	return nil
}

// SetsockoptInt sets an option; a UDP socket has SO_REUSEADDR alone, as
// in the udp server.
func (a *API) SetsockoptInt(fd socket.FD, level, opt, value int) error {
	return a.call(fd, func(_ time.Time, r sockRef) error {
		if r.udp {
			if level != socket.SOL_SOCKET || opt != socket.SO_REUSEADDR {
				return unix.ENOPROTOOPT
			}
			return a.h.udp.SetReuseAddr(udp.SockID(r.id), value != 0)
		}
		o, ok := sockabi.TCPOption(level, opt)
		if !ok {
			return unix.ENOPROTOOPT
		}
		return a.h.tcp.SetOption(tcp.SockID(r.id), o, value)
	})
}

// GetsockoptInt reads an option; SO_ERROR takes the pending error.
func (a *API) GetsockoptInt(fd socket.FD, level, opt int) (int, error) {
	var v int
	err := a.call(fd, func(_ time.Time, r sockRef) error {
		if level == socket.SOL_SOCKET && opt == socket.SO_ERROR {
			var e, err error
			if r.udp {
				e, err = a.h.udp.TakeError(udp.SockID(r.id))
			} else {
				e, err = a.h.tcp.TakeError(tcp.SockID(r.id))
			}
			if e != nil {
				v = int(sockabi.Errno(e))
			}
			return err
		}
		if r.udp {
			if level != socket.SOL_SOCKET || opt != socket.SO_REUSEADDR {
				return unix.ENOPROTOOPT
			}
			on, err := a.h.udp.ReuseAddr(udp.SockID(r.id))
			if on {
				v = 1
			}
			return err
		}
		o, ok := sockabi.TCPOption(level, opt)
		if !ok {
			return tcp.ErrNoOption
		}
		var err error
		v, err = a.h.tcp.GetOption(tcp.SockID(r.id), o)
		return err
	})
	return v, err
}

// LocalAddr returns the socket's address.
func (a *API) LocalAddr(fd socket.FD) (netip.AddrPort, error) {
	var la netip.AddrPort
	err := a.call(fd, func(_ time.Time, r sockRef) error {
		var err error
		if r.udp {
			la, err = a.h.udp.LocalAddr(udp.SockID(r.id))
		} else {
			la, err = a.h.tcp.LocalAddr(tcp.SockID(r.id))
		}
		return err
	})
	return la, err
}

// Poll waits until a descriptor is ready or the timeout passes.
func (a *API) Poll(fds []socket.PollFD, timeout time.Duration) (int, error) {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	n := 0
	err := a.wait(timeout != 0, deadline, func(time.Time) error {
		n = 0
		for i := range fds {
			fds[i].Revents = a.revents(fds[i])
			if fds[i].Revents != 0 {
				n++
			}
		}
		if n == 0 {
			return tcp.ErrWouldBlock
		}
		return nil
	})
	if err != nil && !wouldBlock(err) {
		return -1, errno(err)
	}
	return n, nil
}

// revents is what poll(2) reports for p now; the host's lock is held.
func (a *API) revents(p socket.PollFD) int16 {
	r, ok := a.socks[p.FD]
	switch {
	case !ok:
		return socket.POLLNVAL
	case r.udp:
		// As the udp server answers: readable with a datagram or an
		// error queued, always writable.
		id := udp.SockID(r.id)
		if !a.h.udp.Exists(id) {
			return socket.POLLNVAL
		}
		var ev int16
		if p.Events&socket.POLLIN != 0 && (a.h.udp.Readable(id) || a.h.udp.Pending(id)) {
			ev |= socket.POLLIN
		}
		if a.h.udp.Pending(id) {
			ev |= socket.POLLERR
		}
		return ev | p.Events&socket.POLLOUT
	}
	ready, err := a.h.tcp.Ready(tcp.SockID(r.id))
	if err != nil {
		return socket.POLLNVAL
	}
	return sockabi.PollEvents(ready, p.Events)
}

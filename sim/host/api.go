package host

import (
	"errors"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/servers/sockabi"
	"github.com/newtsim/newtsim/servers/tcp"
)

// API is the socket library's API on a monolithic host: each call goes
// straight into the host's tcp engine under the host's lock, and a call
// that must wait (blocking connect, accept, recv, send; poll) waits for
// the host to handle its next frame or timer. TCP sockets only: a UDP
// socket is EPROTONOSUPPORT here. Like the other backends, an API value is
// for one goroutine; the host's own loop (Serve) runs beside it.
type API struct {
	h        *Host
	nonblock map[socket.FD]bool
}

var _ socket.API = (*API)(nil)

// API returns the socket API of the host's applications.
func (h *Host) API() *API { return &API{h: h, nonblock: map[socket.FD]bool{}} }

func errno(err error) error {
	if err == nil {
		return nil
	}
	return sockabi.Errno(err)
}

// wait runs try under the host's lock until it stops answering
// ErrWouldBlock, waiting for the host to change between tries; with block
// false it tries once.
func (a *API) wait(block bool, deadline time.Time, try func(now time.Time) error) error {
	for {
		a.h.mu.Lock()
		now := time.Now()
		err := try(now)
		a.h.process(now)
		ch := a.h.changed
		a.h.mu.Unlock()
		if !errors.Is(err, tcp.ErrWouldBlock) || !block {
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

// Socket opens a TCP socket.
func (a *API) Socket(domain, typ, proto int) (socket.FD, error) {
	if domain != socket.AF_INET {
		return -1, unix.EAFNOSUPPORT
	}
	if typ != socket.SOCK_STREAM {
		return -1, unix.EPROTONOSUPPORT
	}
	a.h.mu.Lock()
	defer a.h.mu.Unlock()
	return socket.FD(a.h.tcp.Open()), nil
}

func (a *API) call(f func(now time.Time) error) error {
	return errno(a.wait(false, time.Time{}, f))
}

// Bind names the socket.
func (a *API) Bind(fd socket.FD, addr netip.AddrPort) error {
	return a.call(func(time.Time) error { return a.h.tcp.Bind(tcp.SockID(fd), addr) })
}

// Listen makes the socket passive.
func (a *API) Listen(fd socket.FD, backlog int) error {
	return a.call(func(time.Time) error { return a.h.tcp.Listen(tcp.SockID(fd), backlog) })
}

// Connect opens a connection, waiting for it unless the socket is
// non-blocking (EINPROGRESS).
func (a *API) Connect(fd socket.FD, addr netip.AddrPort) error {
	id := tcp.SockID(fd)
	err := a.call(func(now time.Time) error { return a.h.tcp.Connect(now, id, addr) })
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
	var nid tcp.SockID
	var from netip.AddrPort
	err := a.wait(!a.nonblock[fd], time.Time{}, func(time.Time) error {
		var err error
		nid, from, err = a.h.tcp.Accept(tcp.SockID(fd))
		return err
	})
	if err != nil {
		return -1, netip.AddrPort{}, errno(err)
	}
	return socket.FD(nid), from, nil
}

// Send sends, all of b when blocking.
func (a *API) Send(fd socket.FD, b []byte, flags int) (int, error) {
	block := !a.nonblock[fd] && flags&socket.MSG_DONTWAIT == 0
	total := 0
	for {
		err := a.wait(block, time.Time{}, func(now time.Time) error {
			n, err := a.h.tcp.Send(now, tcp.SockID(fd), b[total:])
			total += n
			return err
		})
		if err != nil {
			if total > 0 && errors.Is(err, tcp.ErrWouldBlock) {
				return total, nil
			}
			return -1, errno(err)
		}
		if total == len(b) || !block {
			return total, nil
		}
	}
}

// Recv receives.
func (a *API) Recv(fd socket.FD, b []byte, flags int) (int, error) {
	block := !a.nonblock[fd] && flags&socket.MSG_DONTWAIT == 0
	var n int
	err := a.wait(block, time.Time{}, func(now time.Time) error {
		var err error
		n, err = a.h.tcp.Recv(now, tcp.SockID(fd), b, flags&socket.MSG_PEEK != 0)
		return err
	})
	if err != nil {
		return -1, errno(err)
	}
	return n, nil
}

// SendTo is Send; a stream socket has its peer.
func (a *API) SendTo(fd socket.FD, b []byte, flags int, _ netip.AddrPort) (int, error) {
	return a.Send(fd, b, flags)
}

// RecvFrom is Recv, with the peer's address.
func (a *API) RecvFrom(fd socket.FD, b []byte, flags int) (int, netip.AddrPort, error) {
	n, err := a.Recv(fd, b, flags)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	a.h.mu.Lock()
	from, _ := a.h.tcp.RemoteAddr(tcp.SockID(fd))
	a.h.mu.Unlock()
	return n, from, nil
}

// Writev sends the buffers as one write.
func (a *API) Writev(fd socket.FD, bufs [][]byte) (int, error) {
	var all []byte
	for _, b := range bufs {
		all = append(all, b...)
	}
	return a.Send(fd, all, 0)
}

// Shutdown shuts down one or both directions.
func (a *API) Shutdown(fd socket.FD, how int) error {
	if how < socket.SHUT_RD || how > socket.SHUT_RDWR {
		return unix.EINVAL
	}
	return a.call(func(now time.Time) error {
		return a.h.tcp.Shutdown(now, tcp.SockID(fd), how != socket.SHUT_WR, how != socket.SHUT_RD)
	})
}

// Close closes the socket.
func (a *API) Close(fd socket.FD) error {
	delete(a.nonblock, fd)
	return a.call(func(now time.Time) error { return a.h.tcp.Close(now, tcp.SockID(fd)) })
}

// SetNonblock sets or clears non-blocking mode.
func (a *API) SetNonblock(fd socket.FD, nonblocking bool) error {
	a.nonblock[fd] = nonblocking
	return nil
}

// SetsockoptInt sets an option.
func (a *API) SetsockoptInt(fd socket.FD, level, opt, value int) error {
	o, ok := sockabi.TCPOption(level, opt)
	if !ok {
		return unix.ENOPROTOOPT
	}
	return a.call(func(time.Time) error { return a.h.tcp.SetOption(tcp.SockID(fd), o, value) })
}

// GetsockoptInt reads an option; SO_ERROR takes the pending error.
func (a *API) GetsockoptInt(fd socket.FD, level, opt int) (int, error) {
	var v int
	err := a.call(func(time.Time) error {
		if level == socket.SOL_SOCKET && opt == socket.SO_ERROR {
			e, err := a.h.tcp.TakeError(tcp.SockID(fd))
			if e != nil {
				v = int(sockabi.Errno(e))
			}
			return err
		}
		o, ok := sockabi.TCPOption(level, opt)
		if !ok {
			return tcp.ErrNoOption
		}
		var err error
		v, err = a.h.tcp.GetOption(tcp.SockID(fd), o)
		return err
	})
	return v, err
}

// LocalAddr returns the socket's address.
func (a *API) LocalAddr(fd socket.FD) (netip.AddrPort, error) {
	var la netip.AddrPort
	err := a.call(func(time.Time) error {
		var err error
		la, err = a.h.tcp.LocalAddr(tcp.SockID(fd))
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
			r, err := a.h.tcp.Ready(tcp.SockID(fds[i].FD))
			if err != nil {
				fds[i].Revents = socket.POLLNVAL
			} else {
				fds[i].Revents = sockabi.PollEvents(r, fds[i].Events)
			}
			if fds[i].Revents != 0 {
				n++
			}
		}
		if n == 0 {
			return tcp.ErrWouldBlock
		}
		return nil
	})
	if err != nil && !errors.Is(err, tcp.ErrWouldBlock) {
		return -1, errno(err)
	}
	return n, nil
}

package socket

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Linux is the `linux` backend: every call is the Linux system call of the
// same name on a real socket. It is the baseline the other backends are
// measured beside, and the reference their behaviour must match.
type Linux struct{}

var _ API = Linux{}

func sockaddr(a netip.AddrPort) (unix.Sockaddr, error) {
	if !a.Addr().Is4() && !a.Addr().Is4In6() {
		return nil, fmt.Errorf("socket: %s: %w", a, unix.EAFNOSUPPORT)
	}
	return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().Unmap().As4()}, nil
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	if s, ok := sa.(*unix.SockaddrInet4); ok {
		return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), uint16(s.Port))
	}
	return netip.AddrPort{}
}

// errno returns err as a bare unix.Errno where it is one, so callers compare
// with errors.Is or ==.
func errno(err error) error {
	if e, ok := err.(unix.Errno); ok {
		return e
	}
	return err
}

// Socket calls socket(2), close-on-exec.
func (Linux) Socket(domain, typ, proto int) (FD, error) {
	fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
	return FD(fd), errno(err)
}

// Bind calls bind(2).
func (Linux) Bind(fd FD, addr netip.AddrPort) error {
	sa, err := sockaddr(addr)
	if err != nil {
		return err
	}
	return errno(unix.Bind(int(fd), sa))
}

// Connect calls connect(2).
func (Linux) Connect(fd FD, addr netip.AddrPort) error {
	sa, err := sockaddr(addr)
	if err != nil {
		return err
	}
	return errno(unix.Connect(int(fd), sa))
}

// Listen calls listen(2).
func (Linux) Listen(fd FD, backlog int) error { return errno(unix.Listen(int(fd), backlog)) }

// Accept calls accept4(2), close-on-exec.
func (Linux) Accept(fd FD) (FD, netip.AddrPort, error) {
	nfd, sa, err := unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
	if err != nil {
		return -1, netip.AddrPort{}, errno(err)
	}
	return FD(nfd), addrPort(sa), nil
}

// Send calls send(2).
func (Linux) Send(fd FD, b []byte, flags int) (int, error) {
	n, err := unix.SendmsgN(int(fd), b, nil, nil, flags)
	return n, errno(err)
}

// Recv calls recv(2).
func (Linux) Recv(fd FD, b []byte, flags int) (int, error) {
	n, _, err := unix.Recvfrom(int(fd), b, flags)
	if err != nil {
		return -1, errno(err)
	}
	return n, nil
}

// SendTo calls sendto(2).
func (Linux) SendTo(fd FD, b []byte, flags int, to netip.AddrPort) (int, error) {
	sa, err := sockaddr(to)
	if err != nil {
		return -1, err
	}
	if err := unix.Sendto(int(fd), b, flags, sa); err != nil {
		return -1, errno(err)
	}
	return len(b), nil
}

// RecvFrom calls recvfrom(2).
func (Linux) RecvFrom(fd FD, b []byte, flags int) (int, netip.AddrPort, error) {
	n, sa, err := unix.Recvfrom(int(fd), b, flags)
	if err != nil {
		return -1, netip.AddrPort{}, errno(err)
	}
	return n, addrPort(sa), nil
}

// Writev calls writev(2).
func (Linux) Writev(fd FD, bufs [][]byte) (int, error) {
	n, err := unix.Writev(int(fd), bufs)
	return n, errno(err)
}

// Shutdown calls shutdown(2).
func (Linux) Shutdown(fd FD, how int) error { return errno(unix.Shutdown(int(fd), how)) }

// Close calls close(2).
func (Linux) Close(fd FD) error { return errno(unix.Close(int(fd))) }

// SetNonblock sets or clears O_NONBLOCK.
func (Linux) SetNonblock(fd FD, nonblocking bool) error {
	return errno(unix.SetNonblock(int(fd), nonblocking))
}

// SetsockoptInt calls setsockopt(2) with an int.
func (Linux) SetsockoptInt(fd FD, level, opt, value int) error {
	return errno(unix.SetsockoptInt(int(fd), level, opt, value))
}

// GetsockoptInt calls getsockopt(2) for an int.
func (Linux) GetsockoptInt(fd FD, level, opt int) (int, error) {
	v, err := unix.GetsockoptInt(int(fd), level, opt)
	return v, errno(err)
}

// LocalAddr calls getsockname(2).
func (Linux) LocalAddr(fd FD) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(int(fd))
	if err != nil {
		return netip.AddrPort{}, errno(err)
	}
	return addrPort(sa), nil
}

// Poll calls poll(2).
func (Linux) Poll(fds []PollFD, timeout time.Duration) (int, error) {
	pfds := make([]unix.PollFd, len(fds))
	for i, f := range fds {
		pfds[i] = unix.PollFd{Fd: int32(f.FD), Events: f.Events}
	}
	ms := -1
	if timeout >= 0 {
		ms = int(timeout / time.Millisecond)
	}
	for {
		n, err := unix.Poll(pfds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, errno(err)
		}
		for i := range fds {
			fds[i].Revents = pfds[i].Revents
		}
		return n, nil
	}
}

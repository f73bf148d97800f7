// Package socket is newtsim's POSIX-like socket API for applications written
// in Go. The same calls run on interchangeable backends, chosen by
// configuration rather than by code: `linux` (Linux's own sockets, the
// baseline), `message` (each call a message to the syscall server, NewtOS's
// path) and `exposed` (socket buffers in shared memory). Errors are errno
// values (unix.EAGAIN, unix.EBADF, unix.ECONNREFUSED, ...), so
// errors.Is(err, unix.EAGAIN) reads as C's errno == EAGAIN.
package socket

import (
	"cmp"
	"fmt"
	"iter"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// FD is a socket descriptor of a backend.
type FD int

// Socket types and protocol families, as in <sys/socket.h>.
const (
	AF_INET     = unix.AF_INET
	SOCK_STREAM = unix.SOCK_STREAM
	SOCK_DGRAM  = unix.SOCK_DGRAM
)

// Flags for Send and Recv.
const (
	MSG_DONTWAIT = unix.MSG_DONTWAIT
	MSG_PEEK     = unix.MSG_PEEK
)

// Shutdown directions.
const (
	SHUT_RD   = unix.SHUT_RD
	SHUT_WR   = unix.SHUT_WR
	SHUT_RDWR = unix.SHUT_RDWR
)

// Socket options the project's applications use.
const (
	SOL_SOCKET   = unix.SOL_SOCKET
	SO_REUSEADDR = unix.SO_REUSEADDR
	SO_ERROR     = unix.SO_ERROR
	SO_RCVBUF    = unix.SO_RCVBUF
	SO_SNDBUF    = unix.SO_SNDBUF
	IPPROTO_TCP  = unix.IPPROTO_TCP
	TCP_NODELAY  = unix.TCP_NODELAY
)

// Poll events, as in <poll.h>.
const (
	POLLIN   = unix.POLLIN
	POLLOUT  = unix.POLLOUT
	POLLERR  = unix.POLLERR
	POLLHUP  = unix.POLLHUP
	POLLNVAL = unix.POLLNVAL
)

// PollFD is one entry of a Poll call.
type PollFD struct {
	FD      FD
	Events  int16
	Revents int16
}

// API is what an application calls. Every backend implements it; Read and
// Write are Recv and Send with no flags, and Select is built on Poll.
type API interface {
	Socket(domain, typ, proto int) (FD, error)
	Bind(fd FD, addr netip.AddrPort) error
	Connect(fd FD, addr netip.AddrPort) error
	Listen(fd FD, backlog int) error
	Accept(fd FD) (FD, netip.AddrPort, error)
	Send(fd FD, b []byte, flags int) (int, error)
	Recv(fd FD, b []byte, flags int) (int, error)
	SendTo(fd FD, b []byte, flags int, to netip.AddrPort) (int, error)
	RecvFrom(fd FD, b []byte, flags int) (int, netip.AddrPort, error)
	Writev(fd FD, bufs [][]byte) (int, error)
	Shutdown(fd FD, how int) error
	Close(fd FD) error
	SetNonblock(fd FD, nonblocking bool) error
	SetsockoptInt(fd FD, level, opt, value int) error
	GetsockoptInt(fd FD, level, opt int) (int, error)
	LocalAddr(fd FD) (netip.AddrPort, error)
	// Poll waits until an entry is ready or the timeout passes (a negative
	// timeout waits for ever) and returns how many entries are ready.
	Poll(fds []PollFD, timeout time.Duration) (int, error)
}

// Read is Recv with no flags.
func Read(api API, fd FD, b []byte) (int, error) { return api.Recv(fd, b, 0) }

// Write is Send with no flags.
func Write(api API, fd FD, b []byte) (int, error) { return api.Send(fd, b, 0) }

// FDSet is a select(2) descriptor set.
type FDSet map[FD]bool

// Select waits until a descriptor of read is readable or of write writable,
// or the timeout passes, as select(2) does on top of Poll: on return read
// and write hold only the ready descriptors, and the count is returned.
func Select(api API, read, write FDSet, timeout time.Duration) (int, error) {
	var pfds []PollFD
	index := map[FD]int{}
	add := func(fd FD, ev int16) {
		i, ok := index[fd]
		if !ok {
			i = len(pfds)
			index[fd] = i
			pfds = append(pfds, PollFD{FD: fd})
		}
		pfds[i].Events |= ev
	}
	for fd := range read {
		add(fd, POLLIN)
	}
	for fd := range write {
		add(fd, POLLOUT)
	}
	if _, err := api.Poll(pfds, timeout); err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pfds {
		if p.Revents&POLLNVAL != 0 {
			return 0, fmt.Errorf("select: descriptor %d: %w", p.FD, unix.EBADF)
		}
		if read[p.FD] {
			if p.Revents&(POLLIN|POLLHUP|POLLERR) != 0 {
				n++
			} else {
				delete(read, p.FD)
			}
		}
		if write[p.FD] {
			if p.Revents&(POLLOUT|POLLERR) != 0 {
				n++
			} else {
				delete(write, p.FD)
			}
		}
	}
	return n, nil
}

// Config chooses a backend.
type Config struct {
	// Backend is "linux", "message", "message-direct" (the message
	// backend calling the tcp server without syscall) or "exposed".
	Backend string
	// Conn is the process's way to the stack, for the message and exposed
	// backends.
	Conn Conn
	// TCP names the tcp server the exposed backend maps sockets with
	// (default "tcp").
	TCP string
}

// Open returns the backend the configuration names.
func Open(c Config) (API, error) {
	switch c.Backend {
	case "", "linux":
		return Linux{}, nil
	case "message":
		if c.Conn == nil {
			return nil, fmt.Errorf("socket: the message backend runs in a newtsim process (Config.Conn is nil)")
		}
		return NewMessage(c.Conn), nil
	case "message-direct":
		x, ok := c.Conn.(XConn)
		if !ok {
			return nil, fmt.Errorf("socket: the message-direct backend runs in a newtsim process")
		}
		return NewMessageDirect(x, cmp.Or(c.TCP, "tcp")), nil
	case "exposed":
		x, ok := c.Conn.(XConn)
		if !ok {
			return nil, fmt.Errorf("socket: the exposed backend runs in a newtsim process (Config.Conn is not an XConn)")
		}
		return NewExposed(x, cmp.Or(c.TCP, "tcp"))
	default:
		return nil, fmt.Errorf("socket: no backend %q (have: linux, message, exposed)", c.Backend)
	}
}

// Size is the number of bytes in bufs, a gather list.
func Size(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// Pieces yields what of bufs, taken as one stream, lies at offset off and
// after it: the rest of the buffer off falls in, then every later one,
// empty ones skipped. A backend's Writev sends the pieces where they lie,
// as writev(2) does, rather than joining them into a new buffer first:
// httpd's Writev of a large file's header and body, repeated with what
// is left after each partial write, copied and allocated what was left
// every time.
func Pieces(bufs [][]byte, off int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for _, b := range bufs {
			if off >= len(b) {
				off -= len(b)
				continue
			}
			if !yield(b[off:]) {
				return
			}
			off = 0
		}
	}
}

// Gather copies into dst what of bufs, taken as one stream, lies at
// offset off and after it, as much as dst holds, and returns the number
// of bytes copied.
func Gather(dst []byte, bufs [][]byte, off int) int {
	n := 0
	for p := range Pieces(bufs, off) {
		n += copy(dst[n:], p)
		if n == len(dst) {
			break
		}
	}
	return n
}

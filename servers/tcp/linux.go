package tcp

import (
	"errors"

	"golang.org/x/sys/unix"
)

var errnos = []struct {
	err   error
	errno unix.Errno
}{
	{ErrWouldBlock, unix.EAGAIN}, {ErrInProgress, unix.EINPROGRESS}, {ErrAlready, unix.EALREADY},
	{ErrIsConnected, unix.EISCONN}, {ErrNotConnected, unix.ENOTCONN}, {ErrConnRefused, unix.ECONNREFUSED},
	{ErrConnReset, unix.ECONNRESET}, {ErrTimedOut, unix.ETIMEDOUT}, {ErrAddrInUse, unix.EADDRINUSE},
	{ErrAddrNotAvail, unix.EADDRNOTAVAIL}, {ErrBadSocket, unix.EBADF}, {ErrShutdown, unix.EPIPE},
	{ErrNoOption, unix.ENOPROTOOPT}, {ErrNoBuffers, unix.ENOBUFS}, {ErrAborted, unix.ECONNABORTED},
}

// Linux's names for what the engine answers (errnos, socket options and
// poll bits), for the servers and the monolithic host that put the engine
// behind the socket API.

// Errno is the errno Linux gives for one of the package's errors (EINVAL
// for any other).
func Errno(err error) unix.Errno {
	for _, e := range errnos {
		if errors.Is(err, e.err) {
			return e.errno
		}
	}
	return unix.EINVAL
}

// OptionFor is the engine's option for a setsockopt/getsockopt level and
// name (TCP_MAXSEG can be read, not set).
func OptionFor(level, name int) (Option, bool) {
	switch [2]int{level, name} {
	case [2]int{unix.SOL_SOCKET, unix.SO_REUSEADDR}:
		return OptReuseAddr, true
	case [2]int{unix.SOL_SOCKET, unix.SO_SNDBUF}:
		return OptSendBuf, true
	case [2]int{unix.SOL_SOCKET, unix.SO_RCVBUF}:
		return OptRecvBuf, true
	case [2]int{unix.IPPROTO_TCP, unix.TCP_NODELAY}:
		return OptNoDelay, true
	case [2]int{unix.IPPROTO_TCP, unix.TCP_MAXSEG}:
		return OptMSS, true
	}
	return 0, false
}

// PollEvents turns Ready bits into poll(2)'s revents for the events asked:
// POLLERR and POLLHUP are reported whether asked or not, as poll(2) does.
func PollEvents(ready int, events int16) int16 {
	var ev int16
	for _, b := range []struct {
		ready int
		poll  int16
	}{{ReadyIn, unix.POLLIN}, {ReadyOut, unix.POLLOUT}, {ReadyErr, unix.POLLERR},
		{ReadyHup, unix.POLLHUP}, {ReadyRdHup, unix.POLLRDHUP}} {
		if ready&b.ready != 0 {
			ev |= b.poll
		}
	}
	return ev & (events | unix.POLLERR | unix.POLLHUP)
}

// Package sockabi puts the protocol engines behind Linux's socket ABI: the
// errno each engine error stands for, the engine option each
// setsockopt/getsockopt level and name selects, and the poll(2) bits a
// socket's readiness gives.
//
// The engines (servers/tcp, servers/udp) answer with their own typed
// errors and readiness bits and know nothing of Linux; the tcp and udp
// servers and the monolithic host (sim/host) translate with this package,
// so that every backend gives the same errno for the same failure.
package sockabi

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/servers/tcp"
	"github.com/newtsim/newtsim/servers/udp"
)

// errnos pairs each engine error with the errno Linux gives for it. The
// sentinels are distinct values, so one list serves both engines.
var errnos = []struct {
	err   error
	errno unix.Errno
}{
	{tcp.ErrWouldBlock, unix.EAGAIN},
	{tcp.ErrInProgress, unix.EINPROGRESS},
	{tcp.ErrAlready, unix.EALREADY},
	{tcp.ErrIsConnected, unix.EISCONN},
	{tcp.ErrNotConnected, unix.ENOTCONN},
	{tcp.ErrConnRefused, unix.ECONNREFUSED},
	{tcp.ErrConnReset, unix.ECONNRESET},
	{tcp.ErrTimedOut, unix.ETIMEDOUT},
	{tcp.ErrAddrInUse, unix.EADDRINUSE},
	{tcp.ErrAddrNotAvail, unix.EADDRNOTAVAIL},
	{tcp.ErrBadSocket, unix.EBADF},
	{tcp.ErrShutdown, unix.EPIPE},
	{tcp.ErrNoOption, unix.ENOPROTOOPT},
	{tcp.ErrNoBuffers, unix.ENOBUFS},
	{tcp.ErrAborted, unix.ECONNABORTED},
	{tcp.ErrNetUnreach, unix.ENETUNREACH},
	{tcp.ErrHostUnreach, unix.EHOSTUNREACH},
	{tcp.ErrProtoUnreach, unix.ENOPROTOOPT},
	{tcp.ErrSourceRoute, unix.EOPNOTSUPP},
	{tcp.ErrHostDown, unix.EHOSTDOWN},
	{tcp.ErrNoNet, unix.ENONET},

	{udp.ErrWouldBlock, unix.EAGAIN},
	{udp.ErrAddrInUse, unix.EADDRINUSE},
	{udp.ErrAddrNotAvail, unix.EADDRNOTAVAIL},
	{udp.ErrBadSocket, unix.EBADF},
	{udp.ErrMsgSize, unix.EMSGSIZE},
	{udp.ErrDestRequired, unix.EDESTADDRREQ},
	{udp.ErrNotConnected, unix.ENOTCONN},
	{udp.ErrConnRefused, unix.ECONNREFUSED},
	{udp.ErrNetUnreach, unix.ENETUNREACH},
	{udp.ErrHostUnreach, unix.EHOSTUNREACH},
	{udp.ErrProtoUnreach, unix.ENOPROTOOPT},
	{udp.ErrHostDown, unix.EHOSTDOWN},
	{udp.ErrNoNet, unix.ENONET},
	{udp.ErrShutdown, unix.EPIPE},
}

// Errno is the errno Linux gives for an error of the tcp or udp engine,
// wrapped or not; EINVAL for any other error (tcp.ErrInvalid,
// udp.ErrInvalid and udp.ErrNotBound among them). err must not be nil.
func Errno(err error) unix.Errno {
	for _, e := range errnos {
		if errors.Is(err, e.err) {
			return e.errno
		}
	}
	return unix.EINVAL
}

// TCPOption is the tcp engine's option for a setsockopt/getsockopt level
// and name, and false for one the engine does not have (ENOPROTOOPT).
// TCP_MAXSEG can be read, not set.
func TCPOption(level, name int) (tcp.Option, bool) {
	switch [2]int{level, name} {
	case [2]int{unix.SOL_SOCKET, unix.SO_REUSEADDR}:
		return tcp.OptReuseAddr, true
	case [2]int{unix.SOL_SOCKET, unix.SO_SNDBUF}:
		return tcp.OptSendBuf, true
	case [2]int{unix.SOL_SOCKET, unix.SO_RCVBUF}:
		return tcp.OptRecvBuf, true
	case [2]int{unix.IPPROTO_TCP, unix.TCP_NODELAY}:
		return tcp.OptNoDelay, true
	case [2]int{unix.IPPROTO_TCP, unix.TCP_MAXSEG}:
		return tcp.OptMSS, true
	case [2]int{unix.SOL_SOCKET, unix.SO_KEEPALIVE}:
		return tcp.OptKeepAlive, true
	case [2]int{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE}:
		return tcp.OptKeepIdle, true
	case [2]int{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL}:
		return tcp.OptKeepIntvl, true
	case [2]int{unix.IPPROTO_TCP, unix.TCP_KEEPCNT}:
		return tcp.OptKeepCnt, true
	}
	return 0, false
}

// pollBits pairs each tcp.Ready bit with its poll(2) event.
var pollBits = []struct {
	ready int
	poll  int16
}{
	{tcp.ReadyIn, unix.POLLIN},
	{tcp.ReadyOut, unix.POLLOUT},
	{tcp.ReadyErr, unix.POLLERR},
	{tcp.ReadyHup, unix.POLLHUP},
	{tcp.ReadyRdHup, unix.POLLRDHUP},
}

// PollEvents turns tcp.Stack.Ready bits into poll(2)'s revents for the
// events asked: POLLERR and POLLHUP are reported whether asked or not, as
// poll(2) does.
func PollEvents(ready int, events int16) int16 {
	var ev int16
	for _, b := range pollBits {
		if ready&b.ready != 0 {
			ev |= b.poll
		}
	}
	return ev & (events | unix.POLLERR | unix.POLLHUP)
}

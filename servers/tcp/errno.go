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

package sockabi_test

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/servers/sockabi"
	"github.com/newtsim/newtsim/servers/tcp"
	"github.com/newtsim/newtsim/servers/udp"
)

func TestErrno(t *testing.T) {
	tests := []struct {
		err  error
		want unix.Errno
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
		{tcp.ErrInvalid, unix.EINVAL},
		{tcp.ErrBadSocket, unix.EBADF},
		{tcp.ErrShutdown, unix.EPIPE},
		{tcp.ErrNoOption, unix.ENOPROTOOPT},
		{tcp.ErrNoBuffers, unix.ENOBUFS},
		{tcp.ErrAborted, unix.ECONNABORTED},
		{tcp.ErrHostUnreach, unix.EHOSTUNREACH},
		{tcp.ErrNetUnreach, unix.ENETUNREACH},
		{udp.ErrWouldBlock, unix.EAGAIN},
		{udp.ErrAddrInUse, unix.EADDRINUSE},
		{udp.ErrAddrNotAvail, unix.EADDRNOTAVAIL},
		{udp.ErrBadSocket, unix.EBADF},
		{udp.ErrMsgSize, unix.EMSGSIZE},
		{udp.ErrDestRequired, unix.EDESTADDRREQ},
		{udp.ErrNotConnected, unix.ENOTCONN},
		{udp.ErrConnRefused, unix.ECONNREFUSED},
		{udp.ErrShutdown, unix.EPIPE},
		{udp.ErrNotBound, unix.EINVAL},
		{udp.ErrInvalid, unix.EINVAL},
		{errors.New("something else"), unix.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			if got := sockabi.Errno(tt.err); got != tt.want {
				t.Errorf("Errno(%v) = %v, want %v", tt.err, got, tt.want)
			}
			wrapped := fmt.Errorf("socket 3: %w", tt.err)
			if got := sockabi.Errno(wrapped); got != tt.want {
				t.Errorf("Errno(%v) = %v, want %v", wrapped, got, tt.want)
			}
		})
	}
}

func TestTCPOption(t *testing.T) {
	tests := []struct {
		name        string
		level, opt  int
		want        tcp.Option
		wantPresent bool
	}{
		{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, tcp.OptReuseAddr, true},
		{"SO_SNDBUF", unix.SOL_SOCKET, unix.SO_SNDBUF, tcp.OptSendBuf, true},
		{"SO_RCVBUF", unix.SOL_SOCKET, unix.SO_RCVBUF, tcp.OptRecvBuf, true},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, tcp.OptNoDelay, true},
		{"TCP_MAXSEG", unix.IPPROTO_TCP, unix.TCP_MAXSEG, tcp.OptMSS, true},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, tcp.OptKeepAlive, true},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, tcp.OptKeepIdle, true},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, tcp.OptKeepIntvl, true},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, tcp.OptKeepCnt, true},
		{"SO_LINGER", unix.SOL_SOCKET, unix.SO_LINGER, 0, false},
		{"SO_KEEPALIVE at IPPROTO_TCP", unix.IPPROTO_TCP, unix.SO_KEEPALIVE, 0, false},
		{"TCP_NODELAY at SOL_SOCKET", unix.SOL_SOCKET, unix.TCP_NODELAY, 0, false},
	}
	for _, tt := range tests {
		got, ok := sockabi.TCPOption(tt.level, tt.opt)
		if ok != tt.wantPresent || (ok && got != tt.want) {
			t.Errorf("%s: TCPOption = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.wantPresent)
		}
	}
}

func TestPollEvents(t *testing.T) {
	tests := []struct {
		name   string
		ready  int
		events int16
		want   int16
	}{
		{"nothing ready", 0, unix.POLLIN | unix.POLLOUT, 0},
		{"readable, asked", tcp.ReadyIn, unix.POLLIN, unix.POLLIN},
		{"readable, not asked", tcp.ReadyIn, unix.POLLOUT, 0},
		{"writable and readable", tcp.ReadyIn | tcp.ReadyOut, unix.POLLIN | unix.POLLOUT, unix.POLLIN | unix.POLLOUT},
		{"error and hang-up always", tcp.ReadyErr | tcp.ReadyHup, 0, unix.POLLERR | unix.POLLHUP},
		{"read hang-up only when asked", tcp.ReadyRdHup, unix.POLLIN, 0},
		{"read hang-up asked", tcp.ReadyRdHup, unix.POLLRDHUP, unix.POLLRDHUP},
	}
	for _, tt := range tests {
		if got := sockabi.PollEvents(tt.ready, tt.events); got != tt.want {
			t.Errorf("%s: PollEvents(%#x, %#x) = %#x, want %#x", tt.name, tt.ready, tt.events, got, tt.want)
		}
	}
}

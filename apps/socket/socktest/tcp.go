package socktest

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
)

// wait is how long a TCP case waits for any one state (a connection, data,
// a FIN, a reset) before it fails.
const wait = 3 * time.Second

// bulkWait bounds a whole bulk transfer, however steady its progress.
const bulkWait = 30 * time.Second

// stream opens a TCP socket or fails the case.
func stream(t T, api socket.API) socket.FD {
	t.Helper()
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("socket(SOCK_STREAM): %v", err)
	}
	t.Cleanup(func() { api.Close(fd) })
	return fd
}

// listener opens a TCP socket listening on an ephemeral port of env.Addr.
func listener(t T, api socket.API, env Env, backlog int) (socket.FD, netip.AddrPort) {
	t.Helper()
	fd := stream(t, api)
	if err := api.Bind(fd, netip.AddrPortFrom(env.Addr, 0)); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := api.Listen(fd, backlog); err != nil {
		t.Fatalf("listen: %v", err)
	}
	a, err := api.LocalAddr(fd)
	if err != nil || a.Addr() != env.Addr || a.Port() == 0 {
		t.Fatalf("listener's local address: %v %v, want %v and a port", a, err, env.Addr)
	}
	return fd, a
}

// pollFor polls fd for events until one of want is reported, and returns
// the revents that had it; it fails the case after wait.
func pollFor(t T, api socket.API, fd socket.FD, events, want int16, what string) int16 {
	t.Helper()
	deadline := time.Now().Add(wait)
	var last int16
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%s: poll reported %#x within %v, waiting for %#x", what, last, wait, want)
		}
		p := []socket.PollFD{{FD: fd, Events: events}}
		if _, err := api.Poll(p, left); err != nil {
			t.Fatalf("%s: poll: %v", what, err)
		}
		last = p[0].Revents
		if last&want != 0 {
			return last
		}
	}
}

// accept waits until ln has a connection and accepts it.
func accept(t T, api socket.API, ln socket.FD) (socket.FD, netip.AddrPort) {
	t.Helper()
	pollFor(t, api, ln, socket.POLLIN, socket.POLLIN, "waiting for a connection to accept")
	fd, peer, err := api.Accept(ln)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { api.Close(fd) })
	return fd, peer
}

// dial opens a TCP socket and connects it (blocking) to addr.
func dial(t T, api socket.API, addr netip.AddrPort) socket.FD {
	t.Helper()
	fd := stream(t, api)
	if err := api.Connect(fd, addr); err != nil {
		t.Fatalf("connect to %v: %v", addr, err)
	}
	return fd
}

// pair returns the two ends of a fresh connection: the client that
// connected and the server's accepted socket.
func pair(t T, api socket.API, env Env) (client, server socket.FD) {
	t.Helper()
	ln, addr := listener(t, api, env, 8)
	client = dial(t, api, addr)
	server, _ = accept(t, api, ln)
	return client, server
}

func nonblock(t T, api socket.API, fds ...socket.FD) {
	t.Helper()
	for _, fd := range fds {
		if err := api.SetNonblock(fd, true); err != nil {
			t.Fatalf("set non-blocking: %v", err)
		}
	}
}

func send(t T, api socket.API, fd socket.FD, s string) {
	t.Helper()
	if n, err := socket.Write(api, fd, []byte(s)); err != nil || n != len(s) {
		t.Fatalf("send %q: %d %v, want %d", s, n, err, len(s))
	}
}

// recvN reads exactly n bytes from fd, waiting for each part with poll.
func recvN(t T, api socket.API, fd socket.FD, n int) []byte {
	t.Helper()
	got := make([]byte, 0, n)
	buf := make([]byte, n)
	for len(got) < n {
		pollFor(t, api, fd, socket.POLLIN, socket.POLLIN|socket.POLLHUP|socket.POLLERR, fmt.Sprintf("waiting for %d more bytes", n-len(got)))
		m, err := api.Recv(fd, buf[:n-len(got)], socket.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			t.Fatalf("recv after %d of %d bytes: %v", len(got), n, err)
		}
		if m == 0 {
			t.Fatalf("end of file after %d of %d bytes (%q)", len(got), n, got)
		}
		got = append(got, buf[:m]...)
	}
	return got
}

// expect reads len(want) bytes from fd and fails unless they are want.
func expect(t T, api socket.API, fd socket.FD, want string) {
	t.Helper()
	if got := recvN(t, api, fd, len(want)); string(got) != want {
		t.Fatalf("received %q, want %q", got, want)
	}
}

// eof waits for fd's end of file: recv must return 0, with no data first.
func eof(t T, api socket.API, fd socket.FD, what string) {
	t.Helper()
	pollFor(t, api, fd, socket.POLLIN, socket.POLLIN|socket.POLLHUP|socket.POLLERR, what)
	if n, err := api.Recv(fd, make([]byte, 16), socket.MSG_DONTWAIT); n != 0 || err != nil {
		t.Fatalf("%s: recv %d %v, want 0 (end of file)", what, n, err)
	}
}

// pattern is n bytes that differ with seed and position (a hash of the
// offset, with no short period), so that a lost, repeated or reordered
// stretch shows.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint32(i)*2654435761>>24) ^ seed
	}
	return b
}

// flow is one direction of a transfer.
type flow struct {
	from, to   socket.FD
	out        []byte // still to send
	in         []byte // received
	want       int    // bytes to receive in all
	closeAfter bool   // close from once out is all sent; to must then see end of file
	eof        bool
}

// transfer moves every flow's bytes through non-blocking sockets at once,
// interleaving sends and receives by poll, until each flow has received
// its bytes (and, where its sender closes, its end of file).
func transfer(t T, api socket.API, flows ...*flow) {
	t.Helper()
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(bulkWait)
	for {
		done := true
		var p []socket.PollFD
		for _, f := range flows {
			if len(f.in) < f.want || (f.closeAfter && !f.eof) {
				done = false
				p = append(p, socket.PollFD{FD: f.to, Events: socket.POLLIN})
			}
			if len(f.out) > 0 {
				done = false
				p = append(p, socket.PollFD{FD: f.from, Events: socket.POLLOUT})
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("transfer not done in %v: %s", bulkWait, progress(flows))
		}
		n, err := api.Poll(p, wait)
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		if n == 0 {
			t.Fatalf("transfer stalled for %v: %s", wait, progress(flows))
		}
		for _, f := range flows {
			if len(f.out) > 0 {
				m, err := api.Send(f.from, f.out[:min(len(f.out), len(buf))], 0)
				switch {
				case errors.Is(err, unix.EAGAIN):
				case err != nil:
					t.Fatalf("send with %d bytes left: %v", len(f.out), err)
				default:
					f.out = f.out[m:]
					if len(f.out) == 0 && f.closeAfter {
						if err := api.Close(f.from); err != nil {
							t.Fatalf("close after the last send: %v", err)
						}
					}
				}
			}
			if len(f.in) < f.want || (f.closeAfter && !f.eof) {
				m, err := api.Recv(f.to, buf, 0)
				switch {
				case errors.Is(err, unix.EAGAIN):
				case err != nil:
					t.Fatalf("recv after %d of %d bytes: %v", len(f.in), f.want, err)
				case m == 0 && len(f.in) < f.want:
					t.Fatalf("end of file after %d of %d bytes", len(f.in), f.want)
				case m == 0:
					f.eof = true
				default:
					f.in = append(f.in, buf[:m]...)
					if len(f.in) > f.want {
						t.Fatalf("received %d bytes, more than the %d sent", len(f.in), f.want)
					}
				}
			}
		}
	}
}

func progress(flows []*flow) string {
	s := ""
	for i, f := range flows {
		s += fmt.Sprintf("[flow %d: %d of %d bytes received, %d to send, eof %v] ", i, len(f.in), f.want, len(f.out), f.eof)
	}
	return s
}

func sameBytes(t T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: %d bytes received, %d sent, first difference at byte %d", what, len(got), len(want), i)
	}
}

// TCPCases is the TCP part of the suite: connection set-up (blocking and
// non-blocking connect, refused connects, accept and its addresses, listen
// on an unbound socket, the backlog), data (both ways, peek, writev, a
// close with data still queued, a bulk transfer both ways at once),
// shutdown and close (half-close, end of file, the peer's FIN and RST and
// the errnos they give), poll bits in each of those states, binding
// (EINVAL, EADDRINUSE, SO_REUSEADDR over a TIME_WAIT), socket options and
// the errnos of calls on sockets in the wrong state or closed.
//
// Every case runs in one goroutine, both ends of each connection included,
// because the other backends' connections are not safe for concurrent use:
// a case never blocks on anything the other end must do first, but waits
// with non-blocking sockets and Poll, each wait bounded by a few seconds.
// Only two calls may block: connect to a listening socket (the handshake
// completes without an accept) and a send of a few bytes into an empty
// send buffer.
var TCPCases = []Case{
	{"listen, connect and accept give the right addresses", func(t T, api socket.API, env Env) {
		ln, lnAddr := listener(t, api, env, 8)
		c := dial(t, api, lnAddr)
		cAddr, err := api.LocalAddr(c)
		if err != nil || cAddr.Addr() != env.Addr || cAddr.Port() == 0 || cAddr.Port() == lnAddr.Port() {
			t.Fatalf("client's local address after connect: %v %v, want %v and an ephemeral port", cAddr, err, env.Addr)
		}
		s, peer := accept(t, api, ln)
		if peer != cAddr {
			t.Fatalf("accept's peer address %v, want the client's local address %v", peer, cAddr)
		}
		if a, err := api.LocalAddr(s); err != nil || a != lnAddr {
			t.Fatalf("accepted socket's local address %v %v, want the listener's %v", a, err, lnAddr)
		}
		send(t, api, c, "hello server")
		expect(t, api, s, "hello server")
		send(t, api, s, "hello client")
		expect(t, api, c, "hello client")
	}},
	{"connect to a closed port is refused", func(t T, api socket.API, env Env) {
		c := stream(t, api)
		wantErr(t, "connect to a port nothing listens on", api.Connect(c, netip.AddrPortFrom(env.Addr, env.ClosedPort)), unix.ECONNREFUSED)
	}},
	{"non-blocking connect to a closed port reports the refusal in SO_ERROR once", func(t T, api socket.API, env Env) {
		c := stream(t, api)
		nonblock(t, api, c)
		wantErr(t, "non-blocking connect", api.Connect(c, netip.AddrPortFrom(env.Addr, env.ClosedPort)), unix.EINPROGRESS)
		// Wait for POLLHUP: Linux sets the error a moment before it closes
		// the socket, and a poll in between sees POLLERR alone.
		ev := pollFor(t, api, c, socket.POLLOUT, socket.POLLHUP, "waiting for the refused connect")
		if want := int16(socket.POLLOUT | socket.POLLERR | socket.POLLHUP); ev != want {
			t.Fatalf("poll for POLLOUT after a refused connect: revents %#x, want POLLOUT|POLLERR|POLLHUP (%#x)", ev, want)
		}
		if v, err := api.GetsockoptInt(c, socket.SOL_SOCKET, socket.SO_ERROR); err != nil || unix.Errno(v) != unix.ECONNREFUSED {
			t.Fatalf("SO_ERROR after a refused connect: %d (%v) %v, want ECONNREFUSED", v, unix.Errno(v), err)
		}
		if v, err := api.GetsockoptInt(c, socket.SOL_SOCKET, socket.SO_ERROR); err != nil || v != 0 {
			t.Fatalf("SO_ERROR read a second time: %d (%v) %v, want 0", v, unix.Errno(v), err)
		}
		// With the error taken, the socket is closed both ways: end of file
		// to read, EPIPE to write.
		if n, err := api.Recv(c, make([]byte, 8), socket.MSG_DONTWAIT); n != 0 || err != nil {
			t.Fatalf("recv after the refusal was reported: %d %v, want 0 (end of file)", n, err)
		}
		_, err := socket.Write(api, c, []byte("x"))
		wantErr(t, "send after the refusal was reported", err, unix.EPIPE)
	}},
	{"non-blocking connect to a listener completes", func(t T, api socket.API, env Env) {
		ln, addr := listener(t, api, env, 8)
		c := stream(t, api)
		nonblock(t, api, c)
		wantErr(t, "non-blocking connect", api.Connect(c, addr), unix.EINPROGRESS)
		ev := pollFor(t, api, c, socket.POLLOUT, socket.POLLOUT|socket.POLLERR|socket.POLLHUP, "waiting for the connect")
		if ev != socket.POLLOUT {
			t.Fatalf("poll after the connect: revents %#x, want POLLOUT alone", ev)
		}
		if v, err := api.GetsockoptInt(c, socket.SOL_SOCKET, socket.SO_ERROR); err != nil || v != 0 {
			t.Fatalf("SO_ERROR after the connect: %d (%v) %v, want 0", v, unix.Errno(v), err)
		}
		s, _ := accept(t, api, ln)
		send(t, api, c, "up")
		expect(t, api, s, "up")
		send(t, api, s, "down")
		expect(t, api, c, "down")
	}},
	{"non-blocking accept waits for a connection", func(t T, api socket.API, env Env) {
		ln, addr := listener(t, api, env, 8)
		nonblock(t, api, ln)
		_, _, err := api.Accept(ln)
		wantErr(t, "accept with nothing pending", err, unix.EAGAIN)
		p := []socket.PollFD{{FD: ln, Events: socket.POLLIN}}
		if n, err := api.Poll(p, 0); err != nil || n != 0 || p[0].Revents != 0 {
			t.Fatalf("poll on a listener with nothing pending: %d %v revents %#x, want 0", n, err, p[0].Revents)
		}
		c := dial(t, api, addr)
		if ev := pollFor(t, api, ln, socket.POLLIN, socket.POLLIN, "waiting for the connection"); ev != socket.POLLIN {
			t.Fatalf("poll on a listener with a connection pending: revents %#x, want POLLIN alone", ev)
		}
		s, peer, err := api.Accept(ln)
		if err != nil {
			t.Fatalf("accept of a pending connection: %v", err)
		}
		t.Cleanup(func() { api.Close(s) })
		if cAddr, _ := api.LocalAddr(c); peer != cAddr {
			t.Fatalf("accepted peer %v, want %v", peer, cAddr)
		}
		_, _, err = api.Accept(ln)
		wantErr(t, "accept once the queue is empty again", err, unix.EAGAIN)
	}},
	{"a connected socket cannot connect or listen again", func(t T, api socket.API, env Env) {
		c, s := pair(t, api, env)
		_, addr := listener(t, api, env, 8)
		wantErr(t, "connect on a connected socket", api.Connect(c, addr), unix.EISCONN)
		wantErr(t, "connect on an accepted socket", api.Connect(s, addr), unix.EISCONN)
		wantErr(t, "listen on a connected socket", api.Listen(c, 8), unix.EINVAL)
		send(t, api, c, "unharmed")
		expect(t, api, s, "unharmed")
	}},
	{"accept on a socket that does not listen is invalid", func(t T, api socket.API, env Env) {
		fd := stream(t, api)
		_, _, err := api.Accept(fd)
		wantErr(t, "accept on a fresh socket", err, unix.EINVAL)
		if err := api.Bind(fd, netip.AddrPortFrom(env.Addr, 0)); err != nil {
			t.Fatalf("bind: %v", err)
		}
		_, _, err = api.Accept(fd)
		wantErr(t, "accept on a bound socket", err, unix.EINVAL)
	}},
	{"listen on an unbound socket picks a port", func(t T, api socket.API, env Env) {
		ln := stream(t, api)
		if err := api.Listen(ln, 8); err != nil {
			t.Fatalf("listen on an unbound socket: %v", err)
		}
		a, err := api.LocalAddr(ln)
		if err != nil || !a.Addr().IsUnspecified() || a.Port() == 0 {
			t.Fatalf("local address after listen: %v %v, want 0.0.0.0 and a port", a, err)
		}
		c := dial(t, api, netip.AddrPortFrom(env.Addr, a.Port()))
		s, _ := accept(t, api, ln)
		if sa, err := api.LocalAddr(s); err != nil || sa != netip.AddrPortFrom(env.Addr, a.Port()) {
			t.Fatalf("accepted socket's local address %v %v, want %v port %d", sa, err, env.Addr, a.Port())
		}
		send(t, api, c, "any")
		expect(t, api, s, "any")
	}},
	{"listen with a backlog of one accepts connections", func(t T, api socket.API, env Env) {
		ln, addr := listener(t, api, env, 1)
		for i := range 2 {
			c := dial(t, api, addr)
			s, _ := accept(t, api, ln)
			msg := fmt.Sprintf("connection %d", i)
			send(t, api, c, msg)
			expect(t, api, s, msg)
		}
	}},
	{"a never-connected socket cannot send or receive", func(t T, api socket.API, env Env) {
		fd := stream(t, api)
		_, err := api.Recv(fd, make([]byte, 8), 0)
		wantErr(t, "recv on a never-connected socket", err, unix.ENOTCONN)
		_, err = api.Recv(fd, make([]byte, 8), socket.MSG_DONTWAIT)
		wantErr(t, "recv MSG_DONTWAIT on a never-connected socket", err, unix.ENOTCONN)
		_, err = socket.Write(api, fd, []byte("x"))
		wantErr(t, "send on a never-connected socket", err, unix.EPIPE)
		if err := api.Bind(fd, netip.AddrPortFrom(env.Addr, 0)); err != nil {
			t.Fatalf("bind: %v", err)
		}
		_, err = api.Recv(fd, make([]byte, 8), 0)
		wantErr(t, "recv on a bound, never-connected socket", err, unix.ENOTCONN)
		_, err = socket.Write(api, fd, []byte("x"))
		wantErr(t, "send on a bound, never-connected socket", err, unix.EPIPE)
	}},
	{"shutdown of a never-connected stream socket", func(t T, api socket.API, env Env) {
		fd := stream(t, api)
		for _, how := range []int{socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR} {
			wantErr(t, fmt.Sprintf("shutdown(%d) of a never-connected socket", how), api.Shutdown(fd, how), unix.ENOTCONN)
		}
		if err := api.Bind(fd, netip.AddrPortFrom(env.Addr, 0)); err != nil {
			t.Fatalf("bind: %v", err)
		}
		wantErr(t, "shutdown of a bound, never-connected socket", api.Shutdown(fd, socket.SHUT_RDWR), unix.ENOTCONN)
	}},
	{"empty non-blocking stream receive", func(t T, api socket.API, env Env) {
		c, _ := pair(t, api, env)
		buf := make([]byte, 8)
		_, err := api.Recv(c, buf, socket.MSG_DONTWAIT)
		wantErr(t, "recv MSG_DONTWAIT with no data", err, unix.EAGAIN)
		nonblock(t, api, c)
		_, err = socket.Read(api, c, buf)
		wantErr(t, "read on a non-blocking socket with no data", err, unix.EAGAIN)
	}},
	{"peek leaves the data to read", func(t T, api socket.API, env Env) {
		c, s := pair(t, api, env)
		send(t, api, c, "peekaboo")
		pollFor(t, api, s, socket.POLLIN, socket.POLLIN, "waiting for data")
		buf := make([]byte, 4)
		for range 2 {
			if n, err := api.Recv(s, buf, socket.MSG_PEEK|socket.MSG_DONTWAIT); err != nil || string(buf[:max(n, 0)]) != "peek" {
				t.Fatalf("recv MSG_PEEK: %q %v, want \"peek\"", buf[:max(n, 0)], err)
			}
		}
		expect(t, api, s, "peekaboo")
		_, err := api.Recv(s, buf, socket.MSG_DONTWAIT)
		wantErr(t, "recv once the peeked data was read", err, unix.EAGAIN)
	}},
	{"writev arrives as one stream", func(t T, api socket.API, env Env) {
		c, s := pair(t, api, env)
		if n, err := api.Writev(c, [][]byte{[]byte("head:"), []byte("body")}); err != nil || n != 9 {
			t.Fatalf("writev: %d %v, want 9", n, err)
		}
		expect(t, api, s, "head:body")
	}},
	{"shutdown for writing sends end of file after the data", func(t T, api socket.API, env Env) {
		c, s := pair(t, api, env)
		send(t, api, c, "last words")
		if err := api.Shutdown(c, socket.SHUT_WR); err != nil {
			t.Fatalf("shutdown SHUT_WR: %v", err)
		}
		expect(t, api, s, "last words")
		for range 3 {
			eof(t, api, s, "reading past the peer's shutdown")
		}
		_, err := socket.Write(api, c, []byte("x"))
		wantErr(t, "send after own SHUT_WR", err, unix.EPIPE)
		send(t, api, s, "still listening?")
		expect(t, api, c, "still listening?")
	}},
	{"close with data still to send delivers it all", func(t T, api socket.API, env Env) {
		c, s := pair(t, api, env)
		nonblock(t, api, c, s)
		data := pattern(200_000, 0x5a)
		f := &flow{from: c, to: s, out: data, want: len(data), closeAfter: true}
		transfer(t, api, f)
		sameBytes(t, "data sent before close", f.in, data)
		eof(t, api, s, "reading again after end of file")
	}},
	{"bulk transfer both ways at once", func(t T, api socket.API, env Env) {
		c, s := pair(t, api, env)
		nonblock(t, api, c, s)
		up, down := pattern(3<<20, 0x11), pattern(3<<20+12345, 0xc3)
		fu := &flow{from: c, to: s, out: up, want: len(up)}
		fd := &flow{from: s, to: c, out: down, want: len(down)}
		transfer(t, api, fu, fd)
		sameBytes(t, "client to server", fu.in, up)
		sameBytes(t, "server to client", fd.in, down)
	}},
	{"closing the listener leaves the connections it accepted open", func(t T, api socket.API, env Env) {
		ln, addr := listener(t, api, env, 8)
		c := dial(t, api, addr)
		s, _ := accept(t, api, ln)
		if err := api.Close(ln); err != nil {
			t.Fatalf("close listener: %v", err)
		}
		nonblock(t, api, c, s)
		up, down := pattern(1<<20, 0x21), pattern(1<<20, 0x87)
		fu := &flow{from: c, to: s, out: up, want: len(up)}
		fd := &flow{from: s, to: c, out: down, want: len(down)}
		transfer(t, api, fu, fd)
		sameBytes(t, "client to server", fu.in, up)
		sameBytes(t, "server to client", fd.in, down)
	}},
	{"poll on a connected socket", func(t T, api socket.API, env Env) {
		c, s := pair(t, api, env)
		p := []socket.PollFD{{FD: c, Events: socket.POLLIN | socket.POLLOUT}}
		if n, err := api.Poll(p, 0); err != nil || n != 1 || p[0].Revents != socket.POLLOUT {
			t.Fatalf("poll on an idle connection: %d %v revents %#x, want POLLOUT alone", n, err, p[0].Revents)
		}
		send(t, api, s, "x")
		if ev := pollFor(t, api, c, socket.POLLIN|socket.POLLOUT, socket.POLLIN, "waiting for data"); ev != socket.POLLIN|socket.POLLOUT {
			t.Fatalf("poll with data to read: revents %#x, want POLLIN|POLLOUT", ev)
		}
	}},
	{"poll after the peer closes reports end of file as readable", func(t T, api socket.API, env Env) {
		c, s := pair(t, api, env)
		if err := api.Close(s); err != nil {
			t.Fatalf("close: %v", err)
		}
		ev := pollFor(t, api, c, socket.POLLIN|socket.POLLOUT, socket.POLLIN, "waiting for the peer's FIN")
		if ev != socket.POLLIN|socket.POLLOUT {
			t.Fatalf("poll after the peer closed: revents %#x, want POLLIN|POLLOUT (no POLLHUP: only one direction is shut)", ev)
		}
		eof(t, api, c, "reading after the peer closed")
	}},
	{"poll reports hang-up once both directions are shut", func(t T, api socket.API, env Env) {
		c, s := pair(t, api, env)
		if err := api.Shutdown(c, socket.SHUT_WR); err != nil {
			t.Fatalf("shutdown SHUT_WR: %v", err)
		}
		eof(t, api, s, "server reading after the client's SHUT_WR")
		p := []socket.PollFD{{FD: c, Events: socket.POLLIN | socket.POLLOUT}}
		if _, err := api.Poll(p, 0); err != nil || p[0].Revents&socket.POLLHUP != 0 {
			t.Fatalf("poll with only the sending direction shut: %v revents %#x, want no POLLHUP", err, p[0].Revents)
		}
		if err := api.Shutdown(s, socket.SHUT_WR); err != nil {
			t.Fatalf("server's shutdown SHUT_WR: %v", err)
		}
		ev := pollFor(t, api, c, socket.POLLIN|socket.POLLOUT, socket.POLLHUP, "waiting for hang-up")
		if want := int16(socket.POLLIN | socket.POLLOUT | socket.POLLHUP); ev != want {
			t.Fatalf("poll with both directions shut: revents %#x, want POLLIN|POLLOUT|POLLHUP (%#x)", ev, want)
		}
		eof(t, api, c, "client reading after both shut")
	}},
	{"send after the peer closed fails with EPIPE", func(t T, api socket.API, env Env) {
		c, s := pair(t, api, env)
		if err := api.Close(s); err != nil {
			t.Fatalf("close: %v", err)
		}
		eof(t, api, c, "reading after the peer closed")
		// The peer's FIN shut only its sending side, as far as this end
		// knows: the first send succeeds, and draws an RST.
		send(t, api, c, "anyone?")
		ev := pollFor(t, api, c, 0, socket.POLLHUP, "waiting for the peer's RST")
		if want := int16(socket.POLLERR | socket.POLLHUP); ev != want {
			t.Fatalf("poll (no events asked) after the RST: revents %#x, want POLLERR|POLLHUP (%#x)", ev, want)
		}
		_, err := socket.Write(api, c, []byte("x"))
		wantErr(t, "send after the peer's RST in CLOSE_WAIT", err, unix.EPIPE)
		_, err = socket.Write(api, c, []byte("x"))
		wantErr(t, "send again", err, unix.EPIPE)
		if n, err := api.Recv(c, make([]byte, 8), socket.MSG_DONTWAIT); n != 0 || err != nil {
			t.Fatalf("recv after the reset: %d %v, want 0", n, err)
		}
	}},
	{"close with unread data resets the connection", func(t T, api socket.API, env Env) {
		c, s := pair(t, api, env)
		send(t, api, c, "never read")
		pollFor(t, api, s, socket.POLLIN, socket.POLLIN, "waiting for the data to arrive")
		if err := api.Close(s); err != nil {
			t.Fatalf("close: %v", err)
		}
		ev := pollFor(t, api, c, 0, socket.POLLHUP, "waiting for the RST")
		if want := int16(socket.POLLERR | socket.POLLHUP); ev != want {
			t.Fatalf("poll (no events asked) after the RST: revents %#x, want POLLERR|POLLHUP (%#x)", ev, want)
		}
		_, err := api.Recv(c, make([]byte, 8), socket.MSG_DONTWAIT)
		wantErr(t, "recv after the peer's RST", err, unix.ECONNRESET)
		if n, err := api.Recv(c, make([]byte, 8), socket.MSG_DONTWAIT); n != 0 || err != nil {
			t.Fatalf("recv once the reset was reported: %d %v, want 0", n, err)
		}
		_, err = socket.Write(api, c, []byte("x"))
		wantErr(t, "send after the reset", err, unix.EPIPE)
	}},
	{"bind twice is invalid", func(t T, api socket.API, env Env) {
		fd := stream(t, api)
		if err := api.Bind(fd, netip.AddrPortFrom(env.Addr, 0)); err != nil {
			t.Fatalf("bind: %v", err)
		}
		wantErr(t, "second bind", api.Bind(fd, netip.AddrPortFrom(env.Addr, 0)), unix.EINVAL)
	}},
	{"bind to a listener's port is refused", func(t T, api socket.API, env Env) {
		_, addr := listener(t, api, env, 8)
		fd := stream(t, api)
		wantErr(t, "bind to a listening port", api.Bind(fd, addr), unix.EADDRINUSE)
		if err := api.SetsockoptInt(fd, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); err != nil {
			t.Fatalf("setsockopt SO_REUSEADDR: %v", err)
		}
		wantErr(t, "bind with SO_REUSEADDR to a listening port", api.Bind(fd, addr), unix.EADDRINUSE)
	}},
	{"reuseaddr binds a port held in TIME_WAIT", func(t T, api socket.API, env Env) {
		ln := stream(t, api)
		if err := api.SetsockoptInt(ln, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); err != nil {
			t.Fatalf("setsockopt SO_REUSEADDR: %v", err)
		}
		if err := api.Bind(ln, netip.AddrPortFrom(env.Addr, 0)); err != nil {
			t.Fatalf("bind: %v", err)
		}
		if err := api.Listen(ln, 8); err != nil {
			t.Fatalf("listen: %v", err)
		}
		addr, err := api.LocalAddr(ln)
		if err != nil {
			t.Fatalf("%v", err)
		}
		c := dial(t, api, addr)
		s, _ := accept(t, api, ln)
		// The server closes first, so its end goes to TIME_WAIT once the
		// client's FIN comes back.
		if err := api.Close(s); err != nil {
			t.Fatalf("close: %v", err)
		}
		eof(t, api, c, "client reading after the server closed")
		if err := api.Close(c); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := api.Close(ln); err != nil {
			t.Fatalf("close: %v", err)
		}
		plain := stream(t, api)
		wantErr(t, "bind without SO_REUSEADDR to a port in TIME_WAIT", api.Bind(plain, addr), unix.EADDRINUSE)
		again := stream(t, api)
		if err := api.SetsockoptInt(again, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); err != nil {
			t.Fatalf("setsockopt SO_REUSEADDR: %v", err)
		}
		if err := api.Bind(again, addr); err != nil {
			t.Fatalf("bind with SO_REUSEADDR to %v in TIME_WAIT: %v", addr, err)
		}
		if err := api.Listen(again, 8); err != nil {
			t.Fatalf("listen on the reused port: %v", err)
		}
		c2 := dial(t, api, addr)
		s2, _ := accept(t, api, again)
		send(t, api, c2, "again")
		expect(t, api, s2, "again")
	}},
	{"tcp_nodelay and buffer sizes", func(t T, api socket.API, env Env) {
		c, _ := pair(t, api, env)
		if v, err := api.GetsockoptInt(c, socket.IPPROTO_TCP, socket.TCP_NODELAY); err != nil || v != 0 {
			t.Fatalf("TCP_NODELAY by default: %d %v, want 0", v, err)
		}
		if err := api.SetsockoptInt(c, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); err != nil {
			t.Fatalf("setsockopt TCP_NODELAY: %v", err)
		}
		if v, err := api.GetsockoptInt(c, socket.IPPROTO_TCP, socket.TCP_NODELAY); err != nil || v == 0 {
			t.Fatalf("TCP_NODELAY after setting 1: %d %v, want non-zero", v, err)
		}
		for _, opt := range []int{socket.SO_RCVBUF, socket.SO_SNDBUF} {
			if v, err := api.GetsockoptInt(c, socket.SOL_SOCKET, opt); err != nil || v <= 0 {
				t.Fatalf("getsockopt buffer size %d: %d %v, want a positive size", opt, v, err)
			}
		}
		fd := stream(t, api)
		if err := api.SetsockoptInt(fd, socket.SOL_SOCKET, socket.SO_RCVBUF, 65536); err != nil {
			t.Fatalf("setsockopt SO_RCVBUF: %v", err)
		}
		if v, err := api.GetsockoptInt(fd, socket.SOL_SOCKET, socket.SO_RCVBUF); err != nil || v < 65536 {
			t.Fatalf("SO_RCVBUF after setting 65536: %d %v, want at least 65536", v, err)
		}
		send(t, api, c, "still works")
	}},
	{"unknown option is not supported", func(t T, api socket.API, env Env) {
		fd := stream(t, api)
		const bogus = 9999
		for _, level := range []int{socket.SOL_SOCKET, socket.IPPROTO_TCP} {
			_, err := api.GetsockoptInt(fd, level, bogus)
			wantErr(t, fmt.Sprintf("getsockopt(level %d, %d)", level, bogus), err, unix.ENOPROTOOPT)
			wantErr(t, fmt.Sprintf("setsockopt(level %d, %d)", level, bogus), api.SetsockoptInt(fd, level, bogus, 1), unix.ENOPROTOOPT)
		}
	}},
	{"closed stream descriptor", func(t T, api socket.API, env Env) {
		c, _ := pair(t, api, env)
		if err := api.Close(c); err != nil {
			t.Fatalf("close: %v", err)
		}
		_, err := api.Recv(c, make([]byte, 8), socket.MSG_DONTWAIT)
		wantErr(t, "recv after close", err, unix.EBADF)
		_, err = socket.Write(api, c, []byte("x"))
		wantErr(t, "send after close", err, unix.EBADF)
		wantErr(t, "close twice", api.Close(c), unix.EBADF)
	}},
}

// TCP runs the TCP part of the suite on api under go test.
func TCP(t *testing.T, api socket.API, env Env) {
	for _, c := range TCPCases {
		t.Run(c.Name, func(t *testing.T) { c.Run(t, api, env) })
	}
}

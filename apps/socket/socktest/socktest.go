// Package socktest is the socket library's conformance suite: one table of
// calls and socket states, run on every backend, each of which must give
// the results and errnos Linux gives. A case needs only a small T (fail,
// clean up), so the same table runs under `go test` and inside an
// application process of the simulated host (Run), where there is no
// *testing.T.
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

// Env says where a backend's sockets live.
type Env struct {
	// Addr is a local address of the host the backend's sockets are on.
	Addr netip.Addr
	// ClosedPort is a port nothing listens on there, for UDP and for TCP.
	ClosedPort uint16
}

// T is what a case needs of its runner: a way to fail, and clean-ups.
type T interface {
	Fatalf(format string, args ...any)
	Cleanup(func())
	Helper()
}

// udp opens a UDP socket or fails the case.
func udp(t T, api socket.API) socket.FD {
	t.Helper()
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { api.Close(fd) })
	return fd
}

func bound(t T, api socket.API, env Env) (socket.FD, netip.AddrPort) {
	t.Helper()
	fd := udp(t, api)
	if err := api.Bind(fd, netip.AddrPortFrom(env.Addr, 0)); err != nil {
		t.Fatalf("bind: %v", err)
	}
	a, err := api.LocalAddr(fd)
	if err != nil || a.Port() == 0 {
		t.Fatalf("local address after bind to port 0: %v %v", a, err)
	}
	return fd, a
}

func wantErr(t T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

// toClosedPort connects a socket to the closed port and sends to it, which
// draws an ICMP port unreachable.
func toClosedPort(t T, api socket.API, env Env) socket.FD {
	t.Helper()
	a, _ := bound(t, api, env)
	if err := api.Connect(a, netip.AddrPortFrom(env.Addr, env.ClosedPort)); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if _, err := socket.Write(api, a, []byte("anyone?")); err != nil {
		t.Fatalf("write: %v", err)
	}
	return a
}

// Case is one entry of the suite.
type Case struct {
	Name string
	Run  func(t T, api socket.API, env Env)
}

// UDPCases is the UDP part of the suite.
var UDPCases = []Case{
	{"ephemeral bind and round trip", func(t T, api socket.API, env Env) {
		a, aAddr := bound(t, api, env)
		b, bAddr := bound(t, api, env)
		if n, err := api.SendTo(a, []byte("ping"), 0, bAddr); err != nil || n != 4 {
			t.Fatalf("sendto: %d %v", n, err)
		}
		buf := make([]byte, 64)
		n, from, err := api.RecvFrom(b, buf, 0)
		if err != nil || string(buf[:n]) != "ping" || from != aAddr {
			t.Fatalf("recvfrom: %q from %v, %v; want ping from %v", buf[:max(n, 0)], from, err, aAddr)
		}
	}},
	{"address in use", func(t T, api socket.API, env Env) {
		_, aAddr := bound(t, api, env)
		b := udp(t, api)
		wantErr(t, "second bind", api.Bind(b, aAddr), unix.EADDRINUSE)
	}},
	{"empty non-blocking receive", func(t T, api socket.API, env Env) {
		a, _ := bound(t, api, env)
		buf := make([]byte, 8)
		_, _, err := api.RecvFrom(a, buf, socket.MSG_DONTWAIT)
		wantErr(t, "recvfrom MSG_DONTWAIT", err, unix.EAGAIN)
		if err := api.SetNonblock(a, true); err != nil {
			t.Fatalf("%v", err)
		}
		_, err = socket.Read(api, a, buf)
		wantErr(t, "read on a non-blocking socket", err, unix.EAGAIN)
	}},
	{"closed descriptor", func(t T, api socket.API, env Env) {
		fd, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatalf("%v", err)
		}
		if err := api.Close(fd); err != nil {
			t.Fatalf("%v", err)
		}
		_, _, err = api.RecvFrom(fd, make([]byte, 8), socket.MSG_DONTWAIT)
		wantErr(t, "recvfrom after close", err, unix.EBADF)
		wantErr(t, "close twice", api.Close(fd), unix.EBADF)
	}},
	{"connected to a closed port", func(t T, api socket.API, env Env) {
		a := toClosedPort(t, api, env)
		deadline := time.Now().Add(2 * time.Second)
		for {
			_, err := api.Recv(a, make([]byte, 8), socket.MSG_DONTWAIT)
			if errors.Is(err, unix.ECONNREFUSED) {
				return
			}
			if !errors.Is(err, unix.EAGAIN) || time.Now().After(deadline) {
				t.Fatalf("recv after sending to a closed port: %v, want ECONNREFUSED", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}},
	{"truncation", func(t T, api socket.API, env Env) {
		a, _ := bound(t, api, env)
		b, bAddr := bound(t, api, env)
		api.SendTo(a, []byte("0123456789"), 0, bAddr)
		api.SendTo(a, []byte("next"), 0, bAddr)
		buf := make([]byte, 4)
		n, _, err := api.RecvFrom(b, buf, 0)
		if err != nil || n != 4 || string(buf) != "0123" {
			t.Fatalf("short buffer: %d %q %v", n, buf, err)
		}
		n, _, err = api.RecvFrom(b, buf, 0)
		if err != nil || string(buf[:n]) != "next" {
			t.Fatalf("the rest of a truncated datagram must be discarded: got %q %v", buf[:max(n, 0)], err)
		}
	}},
	{"poll and select", func(t T, api socket.API, env Env) {
		a, _ := bound(t, api, env)
		b, bAddr := bound(t, api, env)
		p := []socket.PollFD{{FD: b, Events: socket.POLLIN}}
		if n, err := api.Poll(p, 0); err != nil || n != 0 {
			t.Fatalf("poll on an empty socket: %d %v", n, err)
		}
		api.SendTo(a, []byte("x"), 0, bAddr)
		if n, err := api.Poll(p, time.Second); err != nil || n != 1 || p[0].Revents&socket.POLLIN == 0 {
			t.Fatalf("poll after a send: %d %v %x", n, err, p[0].Revents)
		}
		read, write := socket.FDSet{b: true, a: true}, socket.FDSet{a: true}
		n, err := socket.Select(api, read, write, time.Second)
		if err != nil || n != 2 || !read[b] || read[a] || !write[a] {
			t.Fatalf("select: %d %v read %v write %v", n, err, read, write)
		}
	}},
	{"writev makes one datagram", func(t T, api socket.API, env Env) {
		a, _ := bound(t, api, env)
		b, bAddr := bound(t, api, env)
		if err := api.Connect(a, bAddr); err != nil {
			t.Fatalf("%v", err)
		}
		if n, err := api.Writev(a, [][]byte{[]byte("head:"), []byte("body")}); err != nil || n != 9 {
			t.Fatalf("writev: %d %v", n, err)
		}
		buf := make([]byte, 64)
		n, _, err := api.RecvFrom(b, buf, 0)
		if err != nil || !bytes.Equal(buf[:n], []byte("head:body")) {
			t.Fatalf("got %q %v", buf[:max(n, 0)], err)
		}
	}},
	{"reuseaddr lets two sockets bind one port", func(t T, api socket.API, env Env) {
		a, b := udp(t, api), udp(t, api)
		for _, fd := range []socket.FD{a, b} {
			if err := api.SetsockoptInt(fd, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); err != nil {
				t.Fatalf("setsockopt SO_REUSEADDR: %v", err)
			}
		}
		if v, err := api.GetsockoptInt(a, socket.SOL_SOCKET, socket.SO_REUSEADDR); err != nil || v != 1 {
			t.Fatalf("getsockopt SO_REUSEADDR: %d %v, want 1", v, err)
		}
		if err := api.Bind(a, netip.AddrPortFrom(env.Addr, 0)); err != nil {
			t.Fatalf("bind: %v", err)
		}
		addr, err := api.LocalAddr(a)
		if err != nil {
			t.Fatalf("%v", err)
		}
		if err := api.Bind(b, addr); err != nil {
			t.Fatalf("second bind to %v with SO_REUSEADDR: %v", addr, err)
		}
	}},
	{"so_error reports an ICMP error once", func(t T, api socket.API, env Env) {
		a := toClosedPort(t, api, env)
		deadline := time.Now().Add(2 * time.Second)
		for {
			v, err := api.GetsockoptInt(a, socket.SOL_SOCKET, socket.SO_ERROR)
			if err != nil {
				t.Fatalf("getsockopt SO_ERROR: %v", err)
			}
			if unix.Errno(v) == unix.ECONNREFUSED {
				break
			}
			if v != 0 || time.Now().After(deadline) {
				t.Fatalf("SO_ERROR = %d, want ECONNREFUSED", v)
			}
			time.Sleep(5 * time.Millisecond)
		}
		_, err := api.Recv(a, make([]byte, 8), socket.MSG_DONTWAIT)
		wantErr(t, "recv after SO_ERROR took the error", err, unix.EAGAIN)
	}},
	{"shutdown", func(t T, api socket.API, env Env) {
		a, _ := bound(t, api, env)
		wantErr(t, "shutdown of an unconnected socket", api.Shutdown(a, socket.SHUT_RDWR), unix.ENOTCONN)
		_, bAddr := bound(t, api, env)
		if err := api.Connect(a, bAddr); err != nil {
			t.Fatalf("%v", err)
		}
		if err := api.Shutdown(a, socket.SHUT_WR); err != nil {
			t.Fatalf("shutdown SHUT_WR: %v", err)
		}
		_, err := socket.Write(api, a, []byte("x"))
		wantErr(t, "send after SHUT_WR", err, unix.EPIPE)
		if err := api.Shutdown(a, socket.SHUT_RD); err != nil {
			t.Fatalf("shutdown SHUT_RD: %v", err)
		}
		if n, err := api.Recv(a, make([]byte, 8), 0); n != 0 || err != nil {
			t.Fatalf("recv after SHUT_RD: %d %v, want 0 (end of file)", n, err)
		}
	}},
}

// UDP runs the UDP part of the suite on api under go test.
func UDP(t *testing.T, api socket.API, env Env) {
	for _, c := range UDPCases {
		t.Run(c.Name, func(t *testing.T) { c.Run(t, api, env) })
	}
}

// runner runs a case outside go test: Fatalf records the failure and
// unwinds the case; clean-ups run afterwards.
type runner struct {
	failed   string
	cleanups []func()
}

type stop struct{}

func (r *runner) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(stop{})
}
func (r *runner) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *runner) Helper()          {}

// Run runs the cases on api outside go test and returns each case's
// failure ("" when it passed).
func Run(cases []Case, api socket.API, env Env) map[string]string {
	results := map[string]string{}
	for _, c := range cases {
		r := &runner{}
		func() {
			defer func() {
				if v := recover(); v != nil {
					if _, ok := v.(stop); !ok {
						r.failed = fmt.Sprintf("panic: %v", v)
					}
				}
				for i := len(r.cleanups) - 1; i >= 0; i-- {
					r.cleanups[i]()
				}
			}()
			c.Run(r, api, env)
		}()
		results[c.Name] = r.failed
	}
	return results
}

// AllCases is the whole suite: the UDP cases, then the TCP ones.
func AllCases() []Case { return append(append([]Case(nil), UDPCases...), TCPCases...) }

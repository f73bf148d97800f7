package servers

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// pollHost is syscall with app's two sockets, udp's 5 and tcp's 8, and a
// clock the test moves.
type pollHost struct {
	t            *testing.T
	h            *systest.Harness
	c            *syscallServer
	clock        time.Time
	udpFD, tcpFD uint64
}

func newPollHost(t *testing.T) *pollHost {
	h := newRole(t, "syscall", Syscall)
	p := &pollHost{t: t, h: h, c: h.Handler.(*syscallServer), clock: time.Unix(1000, 0)}
	p.c.now = func() time.Time { return p.clock }
	p.udpFD = openVia(t, h, "app", unix.SOCK_DGRAM, "udp", 5)
	p.tcpFD = openVia(t, h, "app", unix.SOCK_STREAM, "tcp", 8)
	return p
}

// pollSet is app's OpPollSet over the entries, in a buffer of app's pool.
func (p *pollHost) pollSet(timeout time.Duration, set ...sockcall.PollEntry) ipc.Message {
	b := make([]byte, len(set)*sockcall.PollEntrySize)
	sockcall.PutPollSet(b, set)
	var m ipc.Message
	sockcall.Call{Op: ipc.OpPollSet, Count: len(set), Timeout: timeout, Buf: p.h.Buffer("app", b)}.Encode(&m)
	m.Seq = 50
	return m
}

// sent sorts what syscall sent since the last look: its asks to the
// transports, and to app its replies (BufFrees counted apart) and Wakes.
type sent struct {
	asks            map[string][]ipc.Message
	replies, wakes  []ipc.Message
	freed, kernelTo int
}

func (p *pollHost) sent() sent {
	p.t.Helper()
	s := sent{asks: map[string][]ipc.Message{}}
	for _, m := range p.h.Sent() {
		to := p.h.Name(m.Dst)
		switch {
		case m.Type == ipc.Socket && (to == "udp" || to == "tcp"):
			c := systest.CallOf(m)
			if c.Op != ipc.OpPoll || c.Caller != p.h.Endpoint("app") || m.Seq&askBit == 0 {
				p.t.Fatalf("sent %s %+v (seq %#x), want a poll for app with one of syscall's seqs", to, c, m.Seq)
			}
			s.asks[to] = append(s.asks[to], m)
		case to == "app" && m.Type == ipc.SocketReply:
			s.replies = append(s.replies, m)
		case to == "app" && m.Type == ipc.Wake:
			s.wakes = append(s.wakes, m)
		case to == "app" && m.Type == ipc.BufFree:
			s.freed++
		default:
			p.t.Fatalf("sent %v to %s", m.Type, to)
		}
	}
	s.kernelTo = len(p.h.KernelSent())
	return s
}

// answer has transport answer syscall's ask with result.
func (p *pollHost) answer(transport string, ask ipc.Message, result int64) {
	r := systest.Reply(ipc.OpPoll, ask.Seq, result, p.h.Endpoint("app"))
	p.h.Deliver(transport, r)
}

// wake has transport send the Wake of an arm on its socket sock.
func (p *pollHost) wake(transport string, sock uint64, events int16) {
	var m ipc.Message
	sockcall.Wake{Sock: sock, Caller: p.h.Endpoint("app"), Events: events}.Encode(&m)
	p.h.Deliver(transport, m)
}

// wantReply checks the one reply to app: n ready, and the first of them,
// with the set's buffer given back.
func (p *pollHost) wantReply(s sent, n int64, ready ...sockcall.PollReady) {
	p.t.Helper()
	if len(s.replies) != 1 || s.freed != 1 {
		p.t.Fatalf("%d replies to app, %d buffers given back; want 1 and 1", len(s.replies), s.freed)
	}
	r := systest.ReplyOf(s.replies[0])
	if r.Op != ipc.OpPollSet || r.Result != n || s.replies[0].Seq != 50 {
		p.t.Fatalf("reply %+v (seq %d), want %d ready to the poll set's seq", r, s.replies[0].Seq, n)
	}
	var want [sockcall.MaxPollReady]sockcall.PollReady
	copy(want[:], ready)
	if r.Ready != want {
		p.t.Fatalf("ready %v, want %v", r.Ready, want)
	}
}

// armed has a poll set over the udp socket find it not ready: syscall
// asks udp (arming it) and waits.
func (p *pollHost) armed(events int16) {
	p.t.Helper()
	p.h.Deliver("app", p.pollSet(20*time.Millisecond, sockcall.PollEntry{Sock: uint32(p.udpFD), Events: events}))
	s := p.sent()
	if len(s.asks["udp"]) != 1 || !systest.CallOf(s.asks["udp"][0]).Arm || systest.CallOf(s.asks["udp"][0]).Sock != 5 {
		p.t.Fatalf("asks %v, want one armed poll of udp's socket 5", s.asks)
	}
	p.answer("udp", s.asks["udp"][0], 0)
	if s := p.sent(); len(s.replies) != 0 || s.kernelTo != 1 {
		p.t.Fatalf("after nothing ready: %d replies, %d kernel calls; want none, and the alarm set", len(s.replies), s.kernelTo)
	}
}

func TestSyscallPollSet(t *testing.T) {
	in := func(r int16) sockcall.PollReady { return sockcall.PollReady{Index: 0, Revents: r} }
	tests := []struct {
		name string
		run  func(p *pollHost)
	}{
		{"asks each transport at once, answers with the ready ones", func(p *pollHost) {
			p.h.Deliver("app", p.pollSet(20*time.Millisecond,
				sockcall.PollEntry{Sock: uint32(p.udpFD), Events: unix.POLLIN},
				sockcall.PollEntry{Sock: uint32(p.tcpFD), Events: unix.POLLIN | unix.POLLOUT},
				sockcall.PollEntry{Sock: 99, Events: unix.POLLIN}))
			s := p.sent()
			if len(s.asks["udp"]) != 1 || len(s.asks["tcp"]) != 1 || len(s.replies) != 0 || s.freed != 0 {
				t.Fatalf("asks %v, %d replies, %d buffers freed; want one ask each, no reply yet, the set's buffer kept until then",
					s.asks, len(s.replies), s.freed)
			}
			if c := systest.CallOf(s.asks["tcp"][0]); c.Sock != 8 || c.Events != unix.POLLIN|unix.POLLOUT {
				t.Fatalf("asked tcp %+v, want socket 8 for POLLIN|POLLOUT", c)
			}
			p.answer("udp", s.asks["udp"][0], 0)
			if s := p.sent(); len(s.replies) != 0 {
				t.Fatalf("answered before tcp did")
			}
			p.answer("tcp", s.asks["tcp"][0], unix.POLLOUT)
			p.wantReply(p.sent(), 2, sockcall.PollReady{Index: 1, Revents: unix.POLLOUT}, sockcall.PollReady{Index: 2, Revents: unix.POLLNVAL})
		}},
		{"a descriptor known not ready is not asked about", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.clock = p.clock.Add(pollRecheck / 2)
			p.h.Deliver("app", p.pollSet(20*time.Millisecond, sockcall.PollEntry{Sock: uint32(p.udpFD), Events: unix.POLLIN}))
			if s := p.sent(); len(s.asks) != 0 || len(s.replies) != 0 {
				t.Fatalf("asks %v, %d replies; want none: udp armed and has not woken", s.asks, len(s.replies))
			}
		}},
		{"other events are asked about", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.h.Deliver("app", p.pollSet(20*time.Millisecond, sockcall.PollEntry{Sock: uint32(p.udpFD), Events: unix.POLLIN | unix.POLLOUT}))
			if s := p.sent(); len(s.asks["udp"]) != 1 {
				t.Fatalf("asks %v, want udp asked about POLLOUT", s.asks)
			}
		}},
		{"after the recheck it is asked about again", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.clock = p.clock.Add(pollRecheck)
			p.h.Deliver("app", p.pollSet(20*time.Millisecond, sockcall.PollEntry{Sock: uint32(p.udpFD), Events: unix.POLLIN}))
			if s := p.sent(); len(s.asks["udp"]) != 1 {
				t.Fatalf("asks %v, want udp asked again: a Wake may have been lost", s.asks)
			}
		}},
		{"the application's own call forgets what was known", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.h.Deliver("app", systest.RecvFrom(p.udpFD, 100, unix.MSG_DONTWAIT))
			p.h.Sent()
			p.h.Deliver("app", p.pollSet(20*time.Millisecond, sockcall.PollEntry{Sock: uint32(p.udpFD), Events: unix.POLLIN}))
			if s := p.sent(); len(s.asks["udp"]) != 1 {
				t.Fatalf("asks %v, want udp asked again after a receive", s.asks)
			}
		}},
		{"a Wake saying ready answers the waiting poll", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.wake("udp", 5, unix.POLLIN)
			s := p.sent()
			if len(s.wakes) != 0 || len(s.asks) != 0 {
				t.Fatalf("%d Wakes passed on, asks %v; want neither", len(s.wakes), s.asks)
			}
			p.wantReply(s, 1, in(unix.POLLIN))
		}},
		{"a Wake saying nothing is ready asks again", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.wake("udp", 5, 0)
			s := p.sent()
			if len(s.asks["udp"]) != 1 || len(s.replies) != 0 {
				t.Fatalf("asks %v, %d replies; want udp asked again", s.asks, len(s.replies))
			}
			p.answer("udp", s.asks["udp"][0], unix.POLLIN)
			p.wantReply(p.sent(), 1, in(unix.POLLIN))
		}},
		{"a Wake with nobody waiting is not passed on, and answers the next poll", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.h.Deliver("app", systest.Bind(p.tcpFD, at(peerIP, 80))) // app stopped polling
			var freed int
			for _, m := range p.h.Sent() {
				if m.Type == ipc.BufFree {
					freed++
				}
			}
			if freed != 1 {
				t.Fatalf("%d buffers given back when app stopped waiting, want its set's", freed)
			}
			p.wake("udp", 5, unix.POLLIN)
			if s := p.sent(); len(s.wakes) != 0 || len(s.replies) != 0 {
				t.Fatalf("%d Wakes, %d replies to app; want none", len(s.wakes), len(s.replies))
			}
			p.h.Deliver("app", p.pollSet(20*time.Millisecond, sockcall.PollEntry{Sock: uint32(p.udpFD), Events: unix.POLLIN}))
			s := p.sent()
			if len(s.asks) != 0 {
				t.Fatalf("asks %v, want none: the Wake said POLLIN", s.asks)
			}
			p.wantReply(s, 1, in(unix.POLLIN))
			// Ready until the application's own call on it.
			p.h.Deliver("app", systest.RecvFrom(p.udpFD, 100, unix.MSG_DONTWAIT))
			p.h.Sent()
			p.h.Deliver("app", p.pollSet(20*time.Millisecond, sockcall.PollEntry{Sock: uint32(p.udpFD), Events: unix.POLLIN}))
			if s := p.sent(); len(s.asks["udp"]) != 1 {
				t.Fatalf("asks %v, want udp asked after a receive", s.asks)
			}
		}},
		{"a Wake saying nothing is ready, with nobody waiting, is asked about next time", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.h.Deliver("app", systest.Bind(p.tcpFD, at(peerIP, 80)))
			p.h.Sent()
			p.wake("udp", 5, 0)
			p.h.Deliver("app", p.pollSet(20*time.Millisecond, sockcall.PollEntry{Sock: uint32(p.udpFD), Events: unix.POLLIN}))
			if s := p.sent(); len(s.asks["udp"]) != 1 {
				t.Fatalf("asks %v, want udp asked: it changed", s.asks)
			}
		}},
		{"what a Wake said ready does not answer other events", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.h.Deliver("app", systest.Bind(p.tcpFD, at(peerIP, 80)))
			p.h.Sent()
			p.wake("udp", 5, unix.POLLIN)
			p.h.Deliver("app", p.pollSet(20*time.Millisecond, sockcall.PollEntry{Sock: uint32(p.udpFD), Events: unix.POLLOUT}))
			if s := p.sent(); len(s.asks["udp"]) != 1 {
				t.Fatalf("asks %v, want udp asked about POLLOUT", s.asks)
			}
		}},
		{"an application's own armed poll still gets its Wake", func(p *pollHost) {
			call := armedPoll(p.udpFD, unix.POLLIN)
			call.Seq = 3
			p.h.Deliver("app", call)
			fwd := p.h.SentTo("udp")
			p.h.Deliver("udp", systest.Reply(ipc.OpPoll, fwd[0].Seq, 0, p.h.Endpoint("app")))
			p.sent()
			p.wake("udp", 5, unix.POLLIN)
			if s := p.sent(); len(s.wakes) != 1 {
				t.Fatalf("%d Wakes to app, want 1", len(s.wakes))
			}
		}},
		{"the timeout answers with nothing ready", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.clock = p.clock.Add(20 * time.Millisecond)
			p.h.Deliver("kernel", systest.Alarm())
			p.wantReply(p.sent(), 0)
		}},
		{"the recheck asks again while waiting", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.clock = p.clock.Add(pollRecheck)
			p.h.Deliver("kernel", systest.Alarm())
			s := p.sent()
			if len(s.asks["udp"]) != 1 || len(s.replies) != 0 {
				t.Fatalf("asks %v, %d replies; want udp asked again, no answer yet", s.asks, len(s.replies))
			}
			p.answer("udp", s.asks["udp"][0], unix.POLLIN)
			p.wantReply(p.sent(), 1, in(unix.POLLIN))
		}},
		{"an earlier alarm does not put the recheck off", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.clock = p.clock.Add(pollRecheck / 2)
			p.h.Deliver("kernel", systest.Alarm())
			if s := p.sent(); len(s.asks) != 0 || len(s.replies) != 0 {
				t.Fatalf("asks %v, %d replies before the recheck; want none", s.asks, len(s.replies))
			}
			p.clock = p.clock.Add(pollRecheck / 2)
			p.h.Deliver("kernel", systest.Alarm())
			if s := p.sent(); len(s.asks["udp"]) != 1 {
				t.Fatalf("asks %v at the recheck, want udp asked again", s.asks)
			}
		}},
		{"a zero timeout arms nothing and answers at once", func(p *pollHost) {
			p.h.Deliver("app", p.pollSet(0, sockcall.PollEntry{Sock: uint32(p.udpFD), Events: unix.POLLIN}))
			s := p.sent()
			if len(s.asks["udp"]) != 1 || systest.CallOf(s.asks["udp"][0]).Arm {
				t.Fatalf("asks %v, want one poll of udp, not armed", s.asks)
			}
			p.answer("udp", s.asks["udp"][0], 0)
			p.wantReply(p.sent(), 0)
			p.h.Deliver("app", p.pollSet(0, sockcall.PollEntry{Sock: uint32(p.udpFD), Events: unix.POLLIN}))
			if s := p.sent(); len(s.asks["udp"]) != 1 {
				t.Fatalf("asks %v, want udp asked again: nothing was armed", s.asks)
			}
		}},
		{"more ready than a reply names", func(p *pollHost) {
			var set []sockcall.PollEntry
			var want []sockcall.PollReady
			for i := range 11 {
				set = append(set, sockcall.PollEntry{Sock: uint32(200 + i), Events: unix.POLLIN})
				if i < sockcall.MaxPollReady {
					want = append(want, sockcall.PollReady{Index: uint16(i), Revents: unix.POLLNVAL})
				}
			}
			p.h.Deliver("app", p.pollSet(-1, set...))
			p.wantReply(p.sent(), 11, want...)
		}},
		{"a transport that dies resets its descriptors in a waiting poll", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.h.Kill("udp")
			p.wantReply(p.sent(), 1, in(unix.POLLIN|unix.POLLERR|unix.POLLHUP))
		}},
		{"a transport that dies with an ask answers it as reset", func(p *pollHost) {
			p.h.Deliver("app", p.pollSet(20*time.Millisecond, sockcall.PollEntry{Sock: uint32(p.tcpFD), Events: unix.POLLOUT}))
			p.sent()
			p.h.Kill("tcp")
			p.wantReply(p.sent(), 1, in(unix.POLLOUT|unix.POLLERR|unix.POLLHUP))
		}},
		{"an application that dies waiting is forgotten", func(p *pollHost) {
			p.armed(unix.POLLIN)
			p.h.Kill("app")
			if len(p.c.polls) != 0 || len(p.c.asks) != 0 {
				t.Fatalf("kept %d polls and %d asks of a dead application", len(p.c.polls), len(p.c.asks))
			}
		}},
		{"another application's descriptor is not polled", func(p *pollHost) {
			b := make([]byte, sockcall.PollEntrySize)
			sockcall.PutPollSet(b, []sockcall.PollEntry{{Sock: uint32(p.udpFD), Events: unix.POLLIN}})
			var m ipc.Message
			sockcall.Call{Op: ipc.OpPollSet, Count: 1, Timeout: -1, Buf: p.h.Buffer("other", b)}.Encode(&m)
			m.Seq = 50
			p.h.Deliver("other", m)
			out := p.h.SentTo("other")
			var replies []ipc.Message
			for _, m := range out {
				if m.Type == ipc.SocketReply {
					replies = append(replies, m)
				}
			}
			if len(replies) != 1 || systest.ReplyOf(replies[0]).Ready[0] != in(unix.POLLNVAL) {
				t.Fatalf("sent %v, want POLLNVAL for app's descriptor", out)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(newPollHost(t)) })
	}
}

// A poll set its buffer does not hold, or a bad buffer, is refused; the
// buffer is given back either way.
func TestSyscallPollSetRefused(t *testing.T) {
	tests := []struct {
		name  string
		count int
		bad   bool
		errno unix.Errno
	}{
		{"more entries than the buffer holds", 3, false, unix.EINVAL},
		{"a negative count", -1, false, unix.EINVAL},
		{"a buffer of another process's pool", 1, true, unix.EFAULT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPollHost(t)
			b := make([]byte, 2*sockcall.PollEntrySize)
			owner := "app"
			if tt.bad {
				owner = "udp" // app may not name udp's buffers
			}
			ref := p.h.Buffer(owner, b)
			var m ipc.Message
			sockcall.Call{Op: ipc.OpPollSet, Count: tt.count, Timeout: -1, Buf: ref}.Encode(&m)
			m.Seq = 50
			p.h.Deliver("app", m)
			s := p.sent()
			if len(s.replies) != 1 || systest.Errno(s.replies[0]) != tt.errno {
				t.Fatalf("replies %v, want %v", s.replies, tt.errno)
			}
			if want := map[bool]int{false: 1, true: 0}[tt.bad]; s.freed != want {
				t.Fatalf("%d buffers given back to app, want %d", s.freed, want)
			}
		})
	}
}

package servers

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/proto"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// callVia has the transport under test (udp or tcp) handle app's socket
// call as syscall forwards it, on the transport's socket sock, with seq
// 11, and returns the replies it sent back to syscall, checking that it
// sent nothing else.
func callVia(t *testing.T, h *systest.Harness, call ipc.Message, sock uint64) []ipc.Message {
	t.Helper()
	deliverVia(h, call, sock)
	return repliesFor(t, h, systest.Op(call), 11, h.SentTo("syscall"))
}

// deliverVia has the transport handle app's call as syscall forwards it,
// on socket sock, with seq 11.
func deliverVia(h *systest.Harness, call ipc.Message, sock uint64) {
	call = systest.Forwarded(call, sock, h.Endpoint("app"))
	call.Seq = 11
	h.Deliver("syscall", call)
}

// repliesFor checks that each of out is a reply to syscall for app's
// call op with seq.
func repliesFor(t *testing.T, h *systest.Harness, op ipc.SocketOp, seq uint32, out []ipc.Message) []ipc.Message {
	t.Helper()
	for _, r := range out {
		if r.Dst != h.Endpoint("syscall") {
			t.Fatalf("sent %v to %s, want replies to syscall", r, h.Name(r.Dst))
		}
		if r.Type != ipc.SocketReply || systest.Op(r) != op || r.Seq != seq || systest.Caller(r) != h.Endpoint("app") {
			t.Fatalf("sent %v, want a %v reply for app with seq %d", r, op, seq)
		}
	}
	return out
}

// oneReply is the single reply callVia got, its errno checked.
func oneReply(t *testing.T, out []ipc.Message, errno unix.Errno) ipc.Message {
	t.Helper()
	if len(out) != 1 || systest.Errno(out[0]) != errno {
		t.Fatalf("replies %v, want one with errno %d (%v)", out, errno, errno)
	}
	return out[0]
}

// newUDP runs udp with a socket bound to port 7; it returns the socket.
func newUDP(t *testing.T) (*systest.Harness, uint64) {
	h := newRole(t, "udp", UDP)
	r := oneReply(t, callVia(t, h, systest.Open(unix.SOCK_DGRAM), 0), 0)
	sock := uint64(systest.Result(r))
	oneReply(t, callVia(t, h, systest.Bind(sock, at(hostIP, 7)), sock), 0)
	return h, sock
}

// datagramUp has ip hand udp a datagram from the neighbour to port and
// returns ip's buffer.
func datagramUp(t *testing.T, h *systest.Harness, port uint16, data string) pool.Ref {
	ref := h.Buffer("ip", udpPacket(t, at(peerIP, 1000), at(hostIP, port), []byte(data)))
	h.Deliver("ip", systest.Datagram(ref, 20))
	return ref
}

func TestUDPCalls(t *testing.T) {
	tests := []struct {
		name  string
		call  func(sock uint64) ipc.Message
		errno unix.Errno
	}{
		{"open a stream", func(uint64) ipc.Message { return systest.Open(unix.SOCK_STREAM) }, unix.EPROTONOSUPPORT},
		{"bind a port in use", func(s uint64) ipc.Message { return systest.Bind(s+1, at(hostIP, 7)) }, unix.EADDRINUSE},
		{"receive without waiting", func(s uint64) ipc.Message { return systest.RecvFrom(s, 0, unix.MSG_DONTWAIT) }, unix.EAGAIN},
		{"a socket never opened", func(s uint64) ipc.Message { return systest.Poll(s+100, unix.POLLIN) }, unix.EBADF},
		{"poll", func(s uint64) ipc.Message { return systest.Poll(s, unix.POLLOUT) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, sock := newUDP(t)
			oneReply(t, callVia(t, h, systest.Open(unix.SOCK_DGRAM), 0), 0) // sock+1
			c := tt.call(sock)
			oneReply(t, callVia(t, h, c, systest.Sock(c)), tt.errno)
		})
	}
}

func TestUDPBlockingReceive(t *testing.T) {
	h, sock := newUDP(t)
	if out := callVia(t, h, systest.RecvFrom(sock, 0, 0), sock); len(out) != 0 {
		t.Fatalf("a receive with nothing queued was answered: %v", out)
	}
	ref := datagramUp(t, h, 7, "hello")
	var r ipc.Message
	for _, m := range h.Sent() {
		switch {
		case m.Type == ipc.BufFree && m.Dst == h.Endpoint("ip") && systest.Ref(m) == ref:
		case m.Type == ipc.SocketReply && m.Dst == h.Endpoint("syscall") && r.Type == 0:
			r = m
		default:
			t.Fatalf("sent %v, want ip's buffer back and the parked receive answered", m)
		}
	}
	if systest.Result(r) != 5 || r.Seq != 11 || systest.Caller(r) != h.Endpoint("app") ||
		systest.ReplyAddr(r) != at(peerIP, 1000) {
		t.Fatalf("answered %v, want 5 bytes from %v for app", r, at(peerIP, 1000))
	}
	data := systest.ReplyData(r)
	if data.Pool() != uint8(hostSlots["udp"]) || !bytes.Equal(h.Bytes(data), []byte("hello")) {
		t.Errorf("the data is %v, want \"hello\" in a buffer of udp's", data)
	}
	if h.InUse("ip") != 1 {
		t.Error("udp freed ip's buffer itself")
	}
}

func TestUDPSend(t *testing.T) {
	h, sock := newUDP(t)
	data := h.Buffer("app", []byte("query"))
	c := systest.Forwarded(systest.SendTo(sock, at(peerIP, 53), data, 0), sock, h.Endpoint("app"))
	h.Deliver("syscall", c)
	var seg, back, reply []ipc.Message
	for _, m := range h.Sent() {
		switch {
		case m.Type == ipc.Datagram && m.Dst == h.Endpoint("ip"):
			seg = append(seg, m)
		case m.Type == ipc.BufFree && m.Dst == h.Endpoint("syscall") && systest.Ref(m) == data:
			back = append(back, m)
		case m.Type == ipc.SocketReply && m.Dst == h.Endpoint("syscall"):
			reply = append(reply, m)
		default:
			t.Fatalf("sent %v", m)
		}
	}
	if len(seg) != 1 || len(back) != 1 || len(reply) != 1 || systest.Result(reply[0]) != 5 {
		t.Fatalf("sent segments %v, buffers back %v, replies %v; want one of each, 5 bytes sent", seg, back, reply)
	}
	d := systest.DatagramOf(seg[0])
	src, dst, prot := d.Src, d.Dst, d.Proto
	if src != hostIP || dst != peerIP || prot != proto.UDP {
		t.Errorf("segment %v -> %v proto %d, want UDP from %v to %v", src, dst, prot, hostIP, peerIP)
	}
	checker.Segment(t, prot, src, dst, h.Bytes(systest.Ref(seg[0])),
		checker.UDP(checker.SrcPort(7), checker.DstPort(53), checker.Payload([]byte("query"))))
	// A bad buffer is refused and counted, and nothing goes out.
	bad := pool.MakeRef(uint8(hostSlots["app"]), 1<<30, 5)
	oneReply(t, callVia(t, h, systest.SendTo(sock, at(peerIP, 53), bad, 0), sock), unix.EFAULT)
	if got := h.Metric("newtsim_server_bad_buffer_refs_total", "type", "socket"); got != 1 {
		t.Errorf("bad refs = %v, want 1", got)
	}
}

func TestUDPNoSocket(t *testing.T) {
	h, _ := newUDP(t)
	ref := datagramUp(t, h, 9, "nobody")
	out := h.SentTo("ip")
	if len(out) != 1 || out[0].Type != ipc.Unreachable || systest.Ref(out[0]) != ref {
		t.Fatalf("sent %v, want the datagram given back to ip as unreachable", out)
	}
}

// TestUDPICMPErrors: an ICMP error ip passes on about a connected
// socket's datagram ends its waiting receive with the errno Linux gives a
// connected UDP socket; a soft one leaves the receive waiting.
func TestUDPICMPErrors(t *testing.T) {
	tests := []struct {
		name      string
		typ, code uint8
		want      unix.Errno // 0: the receive keeps waiting
	}{
		{"port unreachable", 3, 3, unix.ECONNREFUSED},
		{"administratively prohibited", 3, 13, unix.EHOSTUNREACH},
		{"host prohibited", 3, 10, unix.EHOSTUNREACH},
		{"network unknown", 3, 6, unix.ENETUNREACH},
		{"fragmentation needed", 3, 4, unix.EMSGSIZE},
		{"protocol unreachable", 3, 2, unix.ENOPROTOOPT},
		{"host unreachable (soft)", 3, 1, 0},
		{"time exceeded (soft)", 11, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, sock := newUDP(t)
			oneReply(t, callVia(t, h, systest.Connect(sock, at(peerIP, 53), 0), sock), 0)
			callVia(t, h, systest.RecvFrom(sock, 0, 0), sock) // parked
			h.Deliver("ip", systest.ICMPError(at(hostIP, 7), at(peerIP, 53), 0, tt.typ, tt.code, 0))
			out := h.SentTo("syscall")
			if tt.want == 0 {
				if len(out) != 0 {
					t.Fatalf("sent %v, want the receive still waiting", out)
				}
				return
			}
			oneReply(t, repliesFor(t, h, ipc.OpRecvFrom, 11, out), tt.want)
		})
	}
}

func TestUDPCloseAnswersParked(t *testing.T) {
	h, sock := newUDP(t)
	deliverVia(h, systest.RecvFrom(sock, 0, 0), sock) // parked, seq 11
	c := systest.Forwarded(systest.Close(sock), sock, h.Endpoint("app"))
	c.Seq = 12
	h.Deliver("syscall", c)
	out := h.SentTo("syscall")
	if len(out) != 2 || systest.Op(out[0]) != ipc.OpRecvFrom || out[0].Seq != 11 || systest.Errno(out[0]) != unix.EBADF ||
		systest.Op(out[1]) != ipc.OpClose || out[1].Seq != 12 || systest.Errno(out[1]) != 0 {
		t.Fatalf("replies %v, want EBADF to the parked receive, then the close's", out)
	}
}

// TestUDPDropsExportedWhenIdle: drops that come faster than the metrics'
// copy interval are exported before the loop sleeps, not left out until
// the next datagram (found by nmap -sU: four closed ports, one drop seen).
func TestUDPDropsExportedWhenIdle(t *testing.T) {
	h, _ := newUDP(t)
	for range 3 {
		datagramUp(t, h, 9, "nobody")
	}
	h.Idle()
	if got := h.Metric("newtsim_udp_dropped_total", "reason", "no-socket"); got != 3 {
		t.Fatalf("newtsim_udp_dropped_total{reason=no-socket} = %v once idle, want 3", got)
	}
}

// When an application dies, udp closes its sockets: the port is free
// again, and the receive it left waiting is forgotten.
func TestUDPClosesTheSocketsOfTheDead(t *testing.T) {
	h, sock := newUDP(t)
	deliverVia(h, systest.RecvFrom(sock, 0, 0), sock) // parks
	h.Kill("app")
	h.Restart("app")
	if out := h.Sent(); len(out) != 0 {
		t.Fatalf("sent %v, want nothing", out)
	}
	n := uint64(systest.Result(oneReply(t, callVia(t, h, systest.Open(unix.SOCK_DGRAM), 0), 0)))
	oneReply(t, callVia(t, h, systest.Bind(n, at(hostIP, 7)), n), 0)
	datagramUp(t, h, 7, "for the new socket")
	h.SentTo("ip") // the datagram's buffer, back
	deliverVia(h, systest.RecvFrom(n, 0, 0), n)
	if r := oneReply(t, repliesFor(t, h, ipc.OpRecvFrom, 11, h.SentTo("syscall")), 0); systest.Result(r) != int64(len("for the new socket")) {
		t.Fatalf("received %d bytes, want the datagram on the new socket", systest.Result(r))
	}
}

// armedPoll is a poll of fd for events that asks to be woken when nothing
// is ready (the message backend's poll that will sleep).
func armedPoll(fd uint64, events int16) ipc.Message {
	m := systest.Poll(fd, events)
	var c sockcall.Call
	c.Decode(&m)
	c.Arm = true
	c.Encode(&m)
	return m
}

// TestUDPArmedPollWakes: a poll that finds nothing ready and asks to be
// woken gets one Wake, through syscall, naming the application and saying
// the socket is readable, when a datagram arrives; one that did not ask
// gets none.
func TestUDPArmedPollWakes(t *testing.T) {
	for _, arm := range []bool{true, false} {
		t.Run(fmt.Sprintf("arm=%v", arm), func(t *testing.T) {
			h, sock := newUDP(t)
			call := systest.Poll(sock, unix.POLLIN)
			if arm {
				call = armedPoll(sock, unix.POLLIN)
			}
			r := oneReply(t, callVia(t, h, call, sock), 0)
			if got := systest.Result(r); got != 0 {
				t.Fatalf("poll found %#x ready, want nothing", got)
			}
			datagramUp(t, h, 7, "wake up")
			var wakes []sockcall.Wake
			for _, m := range h.Sent() {
				if m.Type == ipc.Wake && m.Dst == h.Endpoint("syscall") {
					var w sockcall.Wake
					w.Decode(&m)
					wakes = append(wakes, w)
				}
			}
			want := 0
			if arm {
				want = 1
			}
			if len(wakes) != want {
				t.Fatalf("%d Wakes to syscall, want %d", len(wakes), want)
			}
			if arm && wakes[0].Caller != h.Endpoint("app") {
				t.Errorf("Wake for %v, want the application %v", wakes[0].Caller, h.Endpoint("app"))
			}
			if arm && wakes[0].Events != unix.POLLIN {
				t.Errorf("Wake says %#x ready, want POLLIN (a datagram waits)", wakes[0].Events)
			}
			// Armed once, woken once: a second datagram wakes nobody.
			datagramUp(t, h, 7, "again")
			for _, m := range h.Sent() {
				if m.Type == ipc.Wake {
					t.Fatalf("a second Wake after one armed poll")
				}
			}
		})
	}
}

// TestUDPPoolQuota: an application that keeps the buffers its receives
// hand it is refused a receive once it holds MaxBuffersPerApp of udp's
// pool (a quarter of it): ENOBUFS, counted, the datagram left queued for
// when it gives one back. (The old code handed it buffers until the pool
// ran dry.)
func TestUDPPoolQuota(t *testing.T) {
	h, sock := newUDP(t)
	bound := maxBuffers(h.S.Pool)
	for i := range bound + 1 {
		datagramUp(t, h, 7, fmt.Sprint(i))
	}
	h.Sent() // ip's buffers back
	var kept []pool.Ref
	for i := range bound {
		r := oneReply(t, callVia(t, h, systest.RecvFrom(sock, 100, unix.MSG_DONTWAIT), sock), 0)
		if got := string(h.Bytes(systest.ReplyData(r))); got != fmt.Sprint(i) {
			t.Fatalf("receive %d got %q", i, got)
		}
		kept = append(kept, systest.ReplyData(r))
	}
	oneReply(t, callVia(t, h, systest.RecvFrom(sock, 100, unix.MSG_DONTWAIT), sock), unix.ENOBUFS)
	if got := quotaRefusals(h, "udp", quotaPool); got != 1 {
		t.Fatalf("pool refusals counted %v, want 1", got)
	}
	h.Deliver("app", systest.BufFree(kept[0]))
	r := oneReply(t, callVia(t, h, systest.RecvFrom(sock, 100, unix.MSG_DONTWAIT), sock), 0)
	if got, want := string(h.Bytes(systest.ReplyData(r))), fmt.Sprint(bound); got != want {
		t.Fatalf("receive after a buffer came back got %q, want %q", got, want)
	}
}

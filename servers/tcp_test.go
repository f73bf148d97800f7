package servers

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/proto"
	"github.com/newtsim/newtsim/servers/tcp"

	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// newTCP runs tcp with a socket opened through syscall; it returns the
// socket.
func newTCP(t *testing.T) (*systest.Harness, uint64) {
	h := newRole(t, "tcp", TCP)
	r := oneReply(t, callVia(t, h, systest.Open(unix.SOCK_STREAM), 0), 0)
	return h, uint64(systest.Result(r))
}

// segmentsDown splits what tcp sent into the TCP segments it handed ip,
// their addresses checked, and the rest.
func segmentsDown(t *testing.T, h *systest.Harness, sent []ipc.Message) (segs []*layers.TCP, rest []ipc.Message) {
	t.Helper()
	for _, m := range sent {
		if m.Type != ipc.Datagram || m.Dst != h.Endpoint("ip") {
			rest = append(rest, m)
			continue
		}
		d := systest.DatagramOf(m)
		src, dst, prot := d.Src, d.Dst, d.Proto
		if src != hostIP || dst != peerIP || prot != proto.TCP || systest.Ref(m).Pool() != uint8(hostSlots["tcp"]) {
			t.Fatalf("segment %v -> %v proto %d in pool %d, want tcp's from %v to %v", src, dst, prot,
				systest.Ref(m).Pool(), hostIP, peerIP)
		}
		seg := h.Bytes(systest.Ref(m))
		checker.Segment(t, prot, src, dst, seg, checker.TCP()) // well formed, checksum included
		segs = append(segs, decodeTCP(t, seg))
	}
	return segs, rest
}

// segmentUp has ip hand tcp a segment from the neighbour's port 80 to
// port to, checks that ip's buffer goes back once, and returns the
// segments tcp sent and its other messages.
func segmentUp(t *testing.T, h *systest.Harness, to uint16, hdr layers.TCP, data string) ([]*layers.TCP, []ipc.Message) {
	t.Helper()
	ref := h.Buffer("ip", tcpPacket(t, at(peerIP, 80), at(hostIP, to), hdr, []byte(data)))
	h.Deliver("ip", systest.Datagram(ref, 20))
	var sent []ipc.Message
	freed := 0
	for _, m := range h.Sent() {
		if m.Type == ipc.BufFree && systest.Ref(m) == ref && m.Dst == h.Endpoint("ip") {
			freed++
			continue
		}
		sent = append(sent, m)
	}
	if freed != 1 {
		t.Fatalf("ip's buffer went back %d times, want once", freed)
	}
	return segmentsDown(t, h, sent)
}

func TestTCPConnectAndReceive(t *testing.T) {
	h, sock := newTCP(t)
	// A blocking connect parks until the handshake is done.
	deliverVia(h, systest.Connect(sock, at(peerIP, 80), 0), sock)
	segs, rest := segmentsDown(t, h, h.Sent())
	if len(segs) != 1 || len(rest) != 0 || !segs[0].SYN || segs[0].ACK || segs[0].DstPort != 80 {
		t.Fatalf("sent %v and %v, want a SYN to port 80 and no reply yet", segs, rest)
	}
	if k := h.KernelSent(); len(k) != 1 || k[0].Type != ipc.SetAlarm || systest.AlarmAfter(k[0]) <= 0 {
		t.Errorf("sent the kernel %v, want an alarm for the retransmission", k)
	}
	syn := segs[0]
	port := uint16(syn.SrcPort)
	// The SYN-ACK answers the parked connect, and is ACKed.
	segs, rest = segmentUp(t, h, port, layers.TCP{SYN: true, ACK: true, Seq: 5000, Ack: syn.Seq + 1}, "")
	if len(segs) != 1 || !segs[0].ACK || segs[0].SYN || segs[0].Ack != 5001 {
		t.Fatalf("sent %v, want the handshake's ACK", segs)
	}
	oneReply(t, repliesFor(t, h, ipc.OpConnect, 11, rest), 0)

	// A blocking receive parks until data comes.
	if out := callVia(t, h, systest.RecvFrom(sock, 100, 0), sock); len(out) != 0 {
		t.Fatalf("a blocking receive was answered at once: %v", out)
	}
	segs, rest = segmentUp(t, h, port, layers.TCP{ACK: true, PSH: true, Seq: 5001, Ack: syn.Seq + 1}, "hello")
	r := oneReply(t, repliesFor(t, h, ipc.OpRecvFrom, 11, rest), 0)
	data := systest.ReplyData(r)
	if systest.Result(r) != 5 || data.Pool() != uint8(hostSlots["tcp"]) || !bytes.Equal(h.Bytes(data), []byte("hello")) {
		t.Fatalf("answered %v, want \"hello\" in a buffer of tcp's", r)
	}
	if len(segs) > 1 {
		t.Errorf("sent %d segments for one received, want at most an ACK", len(segs))
	}
	// Nothing more: a receive that must not wait gets EAGAIN.
	oneReply(t, callVia(t, h, systest.RecvFrom(sock, 100, unix.MSG_DONTWAIT), sock), unix.EAGAIN)
}

func TestTCPCalls(t *testing.T) {
	tests := []struct {
		name  string
		call  func(sock uint64) ipc.Message
		errno unix.Errno
	}{
		{"open a datagram socket", func(uint64) ipc.Message { return systest.Open(unix.SOCK_DGRAM) }, unix.EINVAL},
		{"listen", func(s uint64) ipc.Message { return systest.Listen(s, 8) }, 0},
		{"accept on no listener", func(s uint64) ipc.Message { return systest.Accept(s, unix.MSG_DONTWAIT) }, unix.EINVAL},
		{"receive unconnected", func(s uint64) ipc.Message { return systest.RecvFrom(s, 0, unix.MSG_DONTWAIT) }, unix.ENOTCONN},
		{"a socket never opened", func(s uint64) ipc.Message { return systest.Poll(s+100, unix.POLLIN) }, unix.EBADF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, sock := newTCP(t)
			c := tt.call(sock)
			oneReply(t, callVia(t, h, c, systest.Sock(c)), tt.errno)
		})
	}
}

func TestTCPDirectCallsOwnSocketsOnly(t *testing.T) {
	h, viaSyscall := newTCP(t)
	// app opens a socket of its own, calling tcp itself.
	h.Deliver("app", systest.Open(unix.SOCK_STREAM))
	out := h.SentTo("app")
	if len(out) != 1 || systest.Result(out[0]) < 0 {
		t.Fatalf("sent %v, want app's open answered", out)
	}
	own := uint64(systest.Result(out[0]))
	tests := []struct {
		name  string
		sock  uint64
		errno unix.Errno
	}{
		{"its own socket", own, 0},
		{"a socket opened through syscall", viaSyscall, unix.EBADF},
		{"no socket", own + 100, unix.EBADF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.Deliver("app", systest.Poll(tt.sock, unix.POLLOUT))
			out := h.SentTo("app")
			if len(out) != 1 || out[0].Type != ipc.SocketReply || systest.Errno(out[0]) != tt.errno {
				t.Fatalf("sent %v, want a reply with errno %d (%v)", out, tt.errno, tt.errno)
			}
		})
	}
}

// icmpFromIP has ip tell tcp of an ICMP error about a segment from local
// to remote with sequence number seq.
func icmpFromIP(h *systest.Harness, from string, local, remote netip.AddrPort, seq uint32, typ, code uint8) {
	var m ipc.Message
	packet.ICMPError{Local: local, Remote: remote, Seq: seq, Type: typ, Code: code}.Encode(&m)
	h.Deliver(from, m)
}

// TestTCPConnectRefusedByICMP: a connect whose SYN draws an ICMP port
// unreachable (a firewall's REJECT) fails at once with ECONNREFUSED, not
// after the SYN's retries; the same error from anyone but ip is ignored.
func TestTCPConnectRefusedByICMP(t *testing.T) {
	h, sock := newTCP(t)
	deliverVia(h, systest.Connect(sock, at(peerIP, 80), 0), sock)
	segs, _ := segmentsDown(t, h, h.Sent())
	if len(segs) != 1 || !segs[0].SYN {
		t.Fatalf("sent %v, want a SYN", segs)
	}
	local := at(hostIP, uint16(segs[0].SrcPort))
	icmpFromIP(h, "app", local, at(peerIP, 80), segs[0].Seq, 3, 3)
	if out := h.Sent(); len(out) != 0 {
		t.Fatalf("sent %v for an ICMP error from app, want nothing: only ip may say so", out)
	}
	icmpFromIP(h, "ip", local, at(peerIP, 80), segs[0].Seq, 3, 3)
	segs, rest := segmentsDown(t, h, h.Sent())
	if len(segs) != 0 {
		t.Errorf("sent %v, want no segment (no RST for an ICMP error)", segs)
	}
	oneReply(t, repliesFor(t, h, ipc.OpConnect, 11, rest), unix.ECONNREFUSED)
	if got := h.Metric("newtsim_tcp_icmp_errors_total"); got != 1 {
		t.Errorf("newtsim_tcp_icmp_errors_total = %v, want 1", got)
	}
}

// TestTCPExportsCaps: the engine's counters of its defences and caps are
// metrics; a listener with a full queue answers a SYN with a cookie.
func TestTCPExportsCaps(t *testing.T) {
	h, sock := newTCP(t)
	oneReply(t, callVia(t, h, systest.Bind(sock, at(hostIP, 80)), sock), 0)
	oneReply(t, callVia(t, h, systest.Listen(sock, 1), sock), 0)
	for port := uint16(1000); port < 1002; port++ { // the second finds the queue of half-open ones full
		ref := h.Buffer("ip", tcpPacket(t, at(peerIP, port), at(hostIP, 80), layers.TCP{SYN: true, Seq: 100}, nil))
		h.Deliver("ip", systest.Datagram(ref, 20))
		if segs, _ := segmentsDown(t, h, h.Sent()); len(segs) != 1 || !segs[0].SYN || !segs[0].ACK {
			t.Fatalf("sent %v, want a SYN-ACK", segs)
		}
	}
	time.Sleep(110 * time.Millisecond) // the loop publishes its counters at most every 100 ms
	h.Deliver("kernel", systest.Alarm())
	if got := h.Metric("newtsim_tcp_syn_cookies_sent_total"); got != 1 {
		t.Errorf("newtsim_tcp_syn_cookies_sent_total = %v, want 1", got)
	}
	for _, name := range []string{"newtsim_tcp_syn_cookies_validated_total", "newtsim_tcp_syn_cookies_failed_total",
		"newtsim_tcp_time_wait_overflows_total", "newtsim_tcp_orphan_resets_total", "newtsim_tcp_memory_bytes",
		"newtsim_tcp_spurious_rtos_total", "newtsim_tcp_dsacks_sent_total", "newtsim_tcp_dsacks_received_total",
		"newtsim_tcp_dsack_undos_total"} {
		if !hasMetric(t, h, name) {
			t.Errorf("no metric %s", name)
		}
	}
}

// hasMetric reports whether the server exports a metric of that name.
func hasMetric(t *testing.T, h *systest.Harness, name string) bool {
	t.Helper()
	mfs, err := h.S.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return true
		}
	}
	return false
}

// When an application dies, tcp closes its sockets: its listener's port
// is free for its next incarnation, its connection is closed (a FIN), and
// the call it left waiting is forgotten. The same holds for the sockets of
// a syscall server that died: no descriptor names them any more.
func TestTCPClosesTheSocketsOfTheDead(t *testing.T) {
	for _, dies := range []string{"app", "syscall"} {
		t.Run(dies, func(t *testing.T) {
			h, ln := newTCP(t)
			oneReply(t, callVia(t, h, systest.Bind(ln, at(hostIP, 80)), ln), 0)
			oneReply(t, callVia(t, h, systest.Listen(ln, 8), ln), 0)
			deliverVia(h, systest.Accept(ln, 0), ln) // parks
			if out := h.Sent(); len(out) != 0 {
				t.Fatalf("sent %v, want the accept parked", out)
			}
			c := uint64(systest.Result(oneReply(t, callVia(t, h, systest.Open(unix.SOCK_STREAM), 0), 0)))
			deliverVia(h, systest.Connect(c, at(peerIP, 80), unix.MSG_DONTWAIT), c)
			segs, _ := segmentsDown(t, h, h.Sent())
			syn := segs[0]
			segs, _ = segmentUp(t, h, uint16(syn.SrcPort), layers.TCP{SYN: true, ACK: true, Seq: 1000, Ack: syn.Seq + 1}, "")
			if len(segs) != 1 || !segs[0].ACK {
				t.Fatalf("sent %v, want the handshake's ACK", segs)
			}

			h.Kill(dies)
			segs, rest := segmentsDown(t, h, h.Sent())
			if len(rest) != 0 {
				t.Fatalf("sent %v, want no answer to the parked accept", rest)
			}
			if len(segs) != 1 || !segs[0].FIN {
				t.Fatalf("sent %v, want the connection's FIN", segs)
			}
			h.Restart(dies)
			n := uint64(systest.Result(oneReply(t, callVia(t, h, systest.Open(unix.SOCK_STREAM), 0), 0)))
			oneReply(t, callVia(t, h, systest.Bind(n, at(hostIP, 80)), n), 0) // the port is free
		})
	}
}

// connected opens a socket on h's tcp through syscall and connects it to
// the neighbour's port 80, whose SYN-ACK announces an MSS of 1460 and no
// other option; it returns the socket, its port and its ISS.
func connected(t *testing.T, h *systest.Harness) (sock uint64, port uint16, iss uint32) {
	t.Helper()
	sock = uint64(systest.Result(oneReply(t, callVia(t, h, systest.Open(unix.SOCK_STREAM), 0), 0)))
	deliverVia(h, systest.Connect(sock, at(peerIP, 80), 0), sock)
	segs, _ := segmentsDown(t, h, h.Sent())
	if len(segs) != 1 || !segs[0].SYN {
		t.Fatalf("sent %v, want a SYN", segs)
	}
	port, iss = uint16(segs[0].SrcPort), segs[0].Seq
	mss := layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}
	_, rest := segmentUp(t, h, port, layers.TCP{SYN: true, ACK: true, Seq: 5000, Ack: iss + 1, Window: 65535,
		Options: []layers.TCPOption{mss}}, "")
	oneReply(t, repliesFor(t, h, ipc.OpConnect, 11, rest), 0)
	return sock, port, iss
}

// sendData has the application send n bytes on sock and returns the
// segments tcp sent for them.
func sendData(t *testing.T, h *systest.Harness, sock uint64, n int) []*layers.TCP {
	t.Helper()
	data := h.Buffer("app", bytes.Repeat([]byte("x"), n))
	deliverVia(h, systest.SendTo(sock, netip.AddrPort{}, data, 0), sock)
	segs, _ := segmentsDown(t, h, h.Sent())
	return segs
}

// TestTCPPathMTUByICMP: a fragmentation needed from ip (a router with an
// MTU of 1000) makes the connection send again at once in segments that
// fit, and a connection opened later to the same host starts with them.
func TestTCPPathMTUByICMP(t *testing.T) {
	const routerMTU, fits = 1000, 1000 - 40
	h := newRole(t, "tcp", TCP)
	sock, port, iss := connected(t, h)
	segs := sendData(t, h, sock, 1400)
	if len(segs) != 1 || len(segs[0].Payload) != 1400 {
		t.Fatalf("sent %v, want one segment of 1400 bytes", segs)
	}
	h.Deliver("ip", systest.ICMPError(at(hostIP, port), at(peerIP, 80), iss+1, 3, 4, routerMTU))
	segs, _ = segmentsDown(t, h, h.Sent())
	if len(segs) != 2 || segs[0].Seq != iss+1 || len(segs[0].Payload) != fits || len(segs[1].Payload) != 1400-fits {
		t.Fatalf("sent %d segments again after the error, want the 1400 bytes in %d and %d", len(segs), fits, 1400-fits)
	}

	sock2, _, _ := connected(t, h)
	segs = sendData(t, h, sock2, 1400)
	if len(segs) == 0 || len(segs[0].Payload) != fits { // the rest waits for the ACK (Nagle)
		t.Fatalf("a new connection to the same host sent %v, want a first segment of %d bytes", segs, fits)
	}
}

// segmentFrom has ip hand tcp a segment from the neighbour's port from to the
// host's port 80, and returns the segments tcp sent and the rest.
func segmentFrom(t *testing.T, h *systest.Harness, from uint16, hdr layers.TCP) ([]*layers.TCP, []ipc.Message) {
	t.Helper()
	ref := h.Buffer("ip", tcpPacket(t, at(peerIP, from), at(hostIP, 80), hdr, nil))
	h.Deliver("ip", systest.Datagram(ref, 20))
	var sent []ipc.Message
	for _, m := range h.Sent() {
		if m.Type != ipc.BufFree || systest.Ref(m) != ref {
			sent = append(sent, m)
		}
	}
	return segmentsDown(t, h, sent)
}

// TestTCPSynCookieConnection: with the listener's queue of half-open
// connections full, a SYN is answered with a cookie and no state; the
// ACK that returns the cookie makes a connection the application
// accepts, from the right peer.
func TestTCPSynCookieConnection(t *testing.T) {
	h, sock := newTCP(t)
	oneReply(t, callVia(t, h, systest.Bind(sock, at(hostIP, 80)), sock), 0)
	oneReply(t, callVia(t, h, systest.Listen(sock, 1), sock), 0)
	var synack *layers.TCP
	for port := uint16(1000); port < 1002; port++ { // the second finds the queue full
		segs, _ := segmentFrom(t, h, port, layers.TCP{SYN: true, Seq: 100})
		if len(segs) != 1 || !segs[0].SYN || !segs[0].ACK {
			t.Fatalf("sent %v, want a SYN-ACK", segs)
		}
		synack = segs[0]
	}
	if segs, _ := segmentFrom(t, h, 1001, layers.TCP{ACK: true, Seq: 101, Ack: synack.Seq + 1}); len(segs) != 0 {
		t.Fatalf("sent %v for the cookie's ACK, want nothing", segs)
	}
	// Port 1001's SYN left no state: a connection from it is the cookie's.
	r := oneReply(t, callVia(t, h, systest.Accept(sock, 0), sock), 0)
	if systest.Result(r) <= 0 || systest.ReplyAddr(r) != at(peerIP, 1001) {
		t.Fatalf("accepted %d from %v, want a socket from %v", systest.Result(r), systest.ReplyAddr(r), at(peerIP, 1001))
	}
}

// TestTCPKeepAlive: with SO_KEEPALIVE and an idle time of a second set
// through the socket calls, a connection whose peer is silent that long is
// probed with an ACK below the window when the alarm comes. (The role
// reads the clock: the test waits the second out.)
func TestTCPKeepAlive(t *testing.T) {
	h := newRole(t, "tcp", TCP)
	sock, _, iss := connected(t, h)
	oneReply(t, callVia(t, h, systest.SetOpt(sock, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1), sock), 0)
	oneReply(t, callVia(t, h, systest.SetOpt(sock, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 1), sock), 0)
	h.Sent()
	h.Deliver("kernel", systest.Alarm())
	if segs, _ := segmentsDown(t, h, h.Sent()); len(segs) != 0 {
		t.Fatalf("sent %v before the idle time, want nothing", segs)
	}
	time.Sleep(1100 * time.Millisecond)
	h.Deliver("kernel", systest.Alarm())
	segs, _ := segmentsDown(t, h, h.Sent())
	if len(segs) != 1 || !segs[0].ACK || segs[0].SYN || segs[0].FIN || segs[0].RST || segs[0].Seq != iss || len(segs[0].Payload) != 0 {
		t.Fatalf("sent %v after a second of silence, want one keep-alive probe (an ACK at SND.UNA-1 = %d)", segs, iss)
	}
}

// TestTCPConnectionsExportedWhenIdle: connections that change state faster
// than the metrics' copy interval, while another connection's timer runs,
// are exported before the loop sleeps (found by TestHostilePeers: a
// connection reset after a burst showed in SYN-RECEIVED until the next
// timer, TIME-WAIT's, a minute later).
func TestTCPConnectionsExportedWhenIdle(t *testing.T) {
	h, waiting := newTCP(t)
	deliverVia(h, systest.Connect(waiting, at(peerIP, 81), 0), waiting) // SYN-SENT: a retransmission timer runs
	h.Sent()
	_, port, iss := connected(t, h)
	h.Idle()
	if got := h.Metric("newtsim_tcp_connections", "state", "ESTABLISHED"); got != 1 {
		t.Fatalf("ESTABLISHED connections %v once idle, want 1", got)
	}
	segmentUp(t, h, port, layers.TCP{RST: true, Seq: 5001, Ack: iss + 1}, "")
	h.Idle()
	for state, want := range map[string]float64{"ESTABLISHED": 0, "SYN-SENT": 1} {
		if got := h.Metric("newtsim_tcp_connections", "state", state); got != want {
			t.Errorf("%s connections %v once idle after the reset, want %v", state, got, want)
		}
	}
}

// TestTCPAlarmWaitsForQueuedSegments: an alarm taken before an ACK that
// came earlier (both waiting in tcp's channels, as after a while it did
// not run) does not retransmit what the ACK acknowledges: the timers run
// once the waiting messages are handled. Before, the alarm's retransmission
// timer fired first and the segment went again to a peer that had it (the
// HTTP matrix's retransmits; Linux's client counted them TCPDSACKOldSent).
func TestTCPAlarmWaitsForQueuedSegments(t *testing.T) {
	h := newRole(t, "tcp", TCP)
	sock, port, iss := connected(t, h)
	segs := sendData(t, h, sock, 1000)
	if len(segs) != 1 || len(segs[0].Payload) != 1000 {
		t.Fatalf("sent %v, want one segment of 1000 bytes", segs)
	}
	h.KernelSent()
	time.Sleep(tcp.DefaultMinRTO + 50*time.Millisecond) // the retransmission timer is due
	ref := h.Buffer("ip", tcpPacket(t, at(peerIP, 80), at(hostIP, port),
		layers.TCP{ACK: true, Seq: 5001, Ack: iss + 1 + 1000, Window: 65535}, nil))
	alarm, ack := systest.Alarm(), systest.Datagram(ref, 20)
	alarm.Src, alarm.Dst = h.Endpoint("kernel"), h.T.Self()
	ack.Src, ack.Dst = h.Endpoint("ip"), h.T.Self()
	h.T.Queue(alarm, ack)
	h.Deliver("ip")
	h.Idle()
	segs, _ = segmentsDown(t, h, h.Sent())
	if len(segs) != 0 {
		t.Fatalf("sent %v, want nothing: the ACK waiting behind the alarm acknowledged the data", segs)
	}
	if n := h.Metric("newtsim_tcp_retransmitted_segments_total"); n != 0 {
		t.Errorf("retransmitted segments %v, want 0", n)
	}
	if n := h.Metric("newtsim_tcp_rto_expiries_total"); n != 0 {
		t.Errorf("RTO expiries %v, want 0", n)
	}
}

// TestTCPPoolQuota: an application that keeps the buffers its receives
// hand it (never gives them back) is refused a receive once it holds
// MaxBuffersPerApp of tcp's pool (a quarter of it): ENOBUFS, counted, its data left queued
// for when it gives one back. tcp still sends segments, and another
// application's connection still gets its data. (The old code handed it
// buffers until the pool ran dry, and then tcp could send nothing
// and no receive of anyone's was answered.)
func TestTCPPoolQuota(t *testing.T) {
	h := newRole(t, "tcp", TCP)
	sock, port, iss := connected(t, h)
	data := bytes.Repeat([]byte("0123456789abcdef"), 16) // 256 bytes, one a receive
	segmentUp(t, h, port, layers.TCP{ACK: true, PSH: true, Seq: 5001, Ack: iss + 1, Window: 65535}, string(data))
	recvOne := func(errno unix.Errno) ipc.Message {
		t.Helper()
		deliverVia(h, systest.RecvFrom(sock, 1, unix.MSG_DONTWAIT), sock)
		_, rest := segmentsDown(t, h, h.Sent()) // a window update may go too
		return oneReply(t, repliesFor(t, h, ipc.OpRecvFrom, 11, rest), errno)
	}
	bound := maxBuffers(h.S.Pool) // MaxBuffersPerApp, for the harness's smaller pool
	if bound != systest.Buffers/4 {
		t.Fatalf("bound %d for a pool of %d", bound, systest.Buffers)
	}
	var kept []ipc.Message
	for i := range bound {
		r := recvOne(0)
		if b := h.Bytes(systest.ReplyData(r)); systest.Result(r) != 1 || len(b) != 1 || b[0] != data[i] {
			t.Fatalf("receive %d: %v, want byte %q", i, r, data[i])
		}
		kept = append(kept, r)
	}
	if n := h.S.HeldBy(h.Endpoint("app").Slot()); n != bound {
		t.Fatalf("app holds %d buffers, want %d", n, bound)
	}
	recvOne(unix.ENOBUFS)
	if got := quotaRefusals(h, "tcp", quotaPool); got != 1 {
		t.Fatalf("pool refusals counted %v, want 1", got)
	}

	// tcp still sends: app's own data, and the handshake of another
	// application's connection, which gets its data.
	if segs := sendData(t, h, sock, 100); len(segs) != 1 || len(segs[0].Payload) != 100 {
		t.Fatalf("sent %v for app's 100 bytes, want one segment", segs)
	}
	h.Deliver("syscall", via(h, "other", systest.Open(unix.SOCK_STREAM), 0))
	out := h.SentTo("syscall")
	if len(out) != 1 || systest.Result(out[0]) < 0 {
		t.Fatalf("other's open: %v", out)
	}
	osock := uint64(systest.Result(out[0]))
	h.Deliver("syscall", via(h, "other", systest.Connect(0, at(peerIP, 80), 0), osock))
	segs, _ := segmentsDown(t, h, h.Sent())
	if len(segs) != 1 || !segs[0].SYN {
		t.Fatalf("sent %v for other's connect, want a SYN", segs)
	}
	oport, oiss := uint16(segs[0].SrcPort), segs[0].Seq
	segmentUp(t, h, oport, layers.TCP{SYN: true, ACK: true, Seq: 9000, Ack: oiss + 1, Window: 65535}, "")
	segmentUp(t, h, oport, layers.TCP{ACK: true, PSH: true, Seq: 9001, Ack: oiss + 1, Window: 65535}, "hello")
	h.Sent()
	h.Deliver("syscall", via(h, "other", systest.RecvFrom(0, 100, unix.MSG_DONTWAIT), osock))
	_, out = segmentsDown(t, h, h.Sent())
	if len(out) != 1 || systest.Result(out[0]) != 5 || !bytes.Equal(h.Bytes(systest.ReplyData(out[0])), []byte("hello")) {
		t.Fatalf("other's receive: %v, want \"hello\"", out)
	}

	// Once app gives a buffer back, its next receive gets the next byte:
	// the refused one took none.
	h.Deliver("app", systest.BufFree(systest.ReplyData(kept[0])))
	r := recvOne(0)
	if b := h.Bytes(systest.ReplyData(r)); len(b) != 1 || b[0] != data[bound] {
		t.Fatalf("receive after a buffer came back: %v, want byte %q", r, data[bound])
	}
}

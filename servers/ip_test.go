package servers

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/proto"

	"github.com/google/gopacket"

	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// newIP runs ip, and has it learn the neighbour's MAC address from an ARP
// request (whose reply it sends and the test drops).
func newIP(t *testing.T) *systest.Harness {
	h := newRole(t, "ip", IP)
	h.Deliver("pf", systest.FrameRx(h.Buffer("nic", arpFrame(t, layers.ARPRequest, peerMAC, peerIP, [6]byte{}, hostIP))))
	h.Sent()
	return h
}

// frameUp has ip receive a frame from the device, and checks that the
// device's buffer goes back down; it returns what else ip sent.
func frameUp(t *testing.T, h *systest.Harness, frame []byte) []ipc.Message {
	t.Helper()
	ref := h.Buffer("nic", frame)
	h.Deliver("pf", systest.FrameRx(ref))
	var rest []ipc.Message
	freed := 0
	for _, m := range h.Sent() {
		if m.Type == ipc.BufFree && systest.Ref(m) == ref {
			if m.Dst != h.Endpoint("pf") {
				t.Errorf("the frame's buffer went to %s, want pf (the way to nic)", h.Name(m.Dst))
			}
			freed++
			continue
		}
		rest = append(rest, m)
	}
	if freed != 1 {
		t.Errorf("the frame's buffer was given back %d times, want once", freed)
	}
	return rest
}

// framesDown checks that ms are frames down to pf in ip's pool and
// returns them.
func framesDown(t *testing.T, h *systest.Harness, ms []ipc.Message) [][]byte {
	t.Helper()
	var frames [][]byte
	for _, m := range ms {
		ref := systest.Ref(m)
		if m.Type != ipc.FrameTx || m.Dst != h.Endpoint("pf") || ref.Pool() != uint8(hostSlots["ip"]) {
			t.Fatalf("sent %v, want frames down to pf in ip's buffers", m)
		}
		frames = append(frames, h.Bytes(ref))
	}
	return frames
}

func TestIPAnswersARP(t *testing.T) {
	h := newRole(t, "ip", IP)
	frames := framesDown(t, h, frameUp(t, h, arpFrame(t, layers.ARPRequest, peerMAC, peerIP, [6]byte{}, hostIP)))
	if len(frames) != 1 {
		t.Fatalf("%d frames down, want an ARP reply", len(frames))
	}
	checker.Frame(t, frames[0], checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeARP),
		checker.ARP(layers.ARPReply, hostMAC, hostIP, peerMAC, peerIP))
	// A request for another host draws nothing.
	if out := frameUp(t, h, arpFrame(t, layers.ARPRequest, peerMAC, peerIP, [6]byte{}, hostIP.Next())); len(out) != 0 {
		t.Fatalf("sent %v for a request for another host", out)
	}
}

func TestIPAnswersEcho(t *testing.T) {
	h := newIP(t)
	frames := framesDown(t, h, frameUp(t, h, echoFrame(t, 7, 3, []byte("ping"))))
	if len(frames) != 1 {
		t.Fatalf("%d frames down, want an echo reply", len(frames))
	}
	checker.Frame(t, frames[0], checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
		checker.InIPv4(checker.Addrs(hostIP, peerIP),
			checker.ICMP(layers.ICMPv4TypeEchoReply, 0, checker.Echo(7, 3, []byte("ping")))))
}

func TestIPHandsUp(t *testing.T) {
	tests := []struct {
		name    string
		packet  func(t *testing.T) []byte
		to      string
		payload int // the transport segment's length
	}{
		{"udp", func(t *testing.T) []byte {
			return udpPacket(t, at(peerIP, 1000), at(hostIP, 7), []byte("hello"))
		}, "udp", 8 + 5},
		{"tcp", func(t *testing.T) []byte {
			return tcpPacket(t, at(peerIP, 1000), at(hostIP, 80), layers.TCP{SYN: true, Seq: 100}, nil)
		}, "tcp", 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newIP(t)
			pkt := tt.packet(t)
			out := frameUp(t, h, withEther(t, pkt))
			if len(out) != 1 || out[0].Type != ipc.Datagram || out[0].Dst != h.Endpoint(tt.to) {
				t.Fatalf("sent %v, want a datagram to %s", out, tt.to)
			}
			ref := systest.Ref(out[0])
			if ref.Pool() != uint8(hostSlots["ip"]) {
				t.Errorf("the datagram is in pool %d, want ip's own", ref.Pool())
			}
			b := h.Bytes(ref)
			if !bytes.Equal(b, pkt) || systest.DatagramOf(out[0]).Off != len(pkt)-tt.payload {
				t.Errorf("handed up %x at offset %d, want the packet %x with its segment at %d",
					b, systest.DatagramOf(out[0]).Off, pkt, len(pkt)-tt.payload)
			}
		})
	}
}

func TestIPRefusesBadBuffer(t *testing.T) {
	h := newIP(t)
	nic := uint8(hostSlots["nic"])
	tests := []struct {
		name string
		from string
		msg  ipc.Message
		typ  string
	}{
		{"a frame out of bounds", "pf", systest.FrameRx(pool.MakeRef(nic, 1<<30, 60)), "frame-rx"},
		{"a frame spanning buffers", "pf", systest.FrameRx(pool.MakeRef(nic, pool.DefaultBufSize-10, 60)), "frame-rx"},
		{"a frame of no pool", "pf", systest.FrameRx(pool.MakeRef(60, 0, 60)), "frame-rx"},
		{"a datagram empty", "udp", systest.Segment(pool.MakeRef(uint8(hostSlots["udp"]), 0, 0), hostIP, peerIP, proto.UDP), "datagram"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.Metric("newtsim_server_bad_buffer_refs_total", "type", tt.typ)
			h.Deliver(tt.from, tt.msg)
			if out := h.Sent(); len(out) != 0 {
				t.Errorf("sent %v, want nothing", out)
			}
			if got := h.Metric("newtsim_server_bad_buffer_refs_total", "type", tt.typ); got != before+1 {
				t.Errorf("bad refs of type %s went from %v to %v, want one more", tt.typ, before, got)
			}
		})
	}
}

func TestIPSendsDown(t *testing.T) {
	h := newRole(t, "ip", IP) // the neighbour unknown: ip asks first
	seg := udpSegment(t, at(hostIP, 7), at(peerIP, 1000), []byte("reply"))
	ref := h.Buffer("udp", seg)
	h.Deliver("udp", systest.Segment(ref, hostIP, peerIP, proto.UDP))
	out := h.Sent()
	var frames []ipc.Message
	freed := 0
	for _, m := range out {
		if m.Type == ipc.BufFree {
			if systest.Ref(m) != ref || m.Dst != h.Endpoint("udp") {
				t.Errorf("gave back %v to %s, want udp's buffer to udp", systest.Ref(m), h.Name(m.Dst))
			}
			freed++
			continue
		}
		frames = append(frames, m)
	}
	if len(frames) != 1 || freed != 1 {
		t.Fatalf("sent %v, want an ARP request and udp's buffer given back once", out)
	}
	checker.Frame(t, framesDown(t, h, frames)[0], checker.Ethernet(hostMAC, broadcast, layers.EthernetTypeARP),
		checker.ARP(layers.ARPRequest, hostMAC, hostIP, [6]byte{}, peerIP))
	if k := h.KernelSent(); len(k) == 0 || k[len(k)-1].Type != ipc.SetAlarm || systest.AlarmAfter(k[len(k)-1]) <= 0 {
		t.Errorf("sent the kernel %v, want an alarm for the ARP retry", k)
	}
	// The answer comes: the datagram goes out, to the neighbour's MAC.
	frames2 := framesDown(t, h, frameUp(t, h, arpFrame(t, layers.ARPReply, peerMAC, peerIP, hostMAC, hostIP)))
	if len(frames2) != 1 {
		t.Fatalf("%d frames down after the ARP reply, want the datagram", len(frames2))
	}
	checker.Frame(t, frames2[0], checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
		checker.InIPv4(checker.Addrs(hostIP, peerIP), checker.Protocol(proto.UDP),
			checker.UDP(checker.SrcPort(7), checker.DstPort(1000), checker.Payload([]byte("reply")))))
}

func TestIPPortUnreachable(t *testing.T) {
	h := newIP(t)
	pkt := udpPacket(t, at(peerIP, 1000), at(hostIP, 9), []byte("nobody"))
	out := frameUp(t, h, withEther(t, pkt))
	if len(out) != 1 {
		t.Fatalf("sent %v, want the datagram to udp", out)
	}
	// udp has no socket for it and gives it back; ip answers with ICMP
	// and frees its buffer.
	inUse := h.InUse("ip")
	h.Deliver("udp", systest.Unreachable(systest.Ref(out[0])))
	frames := framesDown(t, h, h.Sent())
	if len(frames) != 1 {
		t.Fatalf("%d frames down, want an ICMP error", len(frames))
	}
	checker.Frame(t, frames[0], checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
		checker.InIPv4(checker.Addrs(hostIP, peerIP),
			checker.ICMP(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort, checker.Quotes(pkt[:28]))))
	if n := h.InUse("ip"); n != inUse {
		t.Errorf("ip has %d buffers out, want %d: the datagram's freed, the ICMP frame's taken", n, inUse)
	}
	// The same error coming in is for udp, with the datagram's ends.
	quoted := udpPacket(t, at(hostIP, 5000), at(peerIP, 53), []byte("query"))
	icmpIn := serialize(t, ether(peerMAC, hostMAC, layers.EthernetTypeIPv4), ipv4(peerIP, hostIP, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort)},
		gopacket.Payload(quoted[:28]))
	out = frameUp(t, h, icmpIn)
	if len(out) != 1 || out[0].Type != ipc.ICMPError || out[0].Dst != h.Endpoint("udp") {
		t.Fatalf("sent %v, want an ICMP error to udp", out)
	}
	if e := systest.ICMPErrorOf(out[0]); e.Local != at(hostIP, 5000) || e.Remote != at(peerIP, 53) || e.Type != 3 || e.Code != 3 {
		t.Errorf("ICMP error %+v, want port unreachable for %v -> %v", e, at(hostIP, 5000), at(peerIP, 53))
	}
}

func TestIPCountsOtherICMP(t *testing.T) {
	h := newIP(t)
	// An error about one of our pings: for no transport, counted.
	quoted := serialize(t, ipv4(hostIP, peerIP, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1},
		gopacket.Payload("ping"))
	frame := serialize(t, ether(peerMAC, hostMAC, layers.EthernetTypeIPv4), ipv4(peerIP, hostIP, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeTimeExceeded, 0)},
		gopacket.Payload(quoted[:28]))
	if out := frameUp(t, h, frame); len(out) != 0 {
		t.Fatalf("sent %v, want nothing", out)
	}
	if got := h.Metric("newtsim_ip_undelivered_packets_total", "proto", "1"); got != 1 {
		t.Errorf("undelivered ICMP = %v, want 1", got)
	}
}

// TestIPPassesUDPErrorsOn: every ICMP error about one of our UDP
// datagrams goes to udp, which decides what a socket hears of it.
func TestIPPassesUDPErrorsOn(t *testing.T) {
	quoted := udpPacket(t, at(hostIP, 5000), at(peerIP, 53), []byte("query"))
	for _, tt := range []struct {
		name      string
		typ, code uint8
		mtu       uint16
	}{
		{"host unreachable", 3, 1, 0},
		{"administratively prohibited", 3, 13, 0},
		{"fragmentation needed", 3, 4, 1280},
		{"time exceeded", 11, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newIP(t)
			frame := serialize(t, ether(peerMAC, hostMAC, layers.EthernetTypeIPv4), ipv4(peerIP, hostIP, layers.IPProtocolICMPv4),
				&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(tt.typ, tt.code), Seq: tt.mtu},
				gopacket.Payload(quoted[:28]))
			out := frameUp(t, h, frame)
			if len(out) != 1 || out[0].Type != ipc.ICMPError || out[0].Dst != h.Endpoint("udp") {
				t.Fatalf("sent %v, want an ICMP error to udp", out)
			}
			want := packet.ICMPError{Local: at(hostIP, 5000), Remote: at(peerIP, 53),
				Type: tt.typ, Code: tt.code, MTU: tt.mtu}
			if e := systest.ICMPErrorOf(out[0]); e != want {
				t.Errorf("passed on %+v, want %+v", e, want)
			}
		})
	}
}

// TestIPPassesTCPErrorsOn: an ICMP error about one of our TCP segments
// goes to tcp, with the segment's ends and sequence number, the error's
// type and code, and a fragmentation needed's MTU.
func TestIPPassesTCPErrorsOn(t *testing.T) {
	quoted := tcpPacket(t, at(hostIP, 49152), at(peerIP, 80), layers.TCP{SYN: true, Seq: 0xfedcba98}, nil)
	for _, tt := range []struct {
		name      string
		typ, code uint8
		mtu       uint16
	}{
		{"port unreachable", 3, 3, 0},
		{"administratively prohibited", 3, 13, 0},
		{"fragmentation needed", 3, 4, 1280},
		{"time exceeded", 11, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newIP(t)
			frame := serialize(t, ether(peerMAC, hostMAC, layers.EthernetTypeIPv4), ipv4(peerIP, hostIP, layers.IPProtocolICMPv4),
				&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(tt.typ, tt.code), Seq: tt.mtu}, // the MTU's field (RFC 1191)
				gopacket.Payload(quoted[:28]))
			out := frameUp(t, h, frame)
			if len(out) != 1 || out[0].Type != ipc.ICMPError || out[0].Dst != h.Endpoint("tcp") {
				t.Fatalf("sent %v, want an ICMP error to tcp", out)
			}
			var e packet.ICMPError
			e.Decode(&out[0])
			want := packet.ICMPError{Local: at(hostIP, 49152), Remote: at(peerIP, 80), Seq: 0xfedcba98,
				Type: tt.typ, Code: tt.code, MTU: tt.mtu}
			if e != want {
				t.Errorf("passed on %+v, want %+v", e, want)
			}
		})
	}
}

// TestIPWaitsForBuffer checks that ip, its pool all handed out, waits for
// a buffer to come back instead of dropping the frame it builds (flow
// control on a path that loses nothing), and handles what arrived while
// it waited afterwards, in order.
func TestIPWaitsForBuffer(t *testing.T) {
	h := newIP(t)
	p := h.Pool("ip")
	var held []pool.Ref
	for {
		ref, _, err := p.Alloc()
		if err != nil {
			break
		}
		held = append(held, ref) // frames down the path, not back yet
	}
	for _, ref := range held { // handed to pf, which may give them back
		m := systest.FrameTx(ref)
		if err := h.S.SendTo("pf", &m); err != nil {
			t.Fatal(err)
		}
	}
	h.Sent()
	seg := udpSegment(t, at(hostIP, 7), at(peerIP, 1000), []byte("reply"))
	ref := h.Buffer("udp", seg)
	from := func(name string, m ipc.Message) ipc.Message {
		m.Src, m.Dst = h.Endpoint(name), h.Endpoint("ip")
		return m
	}
	// The segment to send; then, while ip waits, a ping from pf and one
	// of ip's buffers coming back.
	h.T.Queue(from("udp", systest.Segment(ref, hostIP, peerIP, proto.UDP)),
		from("pf", systest.Ping(7)), from("pf", systest.BufFree(held[0])))
	h.Deliver("pf")
	if n := h.Metric("newtsim_ip_no_buffer_total"); n != 0 {
		t.Errorf("no_buffer_total %v, want 0: ip dropped the frame instead of waiting", n)
	}
	var types []ipc.Type
	var frame []byte
	for _, m := range h.Sent() {
		types = append(types, m.Type)
		if m.Type == ipc.FrameTx {
			frame = h.Bytes(systest.Ref(m))
		}
	}
	want := []ipc.Type{ipc.FrameTx, ipc.BufFree, ipc.Pong} // the frame, udp's buffer back, then the ping's answer
	if !slices.Equal(types, want) {
		t.Fatalf("sent %v, want %v", types, want)
	}
	checker.Frame(t, frame, checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
		checker.InIPv4(checker.Addrs(hostIP, peerIP), checker.Protocol(proto.UDP),
			checker.UDP(checker.SrcPort(7), checker.DstPort(1000), checker.Payload([]byte("reply")))))
	if n := h.Metric("newtsim_server_buffer_waits_total"); n != 1 {
		t.Errorf("buffer_waits_total %v, want 1", n)
	}
}

// TestIPBufferWaitEnds checks that a wait for a buffer that never comes
// back ends: the frame is dropped and counted, and ip goes on.
func TestIPBufferWaitEnds(t *testing.T) {
	h := newIP(t)
	p := h.Pool("ip")
	for {
		if _, _, err := p.Alloc(); err != nil {
			break
		}
	}
	seg := udpSegment(t, at(hostIP, 7), at(peerIP, 1000), []byte("reply"))
	h.Deliver("udp", systest.Segment(h.Buffer("udp", seg), hostIP, peerIP, proto.UDP), systest.Ping(1))
	if n := h.Metric("newtsim_ip_no_buffer_total"); n != 1 {
		t.Errorf("no_buffer_total %v, want 1", n)
	}
	if n := h.Metric("newtsim_server_buffer_wait_timeouts_total"); n != 1 {
		t.Errorf("buffer_wait_timeouts_total %v, want 1", n)
	}
	var types []ipc.Type
	for _, m := range h.Sent() {
		types = append(types, m.Type)
	}
	if want := []ipc.Type{ipc.BufFree, ipc.Pong}; !slices.Equal(types, want) {
		t.Errorf("sent %v, want %v (udp's buffer back, the ping answered)", types, want)
	}
}

// TestIPProtocolUnreachable: a datagram of a protocol no transport handles
// draws an ICMP protocol unreachable quoting it (RFC 1122 3.2.2.1), and
// reaches no transport.
func TestIPProtocolUnreachable(t *testing.T) {
	h := newIP(t)
	pkt := serialize(t, ipv4(peerIP, hostIP, layers.IPProtocol(47)), gopacket.Payload("an unknown protocol"))
	frames := framesDown(t, h, frameUp(t, h, withEther(t, pkt)))
	if len(frames) != 1 {
		t.Fatalf("%d frames down, want the ICMP error", len(frames))
	}
	checker.Frame(t, frames[0], checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
		checker.InIPv4(checker.Addrs(hostIP, peerIP),
			checker.ICMP(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeProtocol, checker.Quotes(pkt[:28]))))
	h.Idle() // the drop counters are copied before the loop sleeps
	if got := h.Metric("newtsim_ip_dropped_total", "reason", "unknown-protocol"); got != 1 {
		t.Errorf("dropped for an unknown protocol: %v, want 1", got)
	}
}

// TestIPFragmentsLargeDatagrams: a datagram from udp larger than the
// link's MTU leaves in fragments that fit (RFC 791), which put together
// give the datagram back; udp's buffer goes back once.
func TestIPFragmentsLargeDatagrams(t *testing.T) {
	h := newIP(t)
	payload := bytes.Repeat([]byte("0123456789"), 190)
	seg := udpSegment(t, at(hostIP, 7), at(peerIP, 1000), payload)
	ref := h.Buffer("udp", seg)
	h.Deliver("udp", systest.Segment(ref, hostIP, peerIP, proto.UDP))
	var sent []ipc.Message
	for _, m := range h.Sent() {
		if m.Type == ipc.BufFree && systest.Ref(m) == ref {
			continue
		}
		sent = append(sent, m)
	}
	frames := framesDown(t, h, sent)
	if len(frames) != 2 {
		t.Fatalf("%d frames down for a %d-byte segment, want 2 fragments", len(frames), len(seg))
	}
	var whole []byte
	for i, f := range frames {
		if len(f) > 14+1500 {
			t.Errorf("fragment %d is %d bytes, more than the link's MTU", i, len(f)-14)
		}
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		ip4, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip4 == nil {
			t.Fatalf("fragment %d is no IPv4 packet", i)
		}
		more := ip4.Flags&layers.IPv4MoreFragments != 0
		if more != (i == 0) || int(ip4.FragOffset)*8 != len(whole) {
			t.Fatalf("fragment %d: offset %d, more %v; want offset %d, more only on the first", i, ip4.FragOffset*8, more, len(whole))
		}
		whole = append(whole, ip4.Payload...)
	}
	if !bytes.Equal(whole, seg) {
		t.Error("the fragments put together are not the datagram")
	}
}

// TestIPRateLimitsICMPErrors: a burst of datagrams that each earn an
// error draws at most the per-destination burst of errors (Linux's
// icmp_ratelimit, 6), and the rest are counted.
func TestIPRateLimitsICMPErrors(t *testing.T) {
	h := newIP(t)
	const n = 20
	errs := 0
	start := time.Now() // the role reads the clock: a token comes back each second
	for i := range n {
		pkt := serialize(t, ipv4(peerIP, hostIP, layers.IPProtocol(47)), gopacket.Payload(fmt.Sprintf("unknown %d", i)))
		errs += len(framesDown(t, h, frameUp(t, h, withEther(t, pkt))))
	}
	if most := 6 + int(time.Since(start)/time.Second); errs == 0 || errs > most {
		t.Errorf("%d ICMP errors for %d datagrams at once, want 1 to %d (the burst)", errs, n, most)
	}
	h.Idle()
	if got := h.Metric("newtsim_ip_dropped_total", "reason", "icmp-ratelimit-host"); int(got) != n-errs {
		t.Errorf("rate-limited errors counted: %v, want %d", got, n-errs)
	}
}

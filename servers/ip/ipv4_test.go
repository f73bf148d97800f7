package ip_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*ip.Config)
		ok   bool
	}{
		{"valid", func(*ip.Config) {}, true},
		{"no gateway", func(c *ip.Config) { c.Gateway = netip.Addr{} }, true},
		{"slash 31", func(c *ip.Config) { c.Addr = netip.MustParsePrefix("198.18.0.0/31"); c.Gateway = netip.Addr{} }, true},
		{"slash 32", func(c *ip.Config) { c.Addr = netip.MustParsePrefix("198.18.0.7/32"); c.Gateway = netip.Addr{} }, true},
		{"zero MAC", func(c *ip.Config) { c.MAC = [6]byte{} }, false},
		{"multicast MAC", func(c *ip.Config) { c.MAC = [6]byte{1, 0, 0x5e, 0, 0, 1} }, false},
		{"no address", func(c *ip.Config) { c.Addr = netip.Prefix{} }, false},
		{"IPv6 address", func(c *ip.Config) { c.Addr = netip.MustParsePrefix("2001:db8::1/64") }, false},
		{"slash 7", func(c *ip.Config) { c.Addr = netip.MustParsePrefix("10.0.0.1/7"); c.Gateway = netip.Addr{} }, false},
		{"network address", func(c *ip.Config) { c.Addr = netip.MustParsePrefix("198.18.0.0/24") }, false},
		{"broadcast address", func(c *ip.Config) { c.Addr = netip.MustParsePrefix("198.18.0.255/24") }, false},
		{"loopback address", func(c *ip.Config) { c.Addr = netip.MustParsePrefix("127.0.0.2/8"); c.Gateway = netip.Addr{} }, false},
		{"multicast address", func(c *ip.Config) { c.Addr = netip.MustParsePrefix("224.0.0.5/24"); c.Gateway = netip.Addr{} }, false},
		{"gateway off-link", func(c *ip.Config) { c.Gateway = remote }, false},
		{"gateway is host", func(c *ip.Config) { c.Gateway = host }, false},
		{"gateway is broadcast", func(c *ip.Config) { c.Gateway = subnetBC }, false},
		{"gateway IPv6", func(c *ip.Config) { c.Gateway = netip.MustParseAddr("fe80::1") }, false},
		{"negative hold", func(c *ip.Config) { c.ARPHold = -1 }, false},
		{"negative timeout", func(c *ip.Config) { c.ReasmTimeout = -time.Second }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config()
			tt.mod(&c)
			_, err := ip.New(c)
			if (err == nil) != tt.ok || err != nil && !errors.Is(err, ip.ErrConfig) {
				t.Fatalf("New(%+v) = %v, want ok %v", c, err, tt.ok)
			}
		})
	}
}

func TestDeliver(t *testing.T) {
	data := []byte("hello")
	tests := []struct {
		name   string
		dstMAC [6]byte
		dst    netip.Addr
	}{
		{"unicast", hostMAC, host},
		{"subnet broadcast", bcast, subnetBC},
		{"limited broadcast", bcast, allBC},
		{"unicast in a broadcast frame", bcast, host},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			pkt := udpPacket(t, peer, tt.dst, 5000, 53, data)
			frame := inFrame(peerMAC, tt.dstMAC, pkt) // padded to 60 bytes
			orig := bytes.Clone(frame)
			s.FrameIn(t0, frame)
			ev := only(t, s.Out(), ip.Deliver)
			if !bytes.Equal(frame, orig) {
				t.Error("FrameIn changed the frame")
			}
			if ev.Proto != 17 || ev.Src != peer || ev.Dst != tt.dst {
				t.Errorf("Deliver proto %d %v -> %v, want 17 %v -> %v", ev.Proto, ev.Src, ev.Dst, peer, tt.dst)
			}
			if !bytes.Equal(ev.Packet, pkt) || !bytes.Equal(ev.Payload, pkt[20:]) {
				t.Errorf("Deliver packet\n% x\npayload\n% x\nwant\n% x", ev.Packet, ev.Payload, pkt)
			}
			if st := s.Stats(); st.FramesIn != 1 || st.PacketsDelivered != 1 {
				t.Errorf("Stats() = %+v", st)
			}
			checkDrops(t, s, nil)
		})
	}
}

func TestDeliverSkipsOptions(t *testing.T) {
	s := newStack(t)
	h := ipv4Hdr(peer, host, layers.IPProtocolUDP)
	h.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}} // NOPs, end
	seg := []byte{0x13, 0x88, 0, 53, 0, 9, 0, 0, 'x'}
	pkt := serialize(t, h, gopacket.Payload(seg))
	if pkt[0]&0xf != 6 {
		t.Fatalf("IHL %d, want 6", pkt[0]&0xf)
	}
	s.FrameIn(t0, inFrame(peerMAC, hostMAC, pkt))
	ev := only(t, s.Out(), ip.Deliver)
	if !bytes.Equal(ev.Payload, seg) || len(ev.Packet) != 24+len(seg) {
		t.Errorf("payload % x, packet of %d bytes; want % x in %d", ev.Payload, len(ev.Packet), seg, 24+len(seg))
	}
}

// frameCase is a frame and what the Stack must do with it.
type frameCase struct {
	name   string
	frame  func(t testing.TB) []byte
	reason string // the drop counted; "" for none
}

// mutate returns a frame func: a UDP datagram from the peer, changed by f.
func mutate(f func(b []byte) []byte) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return f(udpFrame(t, []byte("payload"))) }
}

// withSrc returns a UDP frame from src to the host.
func withAddrs(src, dst netip.Addr) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return inFrame(peerMAC, hostMAC, udpPacket(t, src, dst, 1, 2, nil)) }
}

// malformedCases are frames the Stack must drop, each with its reason.
var malformedCases = []frameCase{
	{"empty", func(testing.TB) []byte { return nil }, "short-frame"},
	{"13 bytes", func(testing.TB) []byte { return make([]byte, 13) }, "short-frame"},
	{"other MAC", mutate(func(b []byte) []byte { b[5] = 9; return b }), "not-our-mac"},
	{"multicast MAC", mutate(func(b []byte) []byte { copy(b, []byte{1, 0, 0x5e, 0, 0, 1}); return b }), "not-our-mac"},
	{"group source MAC", mutate(func(b []byte) []byte { b[6] |= 1; return b }), "bad-src-mac"},
	{"IPv6", mutate(func(b []byte) []byte { b[12], b[13] = 0x86, 0xdd; return b }), "bad-ethertype"},
	{"802.3 length", mutate(func(b []byte) []byte { b[12], b[13] = 0, 46; return b }), "bad-ethertype"},
	{"VLAN tag", mutate(func(b []byte) []byte { b[12], b[13] = 0x81, 0; return b }), "bad-ethertype"},

	{"ARP short", func(t testing.TB) []byte { return arpRequestFrom(t, peerMAC, peer, host)[:14+27] }, "bad-arp"},
	{"ARP hardware type", arpMut(func(a []byte) { a[1] = 6 }), "bad-arp"},
	{"ARP protocol type", arpMut(func(a []byte) { a[2] = 0x86 }), "bad-arp"},
	{"ARP hardware size", arpMut(func(a []byte) { a[4] = 8 }), "bad-arp"},
	{"ARP protocol size", arpMut(func(a []byte) { a[5] = 16 }), "bad-arp"},
	{"ARP operation 3", arpMut(func(a []byte) { a[7] = 3 }), "bad-arp"},
	{"ARP group sender", arpMut(func(a []byte) { a[8] = 1 }), "bad-arp"},
	{"ARP zero sender MAC", arpMut(func(a []byte) { clear(a[8:14]) }), "bad-arp"},
	{"ARP broadcast sender", arpMut(func(a []byte) { copy(a[14:], []byte{198, 18, 0, 255}) }), "bad-arp"},
	{"ARP multicast sender", arpMut(func(a []byte) { copy(a[14:], []byte{224, 0, 0, 1}) }), "bad-arp"},
	{"ARP loopback sender", arpMut(func(a []byte) { copy(a[14:], []byte{127, 0, 0, 1}) }), "bad-arp"},
	{"ARP reply without sender address", func(t testing.TB) []byte {
		return arpFrame(t, layers.ARPReply, peerMAC, netip.IPv4Unspecified(), hostMAC, hostMAC, host)
	}, "bad-arp"},
	{"ARP for another host", func(t testing.TB) []byte { return arpRequestFrom(t, peerMAC, peer, peer2) }, "arp-not-for-us"},
	{"ARP claims our address", func(t testing.TB) []byte { return arpRequestFrom(t, peerMAC, host, host) }, "arp-conflict"},

	{"IPv4 short", mutate(func(b []byte) []byte { return b[:14+19] }), "short-packet"},
	{"IPv4 version 6", ipMut(func(h []byte) { h[0] = 0x65 }), "bad-ip-version"},
	{"IPv4 version 0", ipMut(func(h []byte) { h[0] = 0x05 }), "bad-ip-version"},
	{"IHL 4", ipMut(func(h []byte) { h[0] = 0x44 }), "bad-ihl"},
	{"IHL 0", ipMut(func(h []byte) { h[0] = 0x40 }), "bad-ihl"},
	{"IHL past the frame", mutate(func(b []byte) []byte { b[14] = 0x4f; return b[:14+40] }), "bad-ihl"},
	{"bad checksum", mutate(func(b []byte) []byte { b[14+10] ^= 1; return b }), "bad-checksum"},
	{"checksum of a changed header", mutate(func(b []byte) []byte { b[14+8]--; return b }), "bad-checksum"},
	{"total length below header", ipMut(func(h []byte) { binary.BigEndian.PutUint16(h[2:], 19) }), "bad-length"},
	{"total length past frame", ipMut(func(h []byte) { binary.BigEndian.PutUint16(h[2:], 47) }), "bad-length"},
	{"total length 65535", ipMut(func(h []byte) { binary.BigEndian.PutUint16(h[2:], 65535) }), "bad-length"},
	{"total length 0", ipMut(func(h []byte) { binary.BigEndian.PutUint16(h[2:], 0) }), "bad-length"},

	{"source broadcast", withAddrs(allBC, host), "bad-src-addr"},
	{"source subnet broadcast", withAddrs(subnetBC, host), "bad-src-addr"},
	{"source multicast", withAddrs(netip.MustParseAddr("224.0.0.1"), host), "bad-src-addr"},
	{"source class E", withAddrs(netip.MustParseAddr("240.0.0.1"), host), "bad-src-addr"},
	{"source zero", withAddrs(netip.IPv4Unspecified(), host), "bad-src-addr"},
	{"source loopback", withAddrs(lo, host), "bad-src-addr"},
	{"source ourselves", withAddrs(host, host), "bad-src-addr"},
	{"to another host", withAddrs(peer, peer2), "not-for-us"},
	{"to an off-link host", withAddrs(peer, remote), "not-for-us"},
	{"to loopback from the wire", withAddrs(peer, lo), "not-for-us"},
	{"to multicast", withAddrs(peer, netip.MustParseAddr("224.0.0.1")), "not-for-us"},
	{"to another subnet's broadcast", withAddrs(peer, netip.MustParseAddr("198.18.1.255")), "not-for-us"},

	{"non-last fragment not a multiple of 8", fragMut(0, true, 7), "bad-fragment"},
	{"empty fragment", fragMut(8, false, 0), "bad-fragment"},
	{"fragment past 65535", fragMut(65528, false, 8), "reasm-too-big"},

	{"ICMP short", icmpMut(func(m []byte) []byte { return m[:4] }), "bad-icmp"},
	{"ICMP bad checksum", icmpMut(func(m []byte) []byte { m[2] ^= 0x10; return m }), "bad-icmp-checksum"},
	{"ICMP changed data", icmpMut(func(m []byte) []byte { m[9]++; return m }), "bad-icmp-checksum"},
	{"echo to subnet broadcast", func(t testing.TB) []byte {
		f := echoFrame(t, peerMAC, peer, subnetBC, 1, 1, nil)
		copy(f, bcast[:])
		return f
	}, "echo-broadcast"},
	{"echo to limited broadcast", func(t testing.TB) []byte {
		f := echoFrame(t, peerMAC, peer, allBC, 1, 1, nil)
		copy(f, bcast[:])
		return f
	}, "echo-broadcast"},
}

// arpMut returns an ARP request from the peer for the host, changed by f
// (a is the ARP packet).
func arpMut(f func(a []byte)) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		b := arpRequestFrom(t, peerMAC, peer, host)
		f(b[14:])
		return b
	}
}

// ipMut returns a UDP frame from the peer whose IPv4 header f changes, with
// the checksum then fixed.
func ipMut(f func(h []byte)) func(testing.TB) []byte {
	return mutate(func(b []byte) []byte {
		f(b[14:])
		fixIPv4Checksum(b)
		return b
	})
}

// fragMut returns a fragment from the peer at offset with n data bytes.
func fragMut(offset int, more bool, n int) func(testing.TB) []byte {
	return func(testing.TB) []byte { return fragFrame(peer, 7, 17, offset, more, pattern(offset, n, 7)) }
}

// icmpMut returns an echo request frame from the peer whose ICMP message f
// changes, with the IPv4 header fixed to match.
func icmpMut(f func(m []byte) []byte) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		b := echoFrame(t, peerMAC, peer, host, 1, 1, []byte("abcdefgh"))
		m := f(bytes.Clone(b[34 : 34+16]))
		b = append(b[:34], m...)
		binary.BigEndian.PutUint16(b[14+2:], uint16(20+len(m)))
		fixIPv4Checksum(b)
		return b
	}
}

func TestMalformed(t *testing.T) {
	for _, tt := range malformedCases {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			frame := tt.frame(t)
			s.FrameIn(t0, frame)
			none(t, s.Out())
			checkDrops(t, s, map[string]uint64{tt.reason: 1})
			if st := s.Stats(); st.FramesIn != 1 || st.FramesOut != 0 || st.PacketsDelivered != 0 {
				t.Errorf("Stats() = %+v", st)
			}
		})
	}
}

func TestSend(t *testing.T) {
	payload := bytes.Repeat([]byte{0xab}, 100)
	tests := []struct {
		name   string
		mod    func(*ip.Config)
		src    netip.Addr
		dst    netip.Addr
		dstMAC [6]byte
		ttl    uint8
	}{
		{"on-link", nil, netip.Addr{}, peer, peerMAC, 64},
		{"explicit source", nil, host, peer, peerMAC, 64},
		{"unspecified source", nil, netip.IPv4Unspecified(), peer, peerMAC, 64},
		{"IPv4-mapped", nil, netip.MustParseAddr("::ffff:198.18.0.2"), netip.MustParseAddr("::ffff:198.18.0.3"), peerMAC, 64},
		{"via gateway", nil, netip.Addr{}, remote, gwMAC, 64},
		{"configured TTL", func(c *ip.Config) { c.TTL = 7 }, netip.Addr{}, peer, peerMAC, 7},
		{"subnet broadcast", nil, netip.Addr{}, subnetBC, bcast, 64},
		{"limited broadcast", nil, netip.Addr{}, allBC, bcast, 64},
		{"multicast", nil, netip.Addr{}, netip.MustParseAddr("239.129.2.3"), [6]byte{1, 0, 0x5e, 1, 2, 3}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*ip.Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			s := newStack(t, mods...)
			resolve(t, s, t0, peerMAC, peer)
			resolve(t, s, t0, gwMAC, gw)
			if err := s.Send(t0, 17, tt.src, tt.dst, payload); err != nil {
				t.Fatalf("Send: %v", err)
			}
			ev := only(t, s.Out(), ip.FrameOut)
			checkFrame(t, ev.Frame,
				checker.Ethernet(hostMAC, tt.dstMAC, layers.EthernetTypeIPv4),
				checker.InIPv4(checker.Addrs(host, tt.dst.Unmap()), checker.TTL(tt.ttl), checker.Protocol(proto.UDP), checker.IPPayload(payload), checker.DontFragment()))
			checkDrops(t, s, nil)
		})
	}
}

func TestSendErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*ip.Config)
		src  netip.Addr
		dst  netip.Addr
		n    int
		want error
	}{
		{"off-link without gateway", func(c *ip.Config) { c.Gateway = netip.Addr{} }, netip.Addr{}, remote, 10, ip.ErrNoRoute},
		// 1481 bytes and more go in fragments; with DF (SendDF) they are
		// ErrTooBig: TestSendDontFragment.
		{"65516 bytes over loopback", nil, netip.Addr{}, lo, ip.MaxLoopback + 1, ip.ErrTooBig},
		{"IPv6 destination", nil, netip.Addr{}, netip.MustParseAddr("2001:db8::1"), 10, ip.ErrBadAddr},
		{"no destination", nil, netip.Addr{}, netip.Addr{}, 10, ip.ErrBadAddr},
		{"unspecified destination", nil, netip.Addr{}, netip.IPv4Unspecified(), 10, ip.ErrBadAddr},
		{"class E destination", nil, netip.Addr{}, netip.MustParseAddr("240.0.0.1"), 10, ip.ErrBadAddr},
		{"foreign source", nil, peer, peer2, 10, ip.ErrBadAddr},
		{"loopback source off the host", nil, lo, peer, 10, ip.ErrBadAddr},
		{"IPv6 source", nil, netip.MustParseAddr("::1"), peer, 10, ip.ErrBadAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*ip.Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			s := newStack(t, mods...)
			err := s.Send(t0, 17, tt.src, tt.dst, make([]byte, tt.n))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Send(%v -> %v, %d bytes) = %v, want %v", tt.src, tt.dst, tt.n, err, tt.want)
			}
			none(t, s.Out())
			checkDrops(t, s, nil)
		})
	}
}

func TestLoopback(t *testing.T) {
	tests := []struct {
		name     string
		src, dst netip.Addr
		wantSrc  netip.Addr
		n        int
	}{
		{"127.0.0.1", netip.Addr{}, lo, lo, 100},
		{"127.1.2.3", netip.Addr{}, netip.MustParseAddr("127.1.2.3"), lo, 100},
		{"own address", netip.Addr{}, host, host, 100},
		{"own address from loopback", lo, host, lo, 100},
		{"loopback from own address", host, lo, host, 100},
		{"largest", netip.Addr{}, lo, lo, ip.MaxLoopback},
		{"empty", netip.Addr{}, host, host, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			payload := pattern(0, tt.n, 1)
			if err := s.Send(t0, 17, tt.src, tt.dst, bytes.Clone(payload)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			ev := only(t, s.Out(), ip.Deliver)
			if ev.Proto != 17 || ev.Src != tt.wantSrc || ev.Dst != tt.dst || !bytes.Equal(ev.Payload, payload) {
				t.Errorf("Deliver proto %d %v -> %v, %d bytes; want 17 %v -> %v, %d bytes", ev.Proto, ev.Src, ev.Dst, len(ev.Payload), tt.wantSrc, tt.dst, len(payload))
			}
			checkPacket(t, ev.Packet, checker.InIPv4(checker.Addrs(tt.wantSrc, tt.dst), checker.TTL(64), checker.Protocol(proto.UDP), checker.IPPayload(payload)))
			if st := s.Stats(); st.LoopbackPackets != 1 || st.FramesOut != 0 || st.PacketsDelivered != 1 {
				t.Errorf("Stats() = %+v", st)
			}
		})
	}
}

func TestSendEventPayload(t *testing.T) {
	// A Deliver event's payload, valid until the next input call, may be
	// that call's payload: an echo server linked in the same process.
	s := newStack(t)
	resolve(t, s, t0, peerMAC, peer)
	want := pattern(0, 300, 9)
	if err := s.Send(t0, 17, netip.Addr{}, lo, want); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ev := only(t, s.Out(), ip.Deliver)
		if err := s.Send(t0, 17, netip.Addr{}, host, ev.Payload); err != nil {
			t.Fatal(err)
		}
	}
	ev := only(t, s.Out(), ip.Deliver)
	if !bytes.Equal(ev.Payload, want) {
		t.Fatal("payload changed on its way round")
	}
	if err := s.Send(t0, 17, netip.Addr{}, peer, ev.Payload); err != nil {
		t.Fatal(err)
	}
	checkFrame(t, only(t, s.Out(), ip.FrameOut).Frame, checker.InIPv4(checker.Protocol(proto.UDP), checker.IPPayload(want)))
}

func TestEventsClears(t *testing.T) {
	s := newStack(t)
	if err := s.Send(t0, 17, netip.Addr{}, lo, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t0, 17, netip.Addr{}, lo, []byte("b")); err != nil {
		t.Fatal(err)
	}
	evs := s.Out()
	if len(evs) != 2 || string(evs[0].Payload) != "a" || string(evs[1].Payload) != "b" {
		t.Fatalf("events %v, want two deliveries in order", kinds(evs))
	}
	none(t, s.Out())
}

func TestNextDeadline(t *testing.T) {
	s := newStack(t, func(c *ip.Config) { c.ARPTimeout = 10 * time.Second; c.ReasmTimeout = 5 * time.Second })
	if d, ok := s.Deadline(); ok {
		t.Fatalf("Deadline() = %v, true on a new Stack", d)
	}
	resolve(t, s, t0, peerMAC, peer) // expires at 10s
	want := func(d time.Duration) {
		t.Helper()
		if got, ok := s.Deadline(); !ok || !got.Equal(at(d)) {
			t.Fatalf("Deadline() = %v, %v; want %v", got.Sub(t0), ok, d)
		}
	}
	want(10 * time.Second)
	s.FrameIn(at(2*time.Second), fragFrame(peer, 1, 17, 0, true, pattern(0, 8, 1))) // times out at 7s
	want(7 * time.Second)
	if err := s.Send(at(3*time.Second), 17, netip.Addr{}, peer2, nil); err != nil { // retried at 4s
		t.Fatal(err)
	}
	s.Out()
	want(4 * time.Second)
	s.Tick(at(4 * time.Second)) // retried at 5s
	s.Tick(at(5 * time.Second)) // retried at 6s
	s.Tick(at(6 * time.Second)) // retried at 7s
	s.Tick(at(7 * time.Second)) // given up; reassembly timed out
	s.Out()
	want(10 * time.Second)
	s.Tick(at(10 * time.Second))
	if d, ok := s.Deadline(); ok {
		t.Fatalf("Deadline() = %v, true with nothing pending", d.Sub(t0))
	}
}

func TestReasonsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "IP.md"))
	if err != nil {
		t.Fatalf("reading docs/IP.md: %v", err)
	}
	reasons := ip.Reasons()
	drops := newStack(t).Drops()
	if len(drops) != len(reasons) {
		t.Errorf("Drops() has %d keys, Reasons() %d", len(drops), len(reasons))
	}
	for _, r := range reasons {
		if _, ok := drops[r]; !ok {
			t.Errorf("Drops() has no key %q", r)
		}
		if !bytes.Contains(doc, []byte("`"+r+"`")) {
			t.Errorf("docs/IP.md does not explain %q", r)
		}
	}
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[ip.EventKind]string{ip.FrameOut: "FrameOut", ip.Deliver: "Deliver", ip.ICMPError: "ICMPError", 0: "EventKind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("EventKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

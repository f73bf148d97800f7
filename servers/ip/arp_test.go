package ip_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
)

func TestARPRequestAnswered(t *testing.T) {
	s := newStack(t)
	s.FrameIn(t0, arpRequestFrom(t, peerMAC, peer, host))
	ev := only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame,
		checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeARP),
		checker.ARP(layers.ARPReply, hostMAC, host, peerMAC, peer))
	st := s.Stats()
	if st.ARPRequestsReceived != 1 || st.ARPRepliesSent != 1 || st.Neighbors != 1 {
		t.Errorf("Stats() = %+v", st)
	}
	// The requester was learned: a packet to it goes out at once.
	if err := s.Send(t0, 17, netip.Addr{}, peer, []byte("x")); err != nil {
		t.Fatal(err)
	}
	ev = only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4))
	checkDrops(t, s, nil)
}

func TestARPProbeAnswered(t *testing.T) {
	s := newStack(t)
	s.FrameIn(t0, arpRequestFrom(t, peerMAC, netip.IPv4Unspecified(), host)) // RFC 5227 probe
	ev := only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame,
		checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeARP),
		checker.ARP(layers.ARPReply, hostMAC, host, peerMAC, netip.IPv4Unspecified()))
	if n := s.Stats().Neighbors; n != 0 {
		t.Errorf("%d neighbors learned from a probe", n)
	}
}

func TestARPNotLearnedFromOthers(t *testing.T) {
	s := newStack(t)
	s.FrameIn(t0, arpRequestFrom(t, peerMAC, peer, peer2)) // for another host
	none(t, s.Out())
	if err := s.Send(t0, 17, netip.Addr{}, peer, nil); err != nil {
		t.Fatal(err)
	}
	ev := only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, bcast, layers.EthernetTypeARP), checker.ARP(layers.ARPRequest, hostMAC, host, [6]byte{}, peer))
	checkDrops(t, s, map[string]uint64{"arp-not-for-us": 1})
}

func TestARPUpdatedFromOthers(t *testing.T) {
	// RFC 826: an entry is updated by any ARP packet from its address.
	s := newStack(t)
	resolve(t, s, t0, peerMAC, peer)
	moved := [6]byte{0x02, 0, 0, 0, 0, 0x33}
	s.FrameIn(t0, arpRequestFrom(t, moved, peer, peer2))
	none(t, s.Out())
	if err := s.Send(t0, 17, netip.Addr{}, peer, nil); err != nil {
		t.Fatal(err)
	}
	ev := only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, moved, layers.EthernetTypeIPv4))
}

func TestARPOffLinkNotLearned(t *testing.T) {
	s := newStack(t)
	s.FrameIn(t0, arpRequestFrom(t, peerMAC, remote, host))
	only(t, s.Out(), ip.FrameOut) // answered
	if n := s.Stats().Neighbors; n != 0 {
		t.Errorf("%d neighbors after a request from off-link", n)
	}
}

func TestSendResolvesAndFlushes(t *testing.T) {
	s := newStack(t)
	payloads := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
	for i, p := range payloads {
		buf := bytes.Clone(p)
		if err := s.Send(t0, 17, netip.Addr{}, peer, buf); err != nil {
			t.Fatal(err)
		}
		clear(buf) // held packets are copies
		evs := s.Out()
		if i > 0 {
			none(t, evs)
			continue
		}
		ev := only(t, evs, ip.FrameOut)
		checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, bcast, layers.EthernetTypeARP), checker.ARP(layers.ARPRequest, hostMAC, host, [6]byte{}, peer))
	}
	if d, ok := s.Deadline(); !ok || !d.Equal(at(time.Second)) {
		t.Fatalf("Deadline() = %v, %v; want 1s", d.Sub(t0), ok)
	}
	s.FrameIn(at(time.Millisecond), arpReplyFrom(t, peerMAC, peer))
	evs := s.Out()
	if len(evs) != len(payloads) {
		t.Fatalf("events %v after the reply, want %d frames", kinds(evs), len(payloads))
	}
	for i, ev := range evs {
		if ev.Kind != ip.FrameOut {
			t.Fatalf("event %d is %v", i, ev.Kind)
		}
		checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
			checker.InIPv4(checker.Addrs(host, peer), checker.Protocol(proto.UDP), checker.IPPayload(payloads[i])))
	}
	if d, ok := s.Deadline(); !ok || !d.Equal(at(60*time.Second+time.Millisecond)) {
		t.Errorf("Deadline() = %v, %v; want the entry's expiry", d.Sub(t0), ok)
	}
	st := s.Stats()
	if st.ARPRequestsSent != 1 || st.ARPRepliesReceived != 1 || st.FramesOut != 4 {
		t.Errorf("Stats() = %+v", st)
	}
	checkDrops(t, s, nil)
}

func TestSendViaGatewayResolvesGateway(t *testing.T) {
	s := newStack(t)
	if err := s.Send(t0, 6, netip.Addr{}, remote, []byte("seg")); err != nil {
		t.Fatal(err)
	}
	ev := only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.ARP(layers.ARPRequest, hostMAC, host, [6]byte{}, gw))
	s.FrameIn(t0, arpReplyFrom(t, gwMAC, gw))
	ev = only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, gwMAC, layers.EthernetTypeIPv4),
		checker.InIPv4(checker.Addrs(host, remote), checker.Protocol(proto.TCP), checker.IPPayload([]byte("seg"))))
}

func TestARPRetryAndGiveUp(t *testing.T) {
	s := newStack(t)
	for range 2 {
		if err := s.Send(t0, 17, netip.Addr{}, peer, []byte("held")); err != nil {
			t.Fatal(err)
		}
	}
	only(t, s.Out(), ip.FrameOut) // the first request
	steps := []struct {
		at      time.Duration
		request bool
	}{
		{999 * time.Millisecond, false},
		{time.Second, true},
		{1500 * time.Millisecond, false},
		{2 * time.Second, true},
		{3 * time.Second, true},
		{4*time.Second - 1, false},
		{4 * time.Second, false}, // given up
		{10 * time.Second, false},
	}
	for _, st := range steps {
		s.Tick(at(st.at))
		evs := s.Out()
		if !st.request {
			none(t, evs)
			continue
		}
		ev := only(t, evs, ip.FrameOut)
		checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, bcast, layers.EthernetTypeARP), checker.ARP(layers.ARPRequest, hostMAC, host, [6]byte{}, peer))
	}
	checkDrops(t, s, map[string]uint64{"arp-unresolved": 2})
	if st := s.Stats(); st.ARPRequestsSent != 4 || st.Neighbors != 0 {
		t.Errorf("Stats() = %+v", st)
	}
	if d, ok := s.Deadline(); ok {
		t.Errorf("Deadline() = %v after giving up", d.Sub(t0))
	}
	// A late reply is learned, but nothing is left to send.
	s.FrameIn(at(11*time.Second), arpReplyFrom(t, peerMAC, peer))
	none(t, s.Out())
	// The next packet starts afresh.
	s2 := newStack(t)
	if err := s2.Send(t0, 17, netip.Addr{}, peer, nil); err != nil {
		t.Fatal(err)
	}
	s2.Out()
	for _, d := range []time.Duration{1, 2, 3, 4} {
		s2.Tick(at(d * time.Second))
	}
	s2.Out()
	if err := s2.Send(at(5*time.Second), 17, netip.Addr{}, peer, nil); err != nil {
		t.Fatal(err)
	}
	ev := only(t, s2.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.ARP(layers.ARPRequest, hostMAC, host, [6]byte{}, peer))
}

func TestARPHoldOverflow(t *testing.T) {
	s := newStack(t, func(c *ip.Config) { c.ARPHold = 2 })
	for i := range 5 {
		if err := s.Send(t0, 17, netip.Addr{}, peer, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	only(t, s.Out(), ip.FrameOut)
	checkDrops(t, s, map[string]uint64{"arp-hold-overflow": 3})
	s.FrameIn(t0, arpReplyFrom(t, peerMAC, peer))
	evs := s.Out()
	if len(evs) != 2 {
		t.Fatalf("%d frames flushed, want 2", len(evs))
	}
	for i, ev := range evs {
		checkFrame(t, ev.Frame, checker.InIPv4(checker.Protocol(proto.UDP), checker.IPPayload([]byte{byte(i)})))
	}
}

func TestARPExpiryAndRefresh(t *testing.T) {
	s := newStack(t, func(c *ip.Config) { c.ARPTimeout = 10 * time.Second })
	resolve(t, s, t0, peerMAC, peer)
	send := func(d time.Duration) []ip.Event {
		t.Helper()
		if err := s.Send(at(d), 17, netip.Addr{}, peer, []byte("x")); err != nil {
			t.Fatal(err)
		}
		return s.Out()
	}
	only(t, send(5*time.Second), ip.FrameOut) // fresh
	// Within 4 s of expiry a used entry asks its neighbor to confirm, by
	// a request to its MAC, at most once a second.
	evs := send(7 * time.Second)
	if len(evs) != 2 {
		t.Fatalf("events %v, want the frame and a refresh", kinds(evs))
	}
	checkFrame(t, evs[0].Frame, checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4))
	checkFrame(t, evs[1].Frame, checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeARP), checker.ARP(layers.ARPRequest, hostMAC, host, [6]byte{}, peer))
	only(t, send(7500*time.Millisecond), ip.FrameOut)
	if evs := send(8 * time.Second); len(evs) != 2 {
		t.Fatalf("events %v, want the frame and a refresh", kinds(evs))
	}
	// Unanswered, the entry expires.
	s.Tick(at(10 * time.Second))
	none(t, s.Out())
	if n := s.Stats().Neighbors; n != 0 {
		t.Fatalf("%d neighbors after expiry", n)
	}
	ev := only(t, send(10*time.Second), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, bcast, layers.EthernetTypeARP))

	// Answered, it lives on.
	s = newStack(t, func(c *ip.Config) { c.ARPTimeout = 10 * time.Second })
	resolve(t, s, t0, peerMAC, peer)
	send(7 * time.Second)
	s.FrameIn(at(7*time.Second), arpReplyFrom(t, peerMAC, peer))
	s.Tick(at(10 * time.Second))
	only(t, send(12*time.Second), ip.FrameOut) // expires at 17s
}

func TestARPExpiredWithoutTick(t *testing.T) {
	s := newStack(t, func(c *ip.Config) { c.ARPTimeout = 10 * time.Second })
	resolve(t, s, t0, peerMAC, peer)
	if err := s.Send(at(10*time.Second), 17, netip.Addr{}, peer, nil); err != nil {
		t.Fatal(err)
	}
	ev := only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, bcast, layers.EthernetTypeARP))
}

func TestARPCacheBound(t *testing.T) {
	prefix := netip.MustParsePrefix("10.1.0.1/16")
	addr := func(i int) netip.Addr {
		return netip.AddrFrom4([4]byte{10, 1, byte((i + 2) >> 8), byte(i + 2)})
	}
	mac := func(i int) [6]byte { return [6]byte{2, 0, 0, 1, byte(i >> 8), byte(i)} }

	// Learning past the bound evicts the entries that expire first.
	s := newStack(t, func(c *ip.Config) { c.Addr = prefix; c.Gateway = netip.Addr{} })
	for i := range 1100 {
		s.FrameIn(at(time.Duration(i)*time.Millisecond), arpFrame(t, layers.ARPRequest, mac(i), addr(i), bcast, [6]byte{}, prefix.Addr()))
		s.Out()
	}
	if n := s.Stats().Neighbors; n != 1024 {
		t.Fatalf("%d neighbors, want 1024", n)
	}
	if err := s.Send(at(2*time.Second), 17, netip.Addr{}, addr(1099), nil); err != nil {
		t.Fatal(err)
	}
	checkFrame(t, only(t, s.Out(), ip.FrameOut).Frame, checker.Ethernet(hostMAC, mac(1099), layers.EthernetTypeIPv4))
	if err := s.Send(at(2*time.Second), 17, netip.Addr{}, addr(0), nil); err != nil {
		t.Fatal(err)
	}
	checkFrame(t, only(t, s.Out(), ip.FrameOut).Frame, checker.Ethernet(hostMAC, bcast, layers.EthernetTypeARP))

	// With every entry pending, a packet for a new address is dropped.
	s = newStack(t, func(c *ip.Config) { c.Addr = prefix; c.Gateway = netip.Addr{} })
	for i := range 1025 {
		if err := s.Send(t0, 17, netip.Addr{}, addr(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if evs := s.Out(); len(evs) != 1024 {
		t.Fatalf("%d requests, want 1024", len(evs))
	}
	checkDrops(t, s, map[string]uint64{"arp-cache-full": 1})
}

func TestARPPadded(t *testing.T) {
	s := newStack(t)
	s.FrameIn(t0, arpRequestFrom(t, peerMAC, peer, host))
	ev := only(t, s.Out(), ip.FrameOut)
	if len(ev.Frame) != ip.MinFrameLen || !bytes.Equal(ev.Frame[42:], make([]byte, 18)) {
		t.Errorf("frame of %d bytes ending % x, want 60 ending in zeros", len(ev.Frame), ev.Frame[42:])
	}
	if typ := binary.BigEndian.Uint16(ev.Frame[12:]); typ != 0x0806 {
		t.Errorf("EtherType %#04x", typ)
	}
}

package ip_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/ip4defrag"
	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
)

// fragField returns the flags and fragment offset of checked frame f.
func fragField(f []byte) (id, flags uint16, off int) {
	h := f[14:]
	fo := binary.BigEndian.Uint16(h[6:])
	return binary.BigEndian.Uint16(h[4:]), fo &^ 0x1fff, int(fo&0x1fff) * 8
}

// inFragment checks that the packet is an IPv4 fragment as the host sends
// them (checker.InIPv4, less the fragment test): version 4, no options, a
// header checksum that verifies, a matching total length, DF clear; then
// it applies the checkers.
func inFragment(checks ...checker.Checker) checker.Checker {
	return func(t testing.TB, p gopacket.Packet) {
		t.Helper()
		h, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			t.Fatal("no IPv4 packet")
		}
		if h.Version != 4 || h.IHL != 5 || inetSum(h.Contents) != 0 || int(h.Length) != len(h.Contents)+len(h.Payload) {
			t.Errorf("IPv4 header % x", h.Contents)
		}
		if h.Flags&layers.IPv4DontFragment != 0 {
			t.Errorf("a fragment with DF")
		}
		for _, c := range checks {
			c(t, p)
		}
	}
}

// reassembleBoth puts fragment frames back together twice: with gopacket's
// ip4defrag and with a Stack at the peer's address, and checks that both
// give want, the datagram's payload, byte for byte. ip4defrag refuses
// fragments under 8 bytes, which RFC 791 allows last: it is skipped then.
func reassembleBoth(t *testing.T, frames [][]byte, prot uint8, want []byte) {
	t.Helper()
	if last := frames[len(frames)-1]; binary.BigEndian.Uint16(last[14+2:]) >= 20+8 {
		defragGopacket(t, frames, prot, want)
	}
	reassembleStack(t, frames, prot, want)
}

// defragGopacket puts fragment frames back together with ip4defrag.
func defragGopacket(t *testing.T, frames [][]byte, prot uint8, want []byte) {
	t.Helper()
	d := ip4defrag.NewIPv4Defragmenter()
	var whole *layers.IPv4
	for i, f := range frames {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		h, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			t.Fatalf("fragment %d: no IPv4 layer", i)
		}
		out, err := d.DefragIPv4WithTimestamp(h, t0)
		if err != nil {
			t.Fatalf("ip4defrag: fragment %d: %v", i, err)
		}
		if (out != nil) != (i == len(frames)-1) {
			t.Fatalf("ip4defrag: fragment %d of %d completes: %v", i, len(frames), out != nil)
		}
		whole = out
	}
	if !bytes.Equal(whole.Payload, want) || uint8(whole.Protocol) != prot {
		t.Errorf("ip4defrag: reassembled %d bytes of protocol %d, want %d of %d", len(whole.Payload), whole.Protocol, len(want), prot)
	}
}

// reassembleStack puts fragment frames back together with a Stack at the
// peer's address.
func reassembleStack(t *testing.T, frames [][]byte, prot uint8, want []byte) {
	t.Helper()

	peerStack := newStack(t, func(c *ip.Config) {
		c.MAC, c.Addr = peerMAC, netip.PrefixFrom(peer, 24)
	})
	var evs []ip.Event
	for _, f := range frames {
		peerStack.FrameIn(t0, f)
		evs = append(evs, peerStack.Out()...)
	}
	if prot == proto.ICMP { // an echo reply, delivered as ICMP
		ev := only(t, evs, ip.Deliver)
		if !bytes.Equal(ev.Payload, want) {
			t.Errorf("Stack reassembled %d bytes, want %d", len(ev.Payload), len(want))
		}
		return
	}
	ev := only(t, evs, ip.Deliver)
	if ev.Proto != prot || ev.Src != host || !bytes.Equal(ev.Payload, want) {
		t.Errorf("Stack reassembled %d bytes of %d from %v, want %d", len(ev.Payload), ev.Proto, ev.Src, len(want))
	}
	checkDrops(t, peerStack, nil)
}

func TestFragmentOnOutput(t *testing.T) {
	tests := []struct {
		name string
		n    int
		lens []int // the fragments' payload lengths
	}{
		{"1481 bytes", 1481, []int{1480, 1}},
		{"3000 bytes", 3000, []int{1480, 1480, 40}},
		{"2960 bytes", 2960, []int{1480, 1480}},
		{"65515 bytes", ip.MaxLoopback, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			resolve(t, s, t0, peerMAC, peer)
			payload := pattern(0, tt.n, 7)
			if err := s.Send(t0, proto.UDP, netip.Addr{}, peer, payload); err != nil {
				t.Fatalf("Send %d bytes: %v", tt.n, err)
			}
			evs := s.Out()
			if tt.lens == nil {
				for range (tt.n + 1479) / 1480 {
					tt.lens = append(tt.lens, 1480)
				}
				tt.lens[len(tt.lens)-1] = tt.n - 1480*(len(tt.lens)-1)
			}
			if len(evs) != len(tt.lens) {
				t.Fatalf("%d events, want %d fragments", len(evs), len(tt.lens))
			}
			var frames [][]byte
			var id0 uint16
			off := 0
			for i, ev := range evs {
				if ev.Kind != ip.FrameOut {
					t.Fatalf("event %d: %v", i, ev.Kind)
				}
				checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
					inFragment(checker.Addrs(host, peer), checker.TTL(64), checker.Protocol(proto.UDP),
						checker.IPPayload(payload[off:off+tt.lens[i]])))
				id, flags, fo := fragField(ev.Frame)
				if i == 0 {
					id0 = id
				}
				wantFlags := uint16(0x2000) // MF, and not DF
				if i == len(evs)-1 {
					wantFlags = 0
				}
				if id != id0 || flags != wantFlags || fo != off {
					t.Errorf("fragment %d: ID %#04x flags %#04x offset %d, want %#04x %#04x %d", i, id, flags, fo, id0, wantFlags, off)
				}
				off += tt.lens[i]
				frames = append(frames, bytes.Clone(ev.Frame))
			}
			reassembleBoth(t, frames, proto.UDP, payload)
			checkDrops(t, s, nil)
			if st := s.Stats(); st.FragmentsCreated != uint64(len(frames)) || st.Fragmented != 1 || st.FramesOut != uint64(len(frames))+1 {
				t.Errorf("Stats() = %+v", st)
			}
			// The next datagram to the peer has the next ID.
			if id := sendID(t, s, t0, peer); id != id0+1 {
				t.Errorf("next ID %#04x, want %#04x", id, id0+1)
			}
		})
	}
}

// TestFragmentEventPayload sends a Deliver event's payload, in the Stack's
// own buffers, out again in fragments.
func TestFragmentEventPayload(t *testing.T) {
	s := newStack(t)
	resolve(t, s, t0, peerMAC, peer)
	want := pattern(0, 5000, 3)
	if err := s.Send(t0, proto.UDP, netip.Addr{}, lo, want); err != nil {
		t.Fatal(err)
	}
	ev := only(t, s.Out(), ip.Deliver)
	if err := s.Send(t0, proto.UDP, netip.Addr{}, peer, ev.Payload); err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for _, ev := range s.Out() {
		frames = append(frames, ev.Frame)
	}
	reassembleBoth(t, frames, proto.UDP, want)
}

func TestFragmentHeldForARP(t *testing.T) {
	s := newStack(t)
	payload := pattern(0, 3000, 1)
	if err := s.Send(t0, proto.UDP, netip.Addr{}, peer, payload); err != nil {
		t.Fatal(err)
	}
	only(t, s.Out(), ip.FrameOut) // the ARP request
	s.FrameIn(t0.Add(time.Millisecond), arpReplyFrom(t, peerMAC, peer))
	var frames [][]byte
	for _, ev := range s.Out() {
		frames = append(frames, bytes.Clone(ev.Frame))
	}
	if len(frames) != 3 {
		t.Fatalf("%d frames after the ARP reply, want 3 fragments", len(frames))
	}
	reassembleBoth(t, frames, proto.UDP, payload)
}

// TestPingFragmentedReply is ping -s 1473 and more from Linux: the request
// comes in fragments, the reply goes out in fragments.
func TestPingFragmentedReply(t *testing.T) {
	for _, n := range []int{1473, 3000, 65507} {
		s := newStack(t)
		resolve(t, s, t0, peerMAC, peer)
		data := pattern(0, n, 0)
		m := echoFrame(t, peerMAC, peer, host, 3, 4, data)[14+20:]
		for off := 0; off < len(m); off += 1480 {
			end := min(off+1480, len(m))
			s.FrameIn(t0, fragFrame(peer, 0x1234, 1, off, end < len(m), m[off:end]))
		}
		var frames [][]byte
		for _, ev := range s.Out() {
			if ev.Kind != ip.FrameOut {
				t.Fatalf("ping -s %d: event %v", n, ev.Kind)
			}
			frames = append(frames, bytes.Clone(ev.Frame))
		}
		if want := (len(m) + 1479) / 1480; len(frames) != want {
			t.Fatalf("ping -s %d: %d frames, want %d", n, len(frames), want)
		}
		reply := bytes.Clone(m)
		reply[0] = 0
		binary.BigEndian.PutUint16(reply[2:], 0)
		binary.BigEndian.PutUint16(reply[2:], inetSum(reply))
		reassembleBoth(t, frames, proto.ICMP, reply)
		checkDrops(t, s, nil)
		if st := s.Stats(); st.EchoRepliesSent != 1 {
			t.Errorf("ping -s %d: Stats() = %+v", n, st)
		}
	}
}

func TestSendDontFragment(t *testing.T) {
	tests := []struct {
		name string
		dst  netip.Addr
		n    int
	}{
		{"1481 bytes", peer, ip.MaxPayload + 1},
		{"1481 bytes off-link", remote, ip.MaxPayload + 1},
		{"3000 bytes", peer, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			resolve(t, s, t0, peerMAC, peer)
			resolve(t, s, t0, gwMAC, gw)
			seg := pattern(0, tt.n, 2)
			binary.BigEndian.PutUint32(seg, 5000<<16|53) // ports 5000 -> 53
			err := s.SendDF(t0, proto.UDP, netip.Addr{}, tt.dst, seg)
			if !errors.Is(err, ip.ErrTooBig) {
				t.Fatalf("SendDF(%d bytes) = %v, want ErrTooBig", tt.n, err)
			}
			ev := only(t, s.Out(), ip.ICMPError)
			if ev.Proto != proto.UDP || ev.Src != host || ev.Dst != tt.dst || ev.SrcPort != 5000 || ev.DstPort != 53 ||
				ev.Type != 3 || ev.Code != proto.CodeFragNeeded || ev.MTU != ip.MTU || ev.From != host || !bytes.Equal(ev.Quote, seg[:8]) {
				t.Errorf("ICMPError %+v", ev)
			}
			checkDrops(t, s, map[string]uint64{"frag-needed": 1})
		})
	}
	// What fits goes, with DF.
	s := newStack(t)
	resolve(t, s, t0, peerMAC, peer)
	if err := s.SendDF(t0, proto.UDP, netip.Addr{}, peer, make([]byte, ip.MaxPayload)); err != nil {
		t.Fatal(err)
	}
	checkFrame(t, only(t, s.Out(), ip.FrameOut).Frame, checker.InIPv4(checker.DontFragment()))
	// Loopback has no MTU to speak of.
	if err := s.SendDF(t0, proto.UDP, netip.Addr{}, lo, make([]byte, 3000)); err != nil {
		t.Fatal(err)
	}
	only(t, s.Out(), ip.Deliver)
}

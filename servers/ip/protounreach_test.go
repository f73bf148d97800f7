package ip_test

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
)

func TestProtocolUnreachable(t *testing.T) {
	gre := rawPacket(peer, host, 47, 20, 0, pattern(0, 30, 1))
	tests := []struct {
		name  string
		frame []byte
		quote []byte // nil: no error sent
		drops map[string]uint64
	}{
		{"GRE", inFrame(peerMAC, hostMAC, gre), gre[:28], map[string]uint64{"unknown-protocol": 1}},
		{"protocol 255", inFrame(peerMAC, hostMAC, rawPacket(peer, host, 255, 20, 0, nil)), rawPacket(peer, host, 255, 20, 0, nil),
			map[string]uint64{"unknown-protocol": 1}},
		{"with options", inFrame(peerMAC, hostMAC, rawPacket(peer, host, 47, 28, 0, pattern(0, 12, 1))),
			rawPacket(peer, host, 47, 28, 0, pattern(0, 12, 1))[:36], map[string]uint64{"unknown-protocol": 1}},
		{"to the subnet's broadcast", inFrame(peerMAC, bcast, rawPacket(peer, subnetBC, 47, 20, 0, nil)), nil,
			map[string]uint64{"unknown-protocol": 1, "icmp-error-suppressed": 1}},
		{"to 255.255.255.255", inFrame(peerMAC, bcast, rawPacket(peer, allBC, 47, 20, 0, nil)), nil,
			map[string]uint64{"unknown-protocol": 1, "icmp-error-suppressed": 1}},
		{"in a link-layer broadcast", inFrame(peerMAC, bcast, gre), nil,
			map[string]uint64{"unknown-protocol": 1, "icmp-error-suppressed": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t)
			resolve(t, s, t0, peerMAC, peer)
			s.FrameIn(t0, tt.frame)
			evs := s.Out()
			if tt.quote == nil {
				none(t, evs)
			} else {
				ev := only(t, evs, ip.FrameOut)
				checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
					checker.InIPv4(checker.Addrs(host, peer), checker.ICMP(3, proto.CodeProtoUnreachable, checker.Quotes(tt.quote))))
				if st := s.Stats(); st.ICMPErrorsSent != 1 || st.PacketsDelivered != 0 {
					t.Errorf("Stats() = %+v", st)
				}
			}
			checkDrops(t, s, tt.drops)
		})
	}
}

func TestProtocolUnreachableReassembled(t *testing.T) {
	s := newStack(t)
	resolve(t, s, t0, peerMAC, peer)
	s.FrameIn(t0, fragFrame(peer, 9, 47, 0, true, pattern(0, 16, 9)))
	s.FrameIn(t0, fragFrame(peer, 9, 47, 16, false, pattern(16, 4, 9)))
	ev := only(t, s.Out(), ip.FrameOut)
	want := fragPacket(peer, 9, 47, 0, false, pattern(0, 20, 9))[:28]
	checkFrame(t, ev.Frame, checker.InIPv4(checker.Addrs(host, peer), checker.ICMP(3, proto.CodeProtoUnreachable, checker.Quotes(want))))
}

func TestProtocolUnreachableLoopback(t *testing.T) {
	s := newStack(t)
	if err := s.Send(t0, 47, netip.Addr{}, lo, pattern(0, 12, 1)); err != nil {
		t.Fatal(err)
	}
	ev := only(t, s.Out(), ip.ICMPError)
	if ev.Proto != 47 || ev.Src != lo || ev.Dst != lo || ev.Type != 3 || ev.Code != proto.CodeProtoUnreachable {
		t.Errorf("ICMPError %+v", ev)
	}
	checkDrops(t, s, map[string]uint64{"unknown-protocol": 1})
}

func TestKnownProtocolsDelivered(t *testing.T) {
	for _, p := range []uint8{proto.TCP, proto.UDP} {
		s := newStack(t)
		s.FrameIn(t0, inFrame(peerMAC, hostMAC, rawPacket(peer, host, p, 20, 0, pattern(0, 20, 1))))
		if ev := only(t, s.Out(), ip.Deliver); ev.Proto != p {
			t.Errorf("delivered protocol %d, want %d", ev.Proto, p)
		}
	}
}

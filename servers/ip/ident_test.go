package ip_test

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
)

// sendID sends a small UDP datagram to dst at now and returns its IP ID.
func sendID(t *testing.T, s *ip.Stack, now time.Time, dst netip.Addr) uint16 {
	t.Helper()
	if err := s.Send(now, proto.UDP, netip.Addr{}, dst, []byte("id")); err != nil {
		t.Fatal(err)
	}
	ev := only(t, s.Out(), ip.FrameOut)
	return binary.BigEndian.Uint16(ev.Frame[14+4:])
}

// withKey sets the IP ID key.
func withKey(k byte) func(*ip.Config) {
	return func(c *ip.Config) { c.IDKey = [16]byte{k, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} }
}

func TestIPIDPerDestination(t *testing.T) {
	s := newStack(t, withKey(1))
	resolve(t, s, t0, peerMAC, peer)
	resolve(t, s, t0, peerMAC, peer2)
	a1 := sendID(t, s, t0, peer)
	var others []uint16
	for range 10 {
		others = append(others, sendID(t, s, t0, peer2))
	}
	a2 := sendID(t, s, t0, peer)
	if a2 != a1+1 {
		t.Errorf("IDs to %v: %#04x then %#04x after 10 datagrams to %v; want consecutive, untouched by other destinations", peer, a1, a2, peer2)
	}
	for i, id := range others {
		if id == a1+1+uint16(i) {
			t.Errorf("ID %d to %v is %#04x, a continuation of %v's %#04x", i, peer2, id, peer, a1)
		}
	}

	// Deterministic for a key, different for another.
	again := newStack(t, withKey(1))
	resolve(t, again, t0, peerMAC, peer)
	if id := sendID(t, again, t0, peer); id != a1 {
		t.Errorf("same key: first ID %#04x, want %#04x", id, a1)
	}
	other := newStack(t, withKey(2))
	resolve(t, other, t0, peerMAC, peer)
	resolve(t, other, t0, peerMAC, peer2)
	if id, id2 := sendID(t, other, t0, peer), sendID(t, other, t0, peer2); id == a1 && id2 == others[0] {
		t.Errorf("another key: the same first IDs %#04x, %#04x", id, id2)
	}
}

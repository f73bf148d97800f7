package ip_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
)

// unreachableTo asks s for a port unreachable to src at now and reports
// whether it sent one.
func unreachableTo(t *testing.T, s *ip.Stack, now time.Time, src netip.Addr) bool {
	t.Helper()
	before := s.Stats().ICMPErrorsSent
	s.Unreachable(now, udpPacket(t, src, host, 5000, 9, []byte("x")), proto.CodePortUnreachable)
	s.Out()
	return s.Stats().ICMPErrorsSent > before
}

func TestICMPRateLimitPerHost(t *testing.T) {
	s := newStack(t)
	resolve(t, s, t0, peerMAC, peer)
	resolve(t, s, t0, peerMAC, peer2)
	// Linux's inet_peer_xrlim_allow with icmp_ratelimit 1 s: a burst of 6,
	// then one a second.
	steps := []struct {
		at   time.Duration
		to   netip.Addr
		sent bool
	}{
		{0, peer, true}, {0, peer, true}, {0, peer, true}, {0, peer, true}, {0, peer, true}, {0, peer, true},
		{0, peer, false}, {0, peer, false},
		{0, peer2, true}, // another host has its own bucket
		{999 * time.Millisecond, peer, false},
		{time.Second, peer, true},
		{time.Second, peer, false},
		{3 * time.Second, peer, true}, {3 * time.Second, peer, true}, {3 * time.Second, peer, false},
		{time.Minute, peer, true}, // a full bucket again: 6
		{time.Minute, peer, true}, {time.Minute, peer, true}, {time.Minute, peer, true}, {time.Minute, peer, true}, {time.Minute, peer, true},
		{time.Minute, peer, false},
	}
	limited := 0
	for i, st := range steps {
		if got := unreachableTo(t, s, at(st.at), st.to); got != st.sent {
			t.Errorf("step %d, at %v to %v: sent %v, want %v", i, st.at, st.to, got, st.sent)
		}
		if !st.sent {
			limited++
		}
	}
	checkDrops(t, s, map[string]uint64{"icmp-ratelimit-host": uint64(limited)})
}

func TestICMPRateLimitExemptions(t *testing.T) {
	s := newStack(t)
	resolve(t, s, t0, peerMAC, peer)
	// Echo replies are not limited (icmp_ratemask 0x1818 leaves type 0 out).
	for i := range 50 {
		s.FrameIn(t0, echoFrame(t, peerMAC, peer, host, 1, uint16(i), nil))
		only(t, s.Out(), ip.FrameOut)
	}
	// Nor errors over loopback.
	for range 50 {
		if err := s.Send(t0, proto.UDP, netip.Addr{}, lo, []byte{0, 1, 0, 2, 0, 9, 0, 0, 'x'}); err != nil {
			t.Fatal(err)
		}
		ev := only(t, s.Out(), ip.Deliver)
		s.Unreachable(t0, ev.Packet, proto.CodePortUnreachable)
		only(t, s.Out(), ip.ICMPError)
	}
	checkDrops(t, s, nil)
}

func TestICMPRateLimitGlobal(t *testing.T) {
	// Linux's icmp_global_allow: 1000 a second, a burst of 50, each error
	// taking 0 to 2 credits (pseudo-random here, by the key).
	run := func(key byte) (first, later int) {
		s := newStack(t, withKey(key))
		resolve(t, s, t0, gwMAC, gw)
		for i := range 200 {
			if unreachableTo(t, s, t0, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})) {
				first++
			}
		}
		d := s.Drops()
		if d["icmp-ratelimit-global"] != uint64(200-first) || d["icmp-ratelimit-host"] != 0 {
			t.Errorf("key %d: %d sent, drops %v", key, first, d)
		}
		// 10 ms later: too soon to earn credit (Linux waits HZ/50).
		if unreachableTo(t, s, at(10*time.Millisecond), netip.MustParseAddr("10.1.0.1")) {
			t.Errorf("key %d: sent 10 ms after the burst", key)
		}
		// 100 ms later: 100 credits, but the burst is 50.
		for i := range 200 {
			if unreachableTo(t, s, at(100*time.Millisecond), netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)})) {
				later++
			}
		}
		return first, later
	}
	for _, key := range []byte{1, 2, 3} {
		first, later := run(key)
		t.Logf("key %d: %d sent at once, %d after 100 ms", key, first, later)
		if first < 25 || first > 100 || later < 25 || later > 100 {
			t.Errorf("key %d: %d sent at once, %d after 100 ms; want about 50 (25 to 100) each", key, first, later)
		}
		if f2, l2 := run(key); f2 != first || l2 != later {
			t.Errorf("key %d: %d and %d sent, then %d and %d: not deterministic", key, first, later, f2, l2)
		}
	}
}

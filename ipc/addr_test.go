package ipc

import (
	"net/netip"
	"testing"
)

func TestPackAddr(t *testing.T) {
	tests := []struct {
		in   netip.Addr
		want uint64
	}{
		{netip.MustParseAddr("198.18.0.2"), 0xc6120002},
		{netip.MustParseAddr("::ffff:127.0.0.1"), 0x7f000001},
		{netip.Addr{}, 0},
		{netip.MustParseAddr("2001:db8::1"), 0},
	}
	for _, tt := range tests {
		if got := PackAddr(tt.in); got != tt.want {
			t.Errorf("PackAddr(%v) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

func TestAddrPortRoundTrip(t *testing.T) {
	for _, s := range []string{"198.18.0.2:80", "0.0.0.0:0", "255.255.255.255:65535", "10.0.0.1:5353"} {
		a := netip.MustParseAddrPort(s)
		if got := UnpackAddrPort(PackAddrPort(a)); got != a {
			t.Errorf("%v: round trip gives %v", a, got)
		}
	}
}

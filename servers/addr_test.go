package servers

import (
	"net/netip"
	"testing"
)

func TestAddr4(t *testing.T) {
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
		if got := Addr4(tt.in); got != tt.want {
			t.Errorf("Addr4(%v) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

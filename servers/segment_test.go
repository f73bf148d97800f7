package servers

import (
	"math"
	"testing"
)

// TestSegmentAt checks the offset a transport gives ip with its segment:
// one from another process, which must not crash ip whatever it is.
func TestSegmentAt(t *testing.T) {
	b := []byte("0123456789")
	tests := []struct {
		off  uint64
		want string
		ok   bool
	}{
		{0, "0123456789", true},
		{4, "456789", true},
		{10, "", true},
		{11, "", false},
		{math.MaxInt64, "", false},
		{math.MaxUint64, "", false},     // -1 as an int
		{1 << 63, "", false},            // the least int
		{math.MaxUint64 - 9, "", false}, // -10
	}
	for _, tt := range tests {
		seg, ok := segmentAt(b, tt.off)
		if ok != tt.ok || string(seg) != tt.want {
			t.Errorf("segmentAt(%q, %#x) = %q, %v; want %q, %v", b, tt.off, seg, ok, tt.want, tt.ok)
		}
	}
}

package checksum

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestSumRFC1071 checks the sum against the example of RFC 1071, section
// 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (0001 + f203 + f4f5 +
// f6f7 = 2ddf0; 2 + ddf0 = ddf2), whose complement, the checksum, is 220d.
func TestSumRFC1071(t *testing.T) {
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Fold(Sum(0, b)); got != 0xddf2 {
		t.Fatalf("sum = %#04x, want 0xddf2", got)
	}
	if got := ^Fold(Sum(0, b)); got != 0x220d {
		t.Fatalf("checksum = %#04x, want 0x220d", got)
	}
	// RFC 1071 computes the same sum over byte-swapped words and swaps
	// the result: f2dd.
	if got := Fold(Sum(0, []byte{0x01, 0x00, 0x03, 0xf2, 0xf5, 0xf4, 0xf7, 0xf6})); got != 0xf2dd {
		t.Fatalf("swapped sum = %#04x, want 0xf2dd", got)
	}
}

// naiveSum is RFC 1071's sum, 16 bits at a time, with end-around carry.
func naiveSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
		s = s&0xffff + s>>16
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// TestSumNaive compares the 64-bit sum with the 16-bit one on every length
// up to 300 and on extreme contents.
func TestSumNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		for _, fill := range []string{"random", "zeros", "ones"} {
			b := make([]byte, n)
			switch fill {
			case "random":
				for i := range b {
					b[i] = byte(r.Uint32())
				}
			case "ones":
				for i := range b {
					b[i] = 0xff
				}
			}
			if got, want := Fold(Sum(0, b)), naiveSum(b); got != want {
				t.Fatalf("%d %s bytes: sum %#04x, naive %#04x", n, fill, got, want)
			}
		}
	}
	// An initial sum near the top of the range carries correctly.
	if got := Fold(Sum(^uint64(0), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})); got != 0xffff {
		t.Fatalf("sum with carries = %#04x", got)
	}
}

// TestPseudoHeaders compares Pseudo with the checksum of the
// pseudo-headers laid out byte by byte: RFC 768's for IPv4 (source,
// destination, zero, protocol, length: 12 bytes) and RFC 8200's for IPv6
// (source, destination, 32-bit length, three zeros, next header: 40 bytes).
func TestPseudoHeaders(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 8, 9, 1400, 1401} {
		seg := make([]byte, n)
		for i := range seg {
			seg[i] = byte(r.Uint32())
		}
		for _, proto := range []uint8{6, 17} {
			s4, d4 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.254")
			ph := append(s4.AsSlice(), d4.AsSlice()...)
			ph = append(ph, 0, proto, byte(n>>8), byte(n))
			if got, want := Pseudo(proto, s4, d4, seg), ^naiveSum(append(ph, seg...)); got != want {
				t.Errorf("IPv4, proto %d, %d bytes: %#04x, want %#04x", proto, n, got, want)
			}
			s6, d6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::ffff:abcd:1234")
			ph = append(s6.AsSlice(), d6.AsSlice()...)
			ph = append(ph, 0, 0, byte(n>>8), byte(n), 0, 0, 0, proto)
			if got, want := Pseudo(proto, s6, d6, seg), ^naiveSum(append(ph, seg...)); got != want {
				t.Errorf("IPv6, proto %d, %d bytes: %#04x, want %#04x", proto, n, got, want)
			}
		}
	}
}

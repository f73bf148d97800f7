package ip

import "testing"

// TestSipHash24 checks sipHash24 against the reference vectors of the
// SipHash paper (appendix A and the reference implementation's
// vectors.h): key 00 01 ... 0f, messages 00 01 ... of each length.
func TestSipHash24(t *testing.T) {
	const k0, k1 = 0x0706050403020100, 0x0f0e0d0c0b0a0908
	want := map[int]uint64{
		0:  0x726fdb47dd0e0e31,
		1:  0x74f839c593dc67fd,
		8:  0x93f5f5799a932462,
		12: 0x751e8fbc860ee5fb,
		15: 0xa129ca6149be45e5,
	}
	m := make([]byte, 16)
	for i := range m {
		m[i] = byte(i)
	}
	for n, w := range want {
		if got := sipHash24(k0, k1, m[:n]); got != w {
			t.Errorf("SipHash-2-4 of %d bytes = %#016x, want %#016x", n, got, w)
		}
	}
}

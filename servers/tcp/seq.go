package tcp

import "net/netip"

// Seq is a TCP sequence number. Comparisons are modulo 2^32 (RFC 9293
// section 3.4): a is before b when b - a, as a signed 32-bit number, is
// positive.
type Seq uint32

// Before reports whether a comes strictly before b.
func (a Seq) Before(b Seq) bool { return int32(a-b) < 0 }

// BeforeEq reports whether a comes before b or is b.
func (a Seq) BeforeEq(b Seq) bool { return int32(a-b) <= 0 }

// Add returns a advanced by n.
func (a Seq) Add(n int) Seq { return a + Seq(uint32(n)) }

// Diff returns a - b as a signed distance.
func (a Seq) Diff(b Seq) int { return int(int32(a - b)) }

// InWindow reports whether start <= a < start+size.
func (a Seq) InWindow(start Seq, size int) bool { return uint32(a-start) < uint32(size) }

func seqMax(a, b Seq) Seq {
	if a.Before(b) {
		return b
	}
	return a
}

func seqMin(a, b Seq) Seq {
	if a.Before(b) {
		return a
	}
	return b
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

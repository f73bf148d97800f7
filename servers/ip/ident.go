package ip

import (
	"encoding/binary"
	"math/bits"
	"time"
)

// IP IDs, as Linux picks them for datagrams not tied to a connected socket
// (net/ipv4/route.c, __ip_select_ident and ip_idents_reserve): a keyed hash
// of (destination, source, protocol) picks one of idBuckets counters, so
// the IDs sent to one destination follow one counter and say nothing about
// those sent to another (RFC 7739 section 5.3 and 6864 section 5.2). When
// a counter is used again after t milliseconds, it first jumps by a
// pseudo-random amount below t, so that a destination sharing its counter
// with another cannot count the other's datagrams. Linux draws that jump
// from its random pool; here it is a keyed hash of the counter and the
// time, so that a Stack stays deterministic for a given Config.IDKey.
const idBuckets = 2048 // Linux's IP_IDENTS_SZ, its least

// idents are the IP ID counters.
type idents struct {
	k0, k1 uint64            // the SipHash key
	next   [idBuckets]uint16 // the counters
	stamp  [idBuckets]uint32 // when each was last used, in milliseconds (Linux: jiffies)
}

// init sets the key.
func (g *idents) init(key [16]byte) {
	g.k0 = binary.LittleEndian.Uint64(key[0:])
	g.k1 = binary.LittleEndian.Uint64(key[8:])
}

// take returns the ID for the next datagram from src to dst of protocol p,
// reserving n IDs (Linux's segs; 1 here).
func (g *idents) take(now time.Time, src, dst uint32, p uint8) uint16 {
	b := g.hash(dst, src, uint32(p)) % idBuckets
	ms := uint32(now.UnixMilli())
	var delta uint32
	if old := g.stamp[b]; old != ms {
		delta = uint32(g.hash(uint32(b), ms, 0x100)) % (ms - old) // 0x100: no protocol
		g.stamp[b] = ms
	}
	id := g.next[b] + uint16(delta)
	g.next[b] = id + 1
	return id
}

// hash returns SipHash-2-4 of three 32-bit words (Linux's siphash_3u32).
func (g *idents) hash(a, b, c uint32) uint64 {
	var m [12]byte
	binary.LittleEndian.PutUint32(m[0:], a)
	binary.LittleEndian.PutUint32(m[4:], b)
	binary.LittleEndian.PutUint32(m[8:], c)
	return sipHash24(g.k0, g.k1, m[:])
}

// sipHash24 returns SipHash-2-4 (Aumasson and Bernstein, 2012) of m under
// the key (k0, k1).
func sipHash24(k0, k1 uint64, m []byte) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(m)
	for ; len(m) >= 8; m = m[8:] {
		w := binary.LittleEndian.Uint64(m)
		v3 ^= w
		round()
		round()
		v0 ^= w
	}
	last := uint64(n) << 56
	for i, c := range m {
		last |= uint64(c) << (8 * i)
	}
	v3 ^= last
	round()
	round()
	v0 ^= last
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}

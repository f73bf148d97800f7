package tcp

import (
	"hash/fnv"
	"net/netip"
	"time"
)

// isn returns an initial sequence number for a connection (RFC 6528): a
// keyed hash of the connection's addresses plus a clock ticking every 4 us.
func (s *Stack) isn(now time.Time, t tuple) Seq {
	return Seq(s.hash(t, 1) + uint32(now.UnixNano()/4000))
}

// tsOffset returns a connection's timestamp offset (RFC 7323 5.4).
func (s *Stack) tsOffset(t tuple) uint32 { return s.hash(t, 2) }

func (s *Stack) hash(t tuple, salt byte) uint32 {
	return s.hashCount(t, salt, nil)
}

// hashCount is hash with a counter mixed in, when count is not nil.
func (s *Stack) hashCount(t tuple, salt byte, count *uint32) uint32 {
	h := fnv.New32a()
	var b [8 + 1 + 12]byte
	for i := range 8 {
		b[i] = byte(s.c.Secret >> (8 * i))
	}
	b[8] = salt
	la, ra := as4(t.local.Addr()), as4(t.remote.Addr())
	copy(b[9:], la[:])
	copy(b[13:], ra[:])
	b[17], b[18] = byte(t.local.Port()>>8), byte(t.local.Port())
	b[19], b[20] = byte(t.remote.Port()>>8), byte(t.remote.Port())
	h.Write(b[:])
	if count != nil {
		h.Write([]byte{byte(*count >> 24), byte(*count >> 16), byte(*count >> 8), byte(*count)})
	}
	return h.Sum32()
}

func as4(a netip.Addr) [4]byte {
	if a.Is4() {
		return a.As4()
	}
	return [4]byte{}
}

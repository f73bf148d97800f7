package pool

import "fmt"

// A Ref names bytes in a buffer pool: the pool's id, an offset into the
// pool's data region and a length. It is what a message carries instead of
// the data itself, one Ref per 64-bit argument word. A Ref is only a claim:
// the receiver checks it with Pool.Check before it touches the bytes.
//
// The 64 bits pack, from high to low, the pool id (8 bits), the offset
// (32 bits) and the length (24 bits). The zero Ref is empty and never passes
// Check.
type Ref uint64

// Field widths of a Ref.
const (
	lenBits = 24
	offBits = 32

	// MaxLen is the largest length a Ref can carry.
	MaxLen = 1<<lenBits - 1
)

// MakeRef packs a pool id, an offset into the pool's data region and a
// length into a Ref. It panics if n does not fit in 24 bits (n > MaxLen): a
// caller that computes such a length has a bug, and truncating it would name
// other bytes than it meant.
func MakeRef(id uint8, off uint32, n uint32) Ref {
	if n > MaxLen {
		panic(fmt.Sprintf("pool: MakeRef length %d exceeds %d", n, MaxLen))
	}
	return Ref(uint64(id)<<(offBits+lenBits) | uint64(off)<<lenBits | uint64(n))
}

// Pool returns the id of the pool r points into.
func (r Ref) Pool() uint8 { return uint8(r >> (offBits + lenBits)) }

// Off returns the offset of r's first byte in its pool's data region.
func (r Ref) Off() uint32 { return uint32(r >> lenBits) }

// Len returns the number of bytes r covers.
func (r Ref) Len() int { return int(r & MaxLen) }

// String formats r as pool:offset+length, for example "3:2048+1500".
func (r Ref) String() string {
	return fmt.Sprintf("%d:%d+%d", r.Pool(), r.Off(), r.Len())
}

package pool

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/newtsim/newtsim/ipc"
)

// FuzzCheck feeds Check arbitrary Refs and senders, as a hostile peer
// would. Check must never panic; when it passes, the Ref must lie within
// one buffer of the mapping, and Bytes must return exactly those bytes;
// when it refuses, exactly one reason must match.
func FuzzCheck(f *testing.F) {
	c := Config{ID: 7, Path: testPath(f), BufSize: 128, Count: 5, Owner: ipc.MakeEndpoint(1, 1), Readers: []ipc.Endpoint{ipc.MakeEndpoint(3, 2)}}
	p := create(f, c)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(p.mem)))
	dataStart := base + HeaderSize
	dataEnd := base + uintptr(len(p.mem))

	f.Add(uint64(MakeRef(7, 0, 128)), uint32(ipc.MakeEndpoint(1, 1)))
	f.Add(uint64(MakeRef(7, 4*128+127, 1)), uint32(ipc.MakeEndpoint(3, 9)))
	f.Add(uint64(MakeRef(7, 127, 2)), uint32(ipc.MakeEndpoint(3, 2)))
	f.Add(uint64(MakeRef(7, 5*128, 1)), uint32(ipc.MakeEndpoint(1, 1)))
	f.Add(uint64(MakeRef(6, 0, 1)), uint32(ipc.MakeEndpoint(1, 1)))
	f.Add(uint64(MakeRef(7, 0, 1)), uint32(ipc.MakeEndpoint(2, 1)))
	f.Add(uint64(0), uint32(0))
	f.Add(^uint64(0), ^uint32(0))

	f.Fuzz(func(t *testing.T, ref uint64, sender uint32) {
		r, s := Ref(ref), ipc.Endpoint(sender)
		err := p.Check(r, s)
		b, berr := p.Bytes(r, s)
		if (err == nil) != (berr == nil) {
			t.Fatalf("Check(%v, %v) = %v but Bytes error %v", r, s, err, berr)
		}
		if err != nil {
			matched := 0
			for _, e := range checkErrs {
				if errors.Is(err, e) {
					matched++
				}
			}
			if matched != 1 {
				t.Fatalf("Check(%v, %v) = %v matches %d reasons", r, s, err, matched)
			}
			return
		}
		off, n := uint64(r.Off()), uint64(r.Len())
		if r.Pool() != c.ID || n == 0 || off+n > uint64(c.Count*c.BufSize) || off/128 != (off+n-1)/128 {
			t.Fatalf("Check passed %v", r)
		}
		if s.Slot() != 1 && s.Slot() != 3 {
			t.Fatalf("Check passed sender %v", s)
		}
		start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		if len(b) != int(n) || cap(b) != int(n) || start < dataStart || start+uintptr(n) > dataEnd || start-dataStart != uintptr(off) {
			t.Fatalf("Bytes(%v) = %d bytes (cap %d) at mapping offset %d, outside the ref or the mapping", r, len(b), cap(b), start-base)
		}
		var sum byte
		for _, x := range b {
			sum += x
		}
		_ = sum
	})
}

package sockbuf

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/newtsim/newtsim/ipc/memfd"
)

// newRegion is a region as tcp makes it (a sealed memfd, formatted) and
// as its application maps it, from its own descriptor.
func newRegion(t *testing.T) (*Region, *Region) {
	t.Helper()
	f, err := memfd.Create("r", Size)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	srv, err := New(f)
	if err != nil {
		t.Fatal(err)
	}
	app, err := Map(f, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); app.Close() })
	return srv, app
}

func TestRingAcrossMappings(t *testing.T) {
	srv, app := newRegion(t)
	for i := range Slots {
		if ok, err := srv.RX().Put(&Desc{Kind: KindData, Len: uint32(i + 1), A: uint64(i)}); !ok || err != nil {
			t.Fatalf("put %d: %v %v", i, ok, err)
		}
	}
	if ok, _ := srv.RX().Put(&Desc{Kind: KindEOF}); ok {
		t.Fatal("a full ring took another descriptor")
	}
	var d Desc
	for i := range Slots {
		if ok, err := app.RX().Peek(&d); !ok || err != nil || d.A != uint64(i) || d.Len != uint32(i+1) {
			t.Fatalf("peek %d: %v %v %+v", i, ok, err, d)
		}
		app.RX().Pop()
	}
	if ok, _ := app.RX().Peek(&d); ok {
		t.Fatal("an empty ring gave a descriptor")
	}
}

func TestHostileCounters(t *testing.T) {
	srv, app := newRegion(t)
	var d Desc
	app.TX().Head().Store(Slots + 5) // the app claims more than the ring holds
	if _, err := srv.TX().Peek(&d); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("head past the ring: %v, want ErrCorrupt", err)
	}
	app.TX().Head().Store(0)
	app.RX().Tail().Store(7) // the app's tail ahead of the server's head
	if _, err := srv.RX().Put(&Desc{Kind: KindEOF}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("tail past the head: %v, want ErrCorrupt", err)
	}
	tests := []Desc{
		{Kind: KindData, Off: AreaSize, Len: 1},
		{Kind: KindData, Off: AreaSize - 1, Len: 2},
		{Kind: KindData, Off: 0, Len: 0},
		{Kind: KindData, Off: 1 << 31, Len: 1 << 31},
	}
	for _, d := range tests {
		if err := d.Check(); !errors.Is(err, ErrBadDesc) {
			t.Errorf("%+v: %v, want ErrBadDesc", d, err)
		}
	}
}

func TestAllocWraps(t *testing.T) {
	var a Alloc
	written := 0
	taken := 0
	for round := 0; round < 100; round++ {
		off, n, ok := a.Take(5000)
		if !ok {
			a.Consumed(1)
			taken++
			continue
		}
		if int(off)+n > AreaSize {
			t.Fatalf("piece %d+%d runs off the area", off, n)
		}
		a.Posted(n)
		written += n
		if a.Outstanding() > 20 {
			a.Consumed(1)
		}
	}
	if written < 100000 {
		t.Fatalf("only %d bytes went through", written)
	}
}

func TestMapRefusesOtherFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(p, make([]byte, Size), 0o600)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Map(f, false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("map of a file with no header: %v", err)
	}
}

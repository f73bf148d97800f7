package pool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/memfd"
	"golang.org/x/sys/unix"
)

var (
	owner    = ipc.MakeEndpoint(2, 1)
	reader   = ipc.MakeEndpoint(5, 1)
	stranger = ipc.MakeEndpoint(7, 1)
)

var poolSeq atomic.Uint64

// testPath returns a pool name in /dev/shm unique to this process and call.
func testPath(tb testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "_").Replace(tb.Name())
	return fmt.Sprintf("newtsim-test-%d-%d-%s", os.Getpid(), poolSeq.Add(1), name)
}

// testConfig is a small pool: id 3, 4 buffers of 2048 bytes, owned by slot
// 2 and read by slot 5.
func testConfig(tb testing.TB) Config {
	return Config{ID: 3, Path: testPath(tb), Count: 4, Owner: owner, Readers: []ipc.Endpoint{reader}}
}

// create creates a pool and arranges for it to be closed and removed.
func create(tb testing.TB, c Config) *Pool {
	tb.Helper()
	p, err := Create(c)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Error(err)
		}
		if err := Remove(c.Path); err != nil {
			tb.Error(err)
		}
	})
	return p
}

// open opens a reader's mapping and arranges for it to be closed.
func open(tb testing.TB, c Config) *Pool {
	tb.Helper()
	p, err := Open(c)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

var checkErrs = []error{ErrWrongPool, ErrNoRights, ErrOutOfBounds, ErrSpansBuffers, ErrEmpty}

func TestRef(t *testing.T) {
	tests := []struct {
		id       uint8
		off, n   uint32
		wantText string
	}{
		{0, 0, 0, "0:0+0"},
		{3, 2048, 1500, "3:2048+1500"},
		{255, 1<<32 - 1, MaxLen, "255:4294967295+16777215"},
		{1, 1, 1, "1:1+1"},
	}
	for _, tt := range tests {
		r := MakeRef(tt.id, tt.off, tt.n)
		if r.Pool() != tt.id || r.Off() != tt.off || r.Len() != int(tt.n) {
			t.Errorf("MakeRef(%d, %d, %d) unpacks to %d, %d, %d", tt.id, tt.off, tt.n, r.Pool(), r.Off(), r.Len())
		}
		if got := r.String(); got != tt.wantText {
			t.Errorf("MakeRef(%d, %d, %d).String() = %q, want %q", tt.id, tt.off, tt.n, got, tt.wantText)
		}
	}
}

func TestMakeRefPanicsOnLongLength(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MakeRef with a 25-bit length did not panic")
		}
	}()
	MakeRef(1, 0, MaxLen+1)
}

func TestFilePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"newtsim-RUN-pool-tcp", "/dev/shm/newtsim-RUN-pool-tcp"},
		{"/tmp/x/pool", "/tmp/x/pool"},
		{"rel/pool", "rel/pool"},
	}
	for _, tt := range tests {
		if got := FilePath(tt.in); got != tt.want {
			t.Errorf("FilePath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCreateRejectsBadConfig(t *testing.T) {
	good := testConfig(t)
	tests := []struct {
		name   string
		modify func(*Config)
	}{
		{"no path", func(c *Config) { c.Path = "" }},
		{"negative buffer size", func(c *Config) { c.BufSize = -64 }},
		{"unaligned buffer size", func(c *Config) { c.BufSize = 1000 }},
		{"huge buffer size", func(c *Config) { c.BufSize = MaxBufSize * 2 }},
		{"no buffers", func(c *Config) { c.Count = 0 }},
		{"data region over 4 GiB", func(c *Config) { c.BufSize = 1 << 20; c.Count = 1<<12 + 1 }},
		{"owner none", func(c *Config) { c.Owner = ipc.None }},
		{"owner slot out of range", func(c *Config) { c.Owner = ipc.MakeEndpoint(ipc.MaxSlots, 1) }},
		{"reader slot out of range", func(c *Config) { c.Readers = []ipc.Endpoint{ipc.MakeEndpoint(100, 1)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.modify(&c)
			p, err := Create(c)
			if err == nil {
				p.Close()
				Remove(c.Path)
				t.Fatalf("Create(%+v) succeeded", c)
			}
			if _, serr := os.Stat(FilePath(c.Path)); c.Path != "" && serr == nil {
				t.Errorf("Create left %s behind after %v", c.Path, err)
			}
		})
	}
}

func TestCreateRefusesExistingFile(t *testing.T) {
	c := testConfig(t)
	create(t, c)
	if p, err := Create(c); err == nil {
		p.Close()
		t.Fatal("second Create of the same path succeeded")
	} else if !errors.Is(err, os.ErrExist) {
		t.Errorf("second Create: %v, want an os.ErrExist", err)
	}
	fi, err := os.Stat(FilePath(c.Path))
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("pool file mode %v, want 0600", m)
	}
	if fi.Size() != HeaderSize+4*DefaultBufSize {
		t.Errorf("pool file is %d bytes, want %d", fi.Size(), HeaderSize+4*DefaultBufSize)
	}
}

func TestCheck(t *testing.T) {
	c := testConfig(t)
	p := create(t, c)
	r := open(t, c)
	mem, err := NewMemory(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	const bs = DefaultBufSize
	const size = 4 * bs
	tests := []struct {
		name   string
		ref    Ref
		sender ipc.Endpoint
		want   error
	}{
		{"owner whole buffer", MakeRef(3, 0, bs), owner, nil},
		{"owner restarted", MakeRef(3, bs, 100), ipc.MakeEndpoint(2, 9), nil},
		{"reader", MakeRef(3, 2*bs+10, 1), reader, nil},
		{"reader restarted", MakeRef(3, 2*bs, bs), ipc.MakeEndpoint(5, 3), nil},
		{"last byte", MakeRef(3, size-1, 1), reader, nil},
		{"last buffer", MakeRef(3, size-bs, bs), owner, nil},
		{"wrong pool", MakeRef(4, 0, 10), owner, ErrWrongPool},
		{"wrong pool zero", MakeRef(0, 0, 10), owner, ErrWrongPool},
		{"stranger", MakeRef(3, 0, 10), stranger, ErrNoRights},
		{"sender none", MakeRef(3, 0, 10), ipc.None, ErrNoRights},
		{"sender generation zero", MakeRef(3, 0, 10), ipc.MakeEndpoint(2, 0), ErrNoRights},
		{"sender slot out of range", MakeRef(3, 0, 10), ipc.MakeEndpoint(ipc.MaxSlots+2, 1), ErrNoRights},
		{"kernel", MakeRef(3, 0, 10), ipc.Kernel, ErrNoRights},
		{"empty", MakeRef(3, 0, 0), owner, ErrEmpty},
		{"empty past the end", MakeRef(3, size+bs, 0), owner, ErrEmpty},
		{"offset at the end", MakeRef(3, size, 1), owner, ErrOutOfBounds},
		{"runs past the end", MakeRef(3, size-10, 11), reader, ErrOutOfBounds},
		{"offset max", MakeRef(3, 1<<32-1, 1), reader, ErrOutOfBounds},
		{"length max", MakeRef(3, 0, MaxLen), reader, ErrOutOfBounds},
		{"crosses into next buffer", MakeRef(3, bs-1, 2), owner, ErrSpansBuffers},
		{"longer than a buffer", MakeRef(3, 0, bs+1), reader, ErrSpansBuffers},
		{"whole pool", MakeRef(3, 0, size), reader, ErrSpansBuffers},
	}
	for _, pl := range []struct {
		name string
		p    *Pool
	}{{"owner", p}, {"reader", r}, {"memory", mem}, {"memory view", mem.View()}} {
		for _, tt := range tests {
			t.Run(pl.name+"/"+tt.name, func(t *testing.T) {
				before := pl.p.Stats().Refused.Total()
				err := pl.p.Check(tt.ref, tt.sender)
				for _, e := range checkErrs {
					if got := errors.Is(err, e); got != (e == tt.want) {
						t.Errorf("Check(%v, %v) = %v; errors.Is(%v) = %v", tt.ref, tt.sender, err, e, got)
					}
				}
				if (err == nil) != (tt.want == nil) {
					t.Fatalf("Check(%v, %v) = %v, want %v", tt.ref, tt.sender, err, tt.want)
				}
				wantRefused := before
				if tt.want != nil {
					wantRefused++
					if !strings.Contains(err.Error(), tt.ref.String()) {
						t.Errorf("error %q does not name the ref %v", err, tt.ref)
					}
					var re *RefError
					if !errors.As(err, &re) || re.Ref != tt.ref || re.Sender != tt.sender || re.Pool != 3 {
						t.Errorf("Check error %#v is not a RefError for %v from %v", err, tt.ref, tt.sender)
					}
				}
				if got := pl.p.Stats().Refused.Total(); got != wantRefused {
					t.Errorf("refusals went from %d to %d, want %d", before, got, wantRefused)
				}
				b, berr := pl.p.Bytes(tt.ref, tt.sender)
				if !errors.Is(berr, tt.want) || (tt.want == nil) != (berr == nil) {
					t.Errorf("Bytes(%v, %v) error %v, want %v", tt.ref, tt.sender, berr, tt.want)
				}
				if berr == nil && len(b) != tt.ref.Len() {
					t.Errorf("Bytes(%v) returned %d bytes", tt.ref, len(b))
				}
			})
		}
	}
	s := p.Stats().Refused
	want := Refusals{WrongPool: 4, NoRights: 10, Empty: 4, OutOfBounds: 8, SpansBuffers: 6}
	if s != want {
		t.Errorf("owner refusals %+v, want %+v (Check and Bytes each count)", s, want)
	}
}

func TestAllocUntilExhaustedThenFreeAll(t *testing.T) {
	c := testConfig(t)
	c.Count, c.BufSize = 8, 256
	p := create(t, c)
	seen := map[uint32]bool{}
	var refs []Ref
	for i := range c.Count {
		r, b, err := p.Alloc()
		if err != nil {
			t.Fatalf("Alloc %d: %v", i, err)
		}
		if r.Pool() != c.ID || r.Len() != c.BufSize || r.Off()%uint32(c.BufSize) != 0 || seen[r.Off()] {
			t.Fatalf("Alloc %d returned %v", i, r)
		}
		if len(b) != c.BufSize || cap(b) != c.BufSize {
			t.Fatalf("Alloc %d: buffer len %d cap %d, want %d", i, len(b), cap(b), c.BufSize)
		}
		for j := range b {
			b[j] = byte(i)
		}
		seen[r.Off()] = true
		refs = append(refs, r)
	}
	if _, _, err := p.Alloc(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Alloc on a full pool: %v, want ErrExhausted", err)
	}
	if s := p.Stats(); s.Allocated != c.Count || s.Free != 0 {
		t.Errorf("full pool stats %+v", s)
	}
	for i, r := range refs { // buffers did not overlap
		b, err := p.Bytes(r, owner)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range b {
			if v != byte(i) {
				t.Fatalf("buffer %v holds %d, want %d", r, v, i)
			}
		}
	}
	for _, r := range refs {
		if err := p.Free(p.Slice(r, 1)); err != nil {
			t.Fatalf("Free(%v): %v", r, err)
		}
	}
	if s := p.Stats(); s.Allocated != 0 || s.Free != c.Count || s.BadFrees != 0 {
		t.Errorf("empty pool stats %+v", s)
	}
	if _, _, err := p.Alloc(); err != nil {
		t.Errorf("Alloc after freeing all: %v", err)
	}
}

func TestFreeRefused(t *testing.T) {
	c := testConfig(t)
	c.Count, c.BufSize = 4, 128
	p := create(t, c)
	a, _, err := p.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	freed, _, err := p.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Free(freed); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ref  Ref
		want error
	}{
		{"double free", freed, ErrNotAllocated},
		{"never allocated", MakeRef(3, 3*128, 128), ErrNotAllocated},
		{"inside a buffer", MakeRef(3, a.Off()+1, 10), ErrNotBufferStart},
		{"past the end", MakeRef(3, 4*128, 128), ErrOutOfBounds},
		{"far past the end", MakeRef(3, 1<<32-128, 128), ErrOutOfBounds},
		{"wrong pool", MakeRef(9, a.Off(), 128), ErrWrongPool},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.Free(tt.ref); !errors.Is(err, tt.want) {
				t.Errorf("Free(%v) = %v, want %v", tt.ref, err, tt.want)
			}
		})
	}
	if s := p.Stats(); s.BadFrees != uint64(len(tests)) || s.Allocated != 1 {
		t.Errorf("stats %+v, want %d bad frees and 1 allocated", s, len(tests))
	}
	// The free list is intact: exactly the 3 other buffers come out, once.
	seen := map[uint32]bool{a.Off(): true}
	for range 3 {
		r, _, err := p.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		if seen[r.Off()] {
			t.Fatalf("Alloc handed out %v twice", r)
		}
		seen[r.Off()] = true
	}
	if _, _, err := p.Alloc(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Alloc: %v, want ErrExhausted", err)
	}
}

func TestSlice(t *testing.T) {
	c := testConfig(t)
	p := create(t, c)
	r, _, err := p.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	r2, _, err := p.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref  Ref
		n    int
		want Ref
	}{
		{r, 100, MakeRef(3, r.Off(), 100)},
		{r, DefaultBufSize, r},
		{r, 0, MakeRef(3, r.Off(), 0)},
		{MakeRef(3, r2.Off()+500, 10), 64, MakeRef(3, r2.Off(), 64)},
	}
	for _, tt := range tests {
		if got := p.Slice(tt.ref, tt.n); got != tt.want {
			t.Errorf("Slice(%v, %d) = %v, want %v", tt.ref, tt.n, got, tt.want)
		}
	}
	for _, n := range []int{-1, DefaultBufSize + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Slice(%v, %d) did not panic", r, n)
				}
			}()
			p.Slice(r, n)
		}()
	}
}

func TestOpenRefusesMismatch(t *testing.T) {
	c := testConfig(t)
	create(t, c)
	notPool := filepath.Join(t.TempDir(), "zeros")
	if err := os.WriteFile(notPool, make([]byte, c.fileSize()), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   error
	}{
		{"buffer size", func(c *Config) { c.BufSize = 1024; c.Count = 8 }, ErrBadHeader},
		{"file size", func(c *Config) { c.Count = 5 }, ErrBadHeader},
		{"pool id", func(c *Config) { c.ID = 4 }, ErrBadHeader},
		{"owner slot", func(c *Config) { c.Owner = stranger }, ErrBadHeader},
		{"not a pool", func(c *Config) { c.Path = notPool }, ErrBadHeader},
		{"missing", func(c *Config) { c.Path += "-missing" }, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := c
			tt.modify(&c)
			p, err := Open(c)
			if err == nil {
				p.Close()
				t.Fatalf("Open(%+v) succeeded", c)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Open: %v, want %v", err, tt.want)
			}
		})
	}
	// Another generation of the owner's slot is the same owner.
	c.Owner = ipc.MakeEndpoint(owner.Slot(), 7)
	open(t, c)
}

func TestReaderIsReadOnly(t *testing.T) {
	c := testConfig(t)
	p := create(t, c)
	r := open(t, c)
	if r.IsOwner() || !p.IsOwner() {
		t.Fatal("IsOwner wrong")
	}
	if _, _, err := r.Alloc(); !errors.Is(err, ErrNotOwner) {
		t.Errorf("reader Alloc: %v, want ErrNotOwner", err)
	}
	if err := r.Free(MakeRef(3, 0, 1)); !errors.Is(err, ErrNotOwner) {
		t.Errorf("reader Free: %v, want ErrNotOwner", err)
	}
	ref, buf, err := p.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, "hello")
	b, err := r.Bytes(p.Slice(ref, 5), owner)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "hello" {
		t.Fatalf("reader sees %q, want %q", b, "hello")
	}
	if got := r.Owner(); got != owner {
		t.Errorf("reader's Owner() = %v, want %v", got, owner)
	}
	if s := r.Stats(); s.Allocated != 0 || s.Free != 0 || s.Buffers != 4 {
		t.Errorf("reader stats %+v", s)
	}

	faulted := func() (faulted bool) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { faulted = recover() != nil }()
		b[0] = 'j'
		return false
	}()
	if !faulted {
		t.Error("a reader's write into the pool did not fault")
	}
	if string(b) != "hello" {
		t.Errorf("after the refused write the buffer holds %q", b)
	}
}

func TestCloseTwice(t *testing.T) {
	c := testConfig(t)
	p, err := Create(c)
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(c.Path)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := p.Alloc(); !errors.Is(err, ErrClosed) {
		t.Errorf("Alloc after Close: %v, want ErrClosed", err)
	}
	if _, err := p.Bytes(MakeRef(3, 0, 1), owner); !errors.Is(err, ErrClosed) {
		t.Errorf("Bytes after Close: %v, want ErrClosed", err)
	}
}

func TestRemoveMissing(t *testing.T) {
	if err := Remove(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Errorf("Remove of a missing file: %v", err)
	}
}

func TestConcurrentAllocFree(t *testing.T) {
	c := testConfig(t)
	c.Count, c.BufSize = 64, 64
	p := create(t, c)
	done := make(chan error)
	for g := range 4 {
		go func() {
			for i := range 1000 {
				r, b, err := p.Alloc()
				if errors.Is(err, ErrExhausted) {
					continue
				}
				if err != nil {
					done <- err
					return
				}
				b[0] = byte(g)
				_ = p.Stats()
				if err := p.Free(r); err != nil {
					done <- fmt.Errorf("iteration %d: %w", i, err)
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if s := p.Stats(); s.Allocated != 0 {
		t.Errorf("stats after balanced alloc/free: %+v", s)
	}
}

func BenchmarkCheck(b *testing.B) {
	c := testConfig(b)
	p := create(b, c)
	benches := []struct {
		name string
		ref  Ref
		ok   bool
	}{
		{"ok", MakeRef(3, DefaultBufSize, 1500), true},
		{"refused", MakeRef(3, DefaultBufSize-1, 1500), false},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Check(bb.ref, reader); (err == nil) != bb.ok {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBytes(b *testing.B) {
	c := testConfig(b)
	p := create(b, c)
	r := MakeRef(3, DefaultBufSize, 1500)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Bytes(r, reader); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAllocFree(b *testing.B) {
	c := testConfig(b)
	p := create(b, c)
	b.ReportAllocs()
	for b.Loop() {
		r, _, err := p.Alloc()
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Free(r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAdoptAfterRestart: the kernel creates a pool, its owner adopts it, a
// reader maps it; the owner is replaced and the new incarnation adopts the
// same file, and the reader sees what the new owner writes.
func TestAdoptAfterRestart(t *testing.T) {
	c := testConfig(t)
	k, err := Create(c)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	t.Cleanup(func() { Remove(c.Path) })
	own, err := Adopt(c)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r1, b1, err := own.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	copy(b1, "first")
	own.Close()

	c2 := c
	c2.Owner = ipc.MakeEndpoint(c.Owner.Slot(), c.Owner.Generation()+1)
	own2, err := Adopt(c2)
	if err != nil {
		t.Fatal(err)
	}
	defer own2.Close()
	if got := rd.Owner(); got != c2.Owner {
		t.Fatalf("reader sees owner %v, want the new incarnation %v", got, c2.Owner)
	}
	r2, b2, err := own2.Alloc() // everything is free again: buffer 0 first
	if err != nil || r2 != r1 {
		t.Fatalf("first Alloc after adopt: %v %v, want %v", r2, err, r1)
	}
	copy(b2, "second")
	got, err := rd.Bytes(own2.Slice(r2, 6), c2.Owner)
	if err != nil || string(got) != "second" {
		t.Fatalf("reader read %q %v", got, err)
	}
	other := c
	other.Owner = ipc.MakeEndpoint(c.Owner.Slot()+1, 1)
	if _, err := Adopt(other); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("adopt by another slot: %v, want ErrBadHeader", err)
	}
}

func TestMemoryPool(t *testing.T) {
	c := testConfig(t)
	c.Path = ""
	p, err := NewMemory(c)
	if err != nil {
		t.Fatal(err)
	}
	v := p.View()
	ref, buf, err := p.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, "frame")
	ref = p.Slice(ref, 5)
	if b, err := v.Bytes(ref, reader); err != nil || string(b) != "frame" {
		t.Fatalf("view Bytes(%v) = %q, %v; want the owner's bytes", ref, b, err)
	}
	if _, _, err := v.Alloc(); !errors.Is(err, ErrNotOwner) {
		t.Errorf("view Alloc: %v, want ErrNotOwner", err)
	}
	if err := v.Free(ref); !errors.Is(err, ErrNotOwner) {
		t.Errorf("view Free: %v, want ErrNotOwner", err)
	}
	if v.Owner() != owner || v.IsOwner() {
		t.Errorf("view owner %v (is owner %v), want %v read-only", v.Owner(), v.IsOwner(), owner)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Bytes(ref, reader); err != nil {
		t.Fatalf("owner after the view closed: %v", err)
	}
	if err := p.Free(ref); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Allocated != 0 || st.Free != c.Count {
		t.Errorf("stats %+v, want every buffer free", st)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Alloc(); !errors.Is(err, ErrClosed) {
		t.Errorf("Alloc after Close: %v, want ErrClosed", err)
	}
	if _, err := NewMemory(Config{ID: 1, Count: 0, Owner: owner}); err == nil {
		t.Error("NewMemory took a pool of no buffers")
	}
}

// TestSealedFile: a pool made in a sealed memfd (a run's pools) is
// created, adopted by a restarted owner and opened read-only by a reader
// from descriptors, never a name; no holder can truncate it, and a
// reader's read-only descriptor cannot be mapped for writing. A pool in a
// named file, as a run's were, can be truncated by whoever opens it.
func TestSealedFile(t *testing.T) {
	c, err := testConfig(t).normalize()
	if err != nil {
		t.Fatal(err)
	}
	f, err := memfd.Create(c.Path, c.fileSize())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c.File = f
	p, err := Create(c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ref, buf, err := p.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, "sealed")
	ref = p.Slice(ref, 6)
	if _, err := os.Stat(FilePath(c.Path)); !os.IsNotExist(err) {
		t.Errorf("the pool has a name: %v", err)
	}
	again, err := Adopt(c)
	if err != nil {
		t.Fatalf("a restarted owner adopts it: %v", err)
	}
	defer again.Close()
	ro, err := memfd.ReadOnly(f)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rc := c
	rc.File = ro
	r, err := Open(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, err := r.Bytes(ref, owner); err != nil || string(b) != "sealed" {
		t.Fatalf("the reader reads %q (%v)", b, err)
	}
	if _, err := Adopt(rc); err == nil {
		t.Error("a reader's descriptor was adopted read-write")
	}
	for _, h := range []*os.File{f, ro} {
		if err := h.Truncate(HeaderSize); !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
			t.Errorf("truncating %s: %v, want EPERM", h.Name(), err)
		}
	}
	if b, err := r.Bytes(ref, owner); err != nil || string(b) != "sealed" {
		t.Fatalf("after the truncations the reader reads %q (%v)", b, err)
	}

	named := testConfig(t)
	np := create(t, named)
	np.Close()
	if err := os.Truncate(FilePath(named.Path), HeaderSize); err != nil {
		t.Errorf("a named pool: truncate: %v", err)
	}
}

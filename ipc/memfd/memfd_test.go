package memfd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSealed: a file Create makes cannot be truncated, grown or unsealed
// by anyone holding it, and a read-only copy cannot be mapped for
// writing; a /dev/shm-style file (the old run files) can be truncated by
// whoever opens it, which is what the seals stop.
func TestSealed(t *testing.T) {
	f, err := Create("newtsim-test", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := CheckSealed(f); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	mem[4095] = 1
	for _, size := range []int64{0, 100, 8192} {
		if err := f.Truncate(size); !errors.Is(err, unix.EPERM) {
			t.Errorf("truncate to %d: %v, want EPERM", size, err)
		}
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); !errors.Is(err, unix.EPERM) {
		t.Errorf("adding a seal: %v, want EPERM (sealed seals)", err)
	}
	if mem[4095] != 1 {
		t.Error("the mapping lost its last byte")
	}
	if st, err := f.Stat(); err != nil || st.Size() != 4096 {
		t.Errorf("size %v (%v), want 4096", st.Size(), err)
	}

	ro, err := ReadOnly(f)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := unix.Mmap(int(ro.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); !errors.Is(err, unix.EACCES) {
		t.Errorf("mapping the read-only copy for writing: %v, want EACCES", err)
	}
	if r, err := unix.Mmap(int(ro.Fd()), 0, 4096, unix.PROT_READ, unix.MAP_SHARED); err != nil || r[4095] != 1 {
		t.Errorf("mapping the read-only copy for reading: %v", err)
	} else {
		unix.Munmap(r)
	}
	if err := CheckSealed(ro); err != nil {
		t.Errorf("the read-only copy: %v", err)
	}

	// A named file, as run files were, is not sealed.
	named, err := os.Create(filepath.Join(t.TempDir(), "named"))
	if err != nil {
		t.Fatal(err)
	}
	defer named.Close()
	if err := named.Truncate(4096); err != nil {
		t.Fatal(err)
	}
	if err := CheckSealed(named); !errors.Is(err, ErrNotSealed) {
		t.Errorf("a named file: %v, want ErrNotSealed", err)
	}
}

func TestCreateRefusesNoSize(t *testing.T) {
	if f, err := Create("x", 0); err == nil {
		f.Close()
		t.Fatal("Create made an empty file")
	}
}

package runfiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kmsg"
	"github.com/newtsim/newtsim/ipc/memfd"
	"github.com/newtsim/newtsim/ipc/shm"
)

func TestNames(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{InboxName("0a1b2c3d", "tcp"), "newtsim-0a1b2c3d-tcp.inbox"},
		{PoolName("0a1b2c3d", "ip"), "newtsim-0a1b2c3d-ip.pool"},
		{AwakeName("0a1b2c3d", "tcp"), "newtsim-0a1b2c3d-tcp.awake"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("path = %q, want %q", tt.got, tt.want)
		}
		name := tt.got[strings.LastIndexByte(tt.got, '/')+1:]
		if run, ok := shm.RunOf(name); !ok || run != "0a1b2c3d" {
			t.Errorf("shm.RunOf(%q) = %q, %v: a clean-up would not find it", tt.got, run, ok)
		}
	}
}

func TestPoolConfig(t *testing.T) {
	owner := ipc.MakeEndpoint(3, 7)
	c := PoolConfig("0a1b2c3d", "ip", 3, owner, 4)
	if c.ID != 3 || c.Owner != owner || c.Count != PoolBuffers || c.Path != PoolName("0a1b2c3d", "ip") {
		t.Errorf("PoolConfig = %+v", c)
	}
	if len(c.Readers) != 4 || c.Readers[0].Slot() != 1 || c.Readers[3].Slot() != 4 {
		t.Errorf("readers = %v, want slots 1-4", c.Readers)
	}
}

// TestHandOver: the files Send hands over arrive, each under its slot, as
// descriptors of the same sealed files; a packet that is not a hand-over
// is refused.
func TestHandOver(t *testing.T) {
	kend, pend, err := kmsg.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(kend)
	defer unix.Close(pend)
	sent := Files{Inboxes: map[int]*os.File{}, Pools: map[int]*os.File{}, Awake: map[int]*os.File{}}
	for _, slot := range []int{1, 3, 63} {
		for _, m := range []map[int]*os.File{sent.Inboxes, sent.Pools, sent.Awake} {
			f, err := memfd.Create("test", int64(4096*slot))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m[slot] = f
		}
	}
	owners, err := memfd.Create("owners", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer owners.Close()
	sent.Owners = owners
	delete(sent.Pools, 3)
	delete(sent.Awake, 1)
	delete(sent.Awake, 63)
	if err := sent.Send(kend); err != nil {
		t.Fatal(err)
	}
	got, err := Receive(pend)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if len(got.Inboxes) != len(sent.Inboxes) || len(got.Pools) != len(sent.Pools) || got.Pools[3] != nil ||
		len(got.Awake) != 1 || got.Awake[3] == nil || got.Owners == nil {
		t.Fatalf("got %d inboxes and pools %v, want %d and %v", len(got.Inboxes), got.Pools, len(sent.Inboxes), sent.Pools)
	}
	for slot, f := range got.Pools {
		if st, err := f.Stat(); err != nil || st.Size() != int64(4096*slot) {
			t.Errorf("pool of slot %d: %v bytes (%v)", slot, st.Size(), err)
		}
	}
	for slot, f := range got.Inboxes {
		st, err := f.Stat()
		if err != nil || st.Size() != int64(4096*slot) {
			t.Errorf("inbox of slot %d: %v bytes (%v)", slot, st.Size(), err)
		}
		if err := memfd.CheckSealed(f); err != nil {
			t.Errorf("inbox of slot %d: %v", slot, err)
		}
	}

	if err := kmsg.SendFiles(kend, []byte("boot args"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Receive(pend); err == nil {
		t.Error("Receive took a packet that is no hand-over")
	}
	named, err := os.Create(filepath.Join(t.TempDir(), "inbox"))
	if err != nil {
		t.Fatal(err)
	}
	defer named.Close()
	if err := (Files{Inboxes: map[int]*os.File{1: named}}).Send(kend); err != nil {
		t.Fatal(err)
	}
	if _, err := Receive(pend); !errors.Is(err, memfd.ErrNotSealed) {
		t.Errorf("Receive took a file anybody can truncate: %v", err)
	}
}

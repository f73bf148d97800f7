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
		{RingName("0a1b2c3d", "tcp", "ip"), "newtsim-0a1b2c3d-tcp.from-ip.ring"},
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
	sized := func(n int) *os.File {
		f, err := memfd.Create("test", int64(n))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	sent := Files{Inbox: shm.InboxFiles{Rings: map[int]*os.File{}, Page: sized(64)}, Peers: map[int]shm.PeerFiles{},
		Pools: map[int]*os.File{}, Awake: map[int]*os.File{}}
	for _, slot := range []int{1, 3, 63} {
		for _, m := range []map[int]*os.File{sent.Inbox.Rings, sent.Pools, sent.Awake} {
			m[slot] = sized(4096 * slot)
		}
		sent.Peers[slot] = shm.PeerFiles{Ring: sized(4096 * slot), Page: sized(64 * slot)}
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
	if len(got.Inbox.Rings) != len(sent.Inbox.Rings) || got.Inbox.Page == nil || len(got.Peers) != len(sent.Peers) ||
		len(got.Pools) != len(sent.Pools) || got.Pools[3] != nil || len(got.Awake) != 1 || got.Awake[3] == nil || got.Owners == nil {
		t.Fatalf("got %d rings, %d peers and pools %v, want %d, %d and %v", len(got.Inbox.Rings), len(got.Peers), got.Pools,
			len(sent.Inbox.Rings), len(sent.Peers), sent.Pools)
	}
	for slot, f := range got.Pools {
		if st, err := f.Stat(); err != nil || st.Size() != int64(4096*slot) {
			t.Errorf("pool of slot %d: %v bytes (%v)", slot, st.Size(), err)
		}
	}
	size := func(what string, slot int, f *os.File, want int) {
		t.Helper()
		st, err := f.Stat()
		if err != nil || st.Size() != int64(want) {
			t.Errorf("%s of slot %d: %v bytes (%v), want %d", what, slot, st.Size(), err, want)
		}
		if err := memfd.CheckSealed(f); err != nil {
			t.Errorf("%s of slot %d: %v", what, slot, err)
		}
	}
	for slot, f := range got.Inbox.Rings {
		size("ring", slot, f, 4096*slot)
	}
	size("page", 0, got.Inbox.Page, 64)
	for slot, pf := range got.Peers {
		size("peer ring", slot, pf.Ring, 4096*slot)
		size("peer page", slot, pf.Page, 64*slot)
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
	if err := (Files{Inbox: shm.InboxFiles{Rings: map[int]*os.File{1: named}}}).Send(kend); err != nil {
		t.Fatal(err)
	}
	if _, err := Receive(pend); !errors.Is(err, memfd.ErrNotSealed) {
		t.Errorf("Receive took a file anybody can truncate: %v", err)
	}
}

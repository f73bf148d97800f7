package runfiles

import (
	"testing"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/shm"
)

func TestNames(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{InboxPath("0a1b2c3d", "tcp"), "/dev/shm/newtsim-0a1b2c3d-tcp.inbox"},
		{PoolPath("0a1b2c3d", "ip"), "/dev/shm/newtsim-0a1b2c3d-ip.pool"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("path = %q, want %q", tt.got, tt.want)
		}
		if run, ok := shm.RunOf(tt.got[len(shm.Dir)+1:]); !ok || run != "0a1b2c3d" {
			t.Errorf("shm.RunOf(%q) = %q, %v: a clean-up would not find it", tt.got, run, ok)
		}
	}
}

func TestPoolConfig(t *testing.T) {
	owner := ipc.MakeEndpoint(3, 7)
	c := PoolConfig("0a1b2c3d", "ip", 3, owner, 4)
	if c.ID != 3 || c.Owner != owner || c.Count != PoolBuffers || c.Path != PoolPath("0a1b2c3d", "ip") {
		t.Errorf("PoolConfig = %+v", c)
	}
	if len(c.Readers) != 4 || c.Readers[0].Slot() != 1 || c.Readers[3].Slot() != 4 {
		t.Errorf("readers = %v, want slots 1-4", c.Readers)
	}
}

// Package runfiles names the shared-memory files of a run and says how
// they are laid out: each process's inbox (the rings its peers send on) and
// its buffer pool. The kernel creates them, and each server opens its own
// and its peers' by the same names, so both sides read them from here.
package runfiles

import (
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/shm"
)

// InboxPath is the /dev/shm path of a process's inbox in a run.
func InboxPath(run, name string) string { return shm.Path(run, name+".inbox") }

// PoolPath is the /dev/shm path of a process's buffer pool in a run.
func PoolPath(run, name string) string { return shm.Path(run, name+".pool") }

// PoolBuffers is the number of buffers in each process's pool.
const PoolBuffers = 512

// PoolConfig describes the buffer pool of the process in slot: its id is
// the slot, and every one of the run's servers (slots 1 to servers) may
// read it.
func PoolConfig(run, name string, slot int, owner ipc.Endpoint, servers int) pool.Config {
	readers := make([]ipc.Endpoint, 0, servers)
	for s := 1; s <= servers; s++ {
		readers = append(readers, ipc.MakeEndpoint(s, 1))
	}
	return pool.Config{ID: uint8(slot), Path: PoolPath(run, name), BufSize: pool.DefaultBufSize,
		Count: PoolBuffers, Owner: owner, Readers: readers}
}

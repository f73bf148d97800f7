// Package runfiles names the shared-memory files of a run, says how they
// are laid out, and hands them over: each process's inbox (a ring file
// for each process that may send to it, and its page) and its buffer
// pool. The kernel makes them, as sealed
// memfds (package memfd) with no name in /dev/shm, and hands each process
// the descriptors of the files it may map on its kernel connection (Send,
// Receive); a restarted process gets them again the same way.
package runfiles

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kmsg"
	"github.com/newtsim/newtsim/ipc/memfd"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/shm"
)

// InboxName is the name of a process's page in a run (its wake word and
// its rings' tails, shm.InboxFiles): the memfd's name, which shows in
// /proc (as "/memfd:NAME"), never a path anyone can open.
func InboxName(run, name string) string { return shm.Prefix(run) + name + ".inbox" }

// RingName is the name of the ring from the process called sender to the
// one called name, in a run: a memfd's name, as InboxName is a page's.
func RingName(run, name, sender string) string {
	return shm.Prefix(run) + name + ".from-" + sender + ".ring"
}

// PoolName is the name of a process's buffer pool in a run: the memfd's
// name, as InboxName is an inbox's.
func PoolName(run, name string) string { return shm.Prefix(run) + name + ".pool" }

// AwakeName is the name of a transport server's awake word: an exposed
// socket region (package sockbuf) whose state word the server keeps at 1
// while it runs and 0 before it sleeps, which its applications read to
// know whether a doorbell needs a message (docs/EXPOSED.md).
func AwakeName(run, name string) string { return shm.Prefix(run) + name + ".awake" }

// OwnersName is the name of a run's owners table (shm.Owners).
func OwnersName(run string) string { return shm.Prefix(run) + "owners" }

// HasAwake reports whether a process of role has an awake word: the
// roles that serve exposed sockets.
func HasAwake(role string) bool { return role == "tcp" }

// PoolBuffers is the number of buffers in each process's pool.
const PoolBuffers = 512

// PoolBufSize is the size of every buffer of a run's pools: room for the
// largest IPv4 packet (65535 bytes), which the host's loopback carries, as
// Linux's lo does (MTU 65536), so that a TCP segment within the host, and
// an application's send or receive on the message backend, moves up to
// 64 KiB in one message rather than a frame's worth. A pool is a sealed
// memfd whose pages are only allocated when first written, so a frame in
// a buffer still costs a page, not 64 KiB.
const PoolBufSize = 64 << 10

// PoolConfig describes the buffer pool of the process in slot: its id is
// the slot, and every one of the run's servers (slots 1 to servers) may
// read it. Its file is to be set (pool.Config.File): the memfd the kernel
// made, or the descriptor it handed over.
func PoolConfig(run, name string, slot int, owner ipc.Endpoint, servers int) pool.Config {
	readers := make([]ipc.Endpoint, 0, servers)
	for s := 1; s <= servers; s++ {
		readers = append(readers, ipc.MakeEndpoint(s, 1))
	}
	return pool.Config{ID: uint8(slot), Path: PoolName(run, name), BufSize: PoolBufSize,
		Count: PoolBuffers, Owner: owner, Readers: readers}
}

// Files are the run files one process may map, each by the slot of the
// process it belongs to.
type Files struct {
	// Inbox is the process's own inbox (shm transport only): its rings
	// by their senders' slots, read-only, and its page, read-write.
	Inbox shm.InboxFiles
	// Peers are, by slot, its files of the inbox of each process it may
	// send to (shm transport only): its own ring there, read-write, and
	// the receiver's page, read-only.
	Peers map[int]shm.PeerFiles
	// Pools are the process's own pool, read-write, and every other
	// pool of the run, read-only (a buffer reference may travel past the
	// next hop).
	Pools map[int]*os.File
	// Awake are the awake words (AwakeName): the process's own, read-write,
	// if it serves exposed sockets, and read-only those of the servers it
	// may send to that do.
	Awake map[int]*os.File
	// Owners is the run's owners table (shm.Owners), read-only: which
	// incarnation owns each inbox (shm transport only).
	Owners *os.File
}

// magic opens the tag of the packet that hands Files over.
const magic = "NEWTFILE"

// File kinds in the tag, each with a slot.
const (
	kindRing     = 'r' // a ring of the process's inbox, by its sender
	kindInbox    = 'i' // the process's own page
	kindPeerRing = 's' // its ring in a peer's inbox, by the peer
	kindPeerPage = 'w' // a peer's page, by the peer
	kindPool     = 'p'
	kindAwake    = 'a'
	kindOwners   = 'o'
)

// Send hands the files over on the kernel's end fd of a process's
// connection, in one packet (kmsg.SendFiles): the kernel sends it first
// on a new connection, and to a standby right after its boot arguments.
func (fs Files) Send(fd int) error {
	tag := []byte(magic)
	var files []*os.File
	for _, slot := range slices.Sorted(maps.Keys(fs.Inbox.Rings)) {
		tag = append(tag, kindRing, byte(slot))
		files = append(files, fs.Inbox.Rings[slot])
	}
	if fs.Inbox.Page != nil {
		tag = append(tag, kindInbox, 0)
		files = append(files, fs.Inbox.Page)
	}
	for _, slot := range slices.Sorted(maps.Keys(fs.Peers)) {
		tag = append(tag, kindPeerRing, byte(slot), kindPeerPage, byte(slot))
		files = append(files, fs.Peers[slot].Ring, fs.Peers[slot].Page)
	}
	for _, slot := range slices.Sorted(maps.Keys(fs.Pools)) {
		tag = append(tag, kindPool, byte(slot))
		files = append(files, fs.Pools[slot])
	}
	for _, slot := range slices.Sorted(maps.Keys(fs.Awake)) {
		tag = append(tag, kindAwake, byte(slot))
		files = append(files, fs.Awake[slot])
	}
	if fs.Owners != nil {
		tag = append(tag, kindOwners, 0)
		files = append(files, fs.Owners)
	}
	if err := kmsg.SendFiles(fd, tag, files); err != nil {
		return fmt.Errorf("runfiles: %w", err)
	}
	return nil
}

// Receive takes the files the kernel hands over on a process's end fd of
// its connection: the first packet there. A packet that is not Send's, or
// a file in it that is not sealed against resizing (memfd.CheckSealed),
// is an error, and its descriptors are closed.
func Receive(fd int) (Files, error) {
	tag, files, err := kmsg.ReceiveFiles(fd)
	if err != nil {
		return Files{}, fmt.Errorf("runfiles: %w", err)
	}
	fs, err := parse(tag, files)
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		return Files{}, err
	}
	return fs, nil
}

func parse(tag []byte, files []*os.File) (Files, error) {
	rest, ok := bytes.CutPrefix(tag, []byte(magic))
	if !ok || len(rest) != 2*len(files) {
		return Files{}, fmt.Errorf("runfiles: a packet of %d bytes with %d files is not a hand-over", len(tag), len(files))
	}
	fs := Files{Inbox: shm.InboxFiles{Rings: map[int]*os.File{}}, Peers: map[int]shm.PeerFiles{},
		Pools: map[int]*os.File{}, Awake: map[int]*os.File{}}
	for i, f := range files {
		kind, slot := rest[2*i], int(rest[2*i+1])
		if slot >= ipc.MaxSlots {
			return Files{}, fmt.Errorf("runfiles: file %d for slot %d", i, slot)
		}
		var m map[int]*os.File
		var one **os.File // a kind of which there is one, for slot 0
		switch kind {
		case kindOwners:
			one = &fs.Owners
		case kindInbox:
			one = &fs.Inbox.Page
		case kindPeerRing, kindPeerPage:
			pf := fs.Peers[slot]
			at := &pf.Ring
			if kind == kindPeerPage {
				at = &pf.Page
			}
			if *at != nil {
				return Files{}, fmt.Errorf("runfiles: two files of kind %q for slot %d", kind, slot)
			}
			if err := memfd.CheckSealed(f); err != nil {
				return Files{}, fmt.Errorf("runfiles: file of kind %q for slot %d: %w", kind, slot, err)
			}
			*at = f
			fs.Peers[slot] = pf
			continue
		case kindRing:
			m = fs.Inbox.Rings
		case kindPool:
			m = fs.Pools
		case kindAwake:
			m = fs.Awake
		default:
			return Files{}, fmt.Errorf("runfiles: file %d of kind %q", i, kind)
		}
		if one != nil {
			if *one != nil || slot != 0 {
				return Files{}, fmt.Errorf("runfiles: a second file of kind %q, or one for slot %d", kind, slot)
			}
			if err := memfd.CheckSealed(f); err != nil {
				return Files{}, fmt.Errorf("runfiles: file of kind %q: %w", kind, err)
			}
			*one = f
			continue
		}
		if m[slot] != nil {
			return Files{}, fmt.Errorf("runfiles: two files of kind %q for slot %d", kind, slot)
		}
		if err := memfd.CheckSealed(f); err != nil {
			return Files{}, fmt.Errorf("runfiles: file of kind %q for slot %d: %w", kind, slot, err)
		}
		m[slot] = f
	}
	for slot, pf := range fs.Peers {
		if pf.Ring == nil || pf.Page == nil {
			return Files{}, fmt.Errorf("runfiles: the ring or the page of peer %d missing", slot)
		}
	}
	return fs, nil
}

// Close closes every file.
func (fs Files) Close() {
	fs.Inbox.Close()
	for _, pf := range fs.Peers {
		if pf.Ring != nil {
			pf.Ring.Close()
		}
		if pf.Page != nil {
			pf.Page.Close()
		}
	}
	for _, f := range fs.Pools {
		f.Close()
	}
	for _, f := range fs.Awake {
		f.Close()
	}
	if fs.Owners != nil {
		fs.Owners.Close()
	}
}

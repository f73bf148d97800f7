// Package sandbox gives each process of a run a protection domain, as a
// real OS does: a user id of its own, groups that let it open exactly the
// shared files its links need, and a seccomp filter that allows only the
// system calls its role makes. docs/SANDBOX.md describes the whole scheme.
//
// The ids come from a range that clashes with no system user: the run's
// group is Base, and the process in slot s runs as user and group Base+s
// (slot 0, the kernel, stays root). No /etc/passwd entries are needed: a
// process gets its ids from the kernel process that starts it
// (syscall.Credential), or, where it needs root for its set-up (a nic that
// opens a TAP device), drops to them itself with Drop before it serves.
package sandbox

import (
	"fmt"
	"os"
	"slices"
	"syscall"
)

// DefaultBase is the first id of the default range: ids DefaultBase to
// DefaultBase+Span-1, above the 60000 that Debian and most distributions
// leave to local users, below nobody (65534).
const DefaultBase = 61000

// Span is how many ids a run uses: the run's group and one per slot (the
// kernel's endpoint table has 64).
const Span = 64

// IDs is a run's id range. The zero value is no sandbox: processes run as
// their parent does, unfiltered.
type IDs struct {
	// Base is the run's group id; the process in slot s is user and
	// group Base+s. 0: the sandbox is off.
	Base int
}

// On reports whether the run is sandboxed.
func (r IDs) On() bool { return r.Base != 0 }

// Check says whether the range is usable: inside 1000-(2^31-1-Span), away
// from root, system users and the overflow id.
func (r IDs) Check() error {
	if !r.On() {
		return nil
	}
	if r.Base < 1000 || r.Base > 1<<31-1-Span || (r.Base <= 65534 && 65534 < r.Base+Span) {
		return fmt.Errorf("sandbox: id base %d: want 1000 or more, and a range of %d that misses 65534 (nobody)", r.Base, Span)
	}
	return nil
}

// RunGroup is the group every process of the run is in: the group of the
// files all of them read (buffer pools) and of the directories the
// launcher shares with them.
func (r IDs) RunGroup() int { return r.Base }

// User is the user id of the process in slot.
func (r IDs) User(slot int) int { return r.Base + slot }

// Group is the group of the process in slot: it owns that process's
// inbox, whose senders are its members.
func (r IDs) Group(slot int) int { return r.Base + slot }

// Domain is what a process runs as.
type Domain struct {
	UID, GID int
	// Groups are its supplementary groups: the run's, and the group of
	// every process it may send to.
	Groups []int
}

// Domain returns the domain of the process in slot, linked to peers
// (slots it may send to).
func (r IDs) Domain(slot int, peers []int) Domain {
	d := Domain{UID: r.User(slot), GID: r.Group(slot), Groups: []int{r.RunGroup()}}
	for _, p := range peers {
		if g := r.Group(p); p > 0 && !slices.Contains(d.Groups, g) {
			d.Groups = append(d.Groups, g)
		}
	}
	slices.Sort(d.Groups)
	return d
}

// Credential is d as os/exec starts a child with it.
func (d Domain) Credential() *syscall.Credential {
	c := &syscall.Credential{Uid: uint32(d.UID), Gid: uint32(d.GID)}
	for _, g := range d.Groups {
		c.Groups = append(c.Groups, uint32(g))
	}
	return c
}

// Drop makes the calling process d, every thread of it, for good: groups
// first, then group, then user (after which it could no longer change
// them). Go applies each to all threads.
func (d Domain) Drop() error {
	if err := syscall.Setgroups(d.Groups); err != nil {
		return fmt.Errorf("sandbox: setgroups: %w", err)
	}
	if err := syscall.Setresgid(d.GID, d.GID, d.GID); err != nil {
		return fmt.Errorf("sandbox: setresgid %d: %w", d.GID, err)
	}
	if err := syscall.Setresuid(d.UID, d.UID, d.UID); err != nil {
		return fmt.Errorf("sandbox: setresuid %d: %w", d.UID, err)
	}
	if os.Geteuid() != d.UID {
		return fmt.Errorf("sandbox: still user %d after dropping to %d", os.Geteuid(), d.UID)
	}
	return nil
}

// Enter puts the calling process, the one in slot of the run whose ids
// are r, linked to peers, into its protection domain: it drops to the
// domain's ids if it still runs as root (a privileged set-up) unless the
// filter keeps it root (Filter.Root), then installs the filter called
// filter. A process calls it once its set-up is
// done and before it handles its first message.
func (r IDs) Enter(slot int, peers []int, filter string) error {
	f, ok := Lookup(filter)
	if !ok {
		return fmt.Errorf("sandbox: unknown filter %q", filter)
	}
	if d := r.Domain(slot, peers); os.Geteuid() != d.UID && !f.Root {
		if err := d.Drop(); err != nil {
			return err
		}
	}
	return f.Install()
}

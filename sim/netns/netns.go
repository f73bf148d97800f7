// Package netns makes network namespaces for tests and demonstrations, so
// that traffic between Linux programs and a simulated host never leaves the
// machine: every address used lives inside a namespace made here, from
// 198.18.0.0/15 (the range RFC 2544 sets aside for benchmark networks).
//
// It speaks to the kernel itself, through netlink (package
// github.com/vishvananda/netlink) and setns(2), and needs no program: a
// machine without iproute2 runs every benchmark. Namespaces are named and
// bound under /run/netns as `ip netns add` binds them, so `ip netns exec
// NAME ...` still reaches them where iproute2 is installed.
//
// It also plays Linux's side of a conversation with a simulated host from
// Go (peer.go): HTTP, TCP and UDP on sockets opened in the namespace, ICMP
// echo through a raw socket, Linux's counters and TCP sockets read from
// inside; the tests use it where they once ran curl, nc, socat, ping, ss
// and ip (docs/TESTING.md).
package netns

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Dir is where named namespaces are bound, as iproute2 binds them
// (/var/run/netns is the same directory).
const Dir = "/run/netns"

// NS is a named network namespace.
type NS struct {
	Name string
}

// Path is the namespace's file, which setns(2) takes.
func (ns *NS) Path() string { return filepath.Join(Dir, ns.Name) }

// New creates a namespace named prefix plus a random suffix, with its
// loopback up.
func New(prefix string) (*NS, error) {
	var b [3]byte
	rand.Read(b[:])
	return Create(prefix + hex.EncodeToString(b[:]))
}

// List returns the names of the machine's named network namespaces.
func List() ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, nil
}

// onThread runs f on an OS thread locked to it, which f may move into
// another network namespace: the thread is moved back to this process's
// namespace afterwards, and only then serves other goroutines again; where
// that fails it ends with the goroutine (the main thread, which cannot end,
// is parked for good), so no other goroutine ever runs in the namespace.
func onThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer unix.Close(home)
		ferr := f()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// Create creates the namespace called name, with its loopback up.
func Create(name string) (*NS, error) {
	ns := &NS{Name: name}
	if strings.ContainsAny(name, "/\x00") || name == "" || name == "." || name == ".." {
		return nil, fmt.Errorf("netns: bad name %q", name)
	}
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	f, err := os.OpenFile(ns.Path(), os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return nil, fmt.Errorf("netns: create %s: %w", name, err)
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, ns.Path(), "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", ns.Path(), err)
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netns: create %s: %w", name, err)
	}
	return ns, nil
}

// Do runs f with its OS thread in the namespace: a socket f opens, a
// netlink call it makes, a /proc/sys file it writes belong to the
// namespace.
func (ns *NS) Do(f func() error) error {
	fd, err := unix.Open(ns.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns.Name, err)
	}
	defer unix.Close(fd)
	return onThread(func() error {
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("netns %s: setns: %w", ns.Name, err)
		}
		return f()
	})
}

// Adopt moves a network interface of the calling process's namespace into
// ns, gives it addr (such as "198.18.0.1/24") and brings it up.
func (ns *NS) Adopt(ifname, addr string) error {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("netns: %s: %w", ifname, err)
	}
	fd, err := unix.Open(ns.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns.Name, err)
	}
	defer unix.Close(fd)
	if err := netlink.LinkSetNsFd(link, fd); err != nil {
		return fmt.Errorf("netns: move %s into %s: %w", ifname, ns.Name, err)
	}
	return ns.Do(func() error { return addrUp(ifname, addr) })
}

// addrUp gives the interface ifname of the thread's namespace addr and
// brings it up.
func addrUp(ifname, addr string) error {
	p, err := netip.ParsePrefix(addr)
	if err != nil {
		return fmt.Errorf("netns: address %q: %w", addr, err)
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("netns: %s: %w", ifname, err)
	}
	a, err := netlink.ParseAddr(p.String())
	if err != nil {
		return fmt.Errorf("netns: address %q: %w", addr, err)
	}
	if err := netlink.AddrAdd(link, a); err != nil {
		return fmt.Errorf("netns: add %s to %s: %w", addr, ifname, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("netns: bring %s up: %w", ifname, err)
	}
	return nil
}

// AddTap makes a persistent TAP device called name in ns (as `ip tuntap
// add NAME mode tap` does), with addr on it and up: a process attaches to
// it later, from any namespace, by opening it through the namespace.
func (ns *NS) AddTap(name, addr string) error {
	return ns.Do(func() error {
		tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TAP,
			Flags: netlink.TUNTAP_NO_PI}
		if err := netlink.LinkAdd(tap); err != nil {
			return fmt.Errorf("netns: add TAP %s: %w", name, err)
		}
		for _, f := range tap.Fds { // it persists without them
			f.Close()
		}
		return addrUp(name, addr)
	})
}

// VethPair makes a veth pair, a and b, in the calling process's namespace,
// for Adopt to move each end where it goes.
func VethPair(a, b string) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}
	if err := netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("netns: add veth pair %s and %s: %w", a, b, err)
	}
	return nil
}

// DeleteLink deletes the interface name of the calling process's
// namespace (both ends, for a veth pair).
func DeleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("netns: %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("netns: delete %s: %w", name, err)
	}
	return nil
}

// Sysctl sets a kernel parameter of the namespace, such as
// "net.ipv4.tcp_tw_reuse", as `sysctl -w` run in it would.
func (ns *NS) Sysctl(key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return ns.Do(func() error {
		// /proc/sys/net shows the namespace of the thread that opens it.
		if err := os.WriteFile(path, []byte(value+"\n"), 0o644); err != nil {
			return fmt.Errorf("netns %s: sysctl %s=%s: %w", ns.Name, key, value, err)
		}
		return nil
	})
}

// Start starts cmd inside the namespace: the child is forked from a thread
// in it. cmd must not ask for a parent-death signal (the thread that forks
// it ends at once); package spawn's Spec.NetNS starts such children.
func (ns *NS) Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.Pdeathsig != 0 {
		return errors.New("netns: Start: a parent-death signal would fire at once; use package spawn")
	}
	return ns.Do(cmd.Start)
}

// Run runs a program inside the namespace and returns its combined output.
func (ns *NS) Run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := ns.Start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return out.String(), fmt.Errorf("in namespace %s: %s %s: %w: %s", ns.Name, name, strings.Join(args, " "),
			err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Listening reports whether a TCP socket of the namespace listens on addr,
// from the kernel's table (TCPSockets).
func (ns *NS) Listening(addr netip.AddrPort) (bool, error) {
	socks, err := ns.TCPSockets()
	if err != nil {
		return false, err
	}
	for _, s := range socks {
		if s.Local == addr && s.State == "LISTEN" {
			return true, nil
		}
	}
	return false, nil
}

// Close deletes the namespace: it is unbound and its name removed; the
// kernel frees it, and every interface in it, once no process is left in
// it.
func (ns *NS) Close() error {
	err := unix.Unmount(ns.Path(), unix.MNT_DETACH)
	if errors.Is(err, unix.EINVAL) {
		err = nil // never bound (Create failed half-way)
	}
	if rerr := os.Remove(ns.Path()); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("netns: delete %s: %w", ns.Name, err)
	}
	return nil
}

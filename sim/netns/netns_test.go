package netns

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// catEnv, set to a file's path, makes the test binary print the file and
// exit, as cat would: a program for Run to start that the machine need not
// have.
const catEnv = "NETNS_TEST_CAT"

func TestMain(m *testing.M) {
	if path := os.Getenv(catEnv); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test makes network namespaces: run it as root")
	}
}

// newNS makes a namespace the test removes.
func newNS(t *testing.T, prefix string) *NS {
	t.Helper()
	ns, err := New(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// TestNamespaceLifecycle: a namespace is listed and bound under Dir, has
// its loopback up and nothing else, and is gone after Close.
func TestNamespaceLifecycle(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "nts-life-")
	names, err := List()
	if err != nil || !slices.Contains(names, ns.Name) {
		t.Fatalf("List() = %v, %v: want %s in it", names, err, ns.Name)
	}
	var links []string
	err = ns.Do(func() error {
		ls, err := netlink.LinkList()
		for _, l := range ls {
			links = append(links, l.Attrs().Name+":"+l.Attrs().OperState.String())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// lo's operational state is "unknown" when up (it has no carrier).
	if len(links) != 1 || links[0] != "lo:unknown" {
		t.Errorf("the namespace's links: %v, want lo up alone", links)
	}
	// Run starts this test binary again, as cat, in the namespace.
	t.Setenv(catEnv, "/proc/net/dev")
	out, err := ns.Run(os.Args[0], "-test.run=^$") // runs no test, should the variable be lost
	if err != nil || strings.Count(out, ":") != 1 || !strings.Contains(out, "lo:") {
		t.Errorf("/proc/net/dev read by a program Run in the namespace: %v\n%s", err, out)
	}
	// Every thread Do moved comes back: the process's own view (/proc/self
	// follows its main thread, which a goroutine may have run on) is this
	// namespace's, after many calls.
	before, _ := os.ReadFile("/proc/self/net/dev")
	for range 50 {
		if err := ns.Do(func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := os.ReadFile("/proc/self/net/dev"); strings.Count(string(after), ":") != strings.Count(string(before), ":") {
		t.Errorf("the process's interfaces changed after Do:\n%s\nthen\n%s", before, after)
	}
	if _, err := Create(ns.Name); err == nil {
		t.Errorf("Create(%s) again: no error", ns.Name)
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if names, _ := List(); slices.Contains(names, ns.Name) {
		t.Errorf("%s still listed after Close", ns.Name)
	}
	if _, err := os.Stat(ns.Path()); !os.IsNotExist(err) {
		t.Errorf("%s: %v, want it gone", ns.Path(), err)
	}
}

// TestVethBetweenNamespaces: a veth pair with an end in each of two
// namespaces carries a TCP connection; Listening sees the listener from
// inside its namespace only; Sysctl changes the namespace's setting and not
// the machine's.
func TestVethBetweenNamespaces(t *testing.T) {
	needRoot(t)
	a, b := newNS(t, "nts-a-"), newNS(t, "nts-b-")
	ea, eb := "ntsva"+a.Name[len(a.Name)-6:], "ntsvb"+a.Name[len(a.Name)-6:]
	if err := VethPair(ea, eb); err != nil {
		t.Fatal(err)
	}
	if err := a.Adopt(ea, "198.19.7.1/30"); err != nil {
		DeleteLink(ea)
		t.Fatal(err)
	}
	if err := b.Adopt(eb, "198.19.7.2/30"); err != nil {
		t.Fatal(err)
	}
	srv := netip.MustParseAddrPort("198.19.7.2:8080")
	var ln net.Listener
	if err := b.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", srv.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	if ok, err := b.Listening(srv); err != nil || !ok {
		t.Errorf("Listening(%s) in b = %v, %v; want true", srv, ok, err)
	}
	if ok, err := a.Listening(srv); err != nil || ok {
		t.Errorf("Listening(%s) in a = %v, %v; want false", srv, ok, err)
	}
	var got []byte
	if err := a.Do(func() error {
		c, err := net.DialTimeout("tcp", srv.String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got = make([]byte, 5)
		_, err = c.Read(got)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello" {
		t.Errorf("read %q across the veth pair, want hello", got)
	}

	const key, file = "net.ipv4.tcp_tw_reuse", "/proc/sys/net/ipv4/tcp_tw_reuse"
	host, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := "1"
	if strings.TrimSpace(string(host)) == "1" {
		want = "0"
	}
	if err := a.Sysctl(key, want); err != nil {
		t.Fatal(err)
	}
	var inside []byte
	a.Do(func() error { inside, err = os.ReadFile(file); return err })
	if strings.TrimSpace(string(inside)) != want {
		t.Errorf("%s in the namespace: %q, want %s", key, inside, want)
	}
	if after, _ := os.ReadFile(file); string(after) != string(host) {
		t.Errorf("%s on the machine changed from %q to %q", key, host, after)
	}
}

// TestAddTap: the TAP device is in the namespace, with its address and up,
// and not in the machine's.
func TestAddTap(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "nts-tap-")
	name := "ntst" + ns.Name[len(ns.Name)-6:]
	if err := ns.AddTap(name, "198.19.8.1/24"); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(name); err == nil {
		t.Errorf("%s is in the machine's namespace", name)
	}
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if _, ok := l.(*netlink.Tuntap); !ok || l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s: %T, flags %v; want a TAP device, up", name, l, l.Attrs().Flags)
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		if len(addrs) != 1 || addrs[0].IPNet.String() != "198.19.8.1/24" {
			t.Errorf("%s has addresses %v, want 198.19.8.1/24", name, addrs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkTapNamespace is what a tap run sets up and removes: a namespace
// with its loopback up and a TAP device with an address, up.
func BenchmarkTapNamespace(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	for i := 0; b.Loop(); i++ {
		ns, err := New("nts-bench-")
		if err != nil {
			b.Fatal(err)
		}
		if err := ns.AddTap("ntsb"+ns.Name[len(ns.Name)-6:], "198.19.9.1/24"); err != nil {
			ns.Close()
			b.Fatal(err)
		}
		if err := ns.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

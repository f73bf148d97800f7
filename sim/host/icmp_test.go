package host

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
)

// firstIPID runs a host with secret, has it send a UDP datagram to its
// neighbour 198.18.0.1 (whose MAC it learns from an ARP request), and
// returns the datagram's IP ID. The time is the same for every host: the
// ID depends on it too.
func firstIPID(t *testing.T, secret uint64) uint16 {
	t.Helper()
	var frames [][]byte
	h, err := New(Config{MAC: [6]byte{2, 0, 0x5e, 0, 0, 2}, Addr: netip.MustParsePrefix("198.18.0.2/24"), Secret: secret},
		func(f []byte, _ int) error { frames = append(frames, append([]byte(nil), f...)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	peer := [6]byte{2, 0, 0x5e, 0, 0, 1}
	arp := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, peer[:]...)
	arp = append(arp, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1)
	arp = append(arp, peer[:]...)
	arp = append(arp, 198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := h.Input(now, arp); err != nil {
		t.Fatal(err)
	}
	id, err := h.Open(netip.MustParseAddrPort("198.18.0.2:5000"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SendTo(now, id, []byte("x"), netip.MustParseAddrPort("198.18.0.1:9")); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if len(f) >= 34 && binary.BigEndian.Uint16(f[12:]) == 0x0800 {
			return binary.BigEndian.Uint16(f[18:])
		}
	}
	t.Fatalf("no IPv4 frame among %d sent", len(frames))
	return 0
}

// TestSecrets: a host's IP IDs are keyed with a random secret unless the
// Config names one, and then they repeat from run to run.
func TestSecrets(t *testing.T) {
	a, b, c := firstIPID(t, 0), firstIPID(t, 0), firstIPID(t, 0)
	if a == b && b == c {
		t.Errorf("three hosts sent the same first IP ID %d to one destination: the ID key is not random", a)
	}
	if x, y := firstIPID(t, 42), firstIPID(t, 42); x != y {
		t.Errorf("two hosts with one secret sent IP IDs %d and %d, want the same", x, y)
	}
}

// TestLinuxRejectsConnect: a connect to a port that Linux's firewall
// rejects with an ICMP port unreachable fails with ECONNREFUSED at once,
// not after the SYN's retries (minutes).
func TestLinuxRejectsConnect(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("nft is not installed (Debian package nftables; `make test` installs it)")
	}
	ns, h, _ := linuxPeer(t, true)
	for _, cmd := range [][]string{
		{"nft", "add", "table", "inet", "nts"},
		{"nft", "add", "chain", "inet", "nts", "in", "{ type filter hook input priority 0; }"},
		{"nft", "add", "rule", "inet", "nts", "in", "tcp", "dport", "81", "reject", "with", "icmp", "type", "port-unreachable"},
	} {
		if out, err := ns.Run(cmd[0], cmd[1:]...); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	api := h.API()
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- api.Connect(fd, netip.MustParseAddrPort("198.18.0.1:81")) }()
	select {
	case err := <-done:
		took := time.Since(start)
		if !errors.Is(err, unix.ECONNREFUSED) || took > time.Second {
			t.Fatalf("connect: %v after %v, want ECONNREFUSED at once", err, took)
		}
		t.Logf("connect refused by ICMP after %v", took)
	case <-time.After(5 * time.Second):
		t.Fatal("connect still waiting after 5s, want ECONNREFUSED at once") // the host's loop ends with the test
	}
}

package host

import (
	"context"
	"net/netip"
	"testing"

	"github.com/newtsim/newtsim/apps/socket/socktest"
	"github.com/newtsim/newtsim/servers/tcp"
)

// TestAPIConformance runs the socket library's TCP conformance cases on
// the monolithic host's API: the same engine, linked into one process,
// gives what Linux gives.
func TestAPIConformance(t *testing.T) {
	socktest.TCP(t, loopbackHost(t).API(), socktest.Env{Addr: netip.MustParseAddr("127.0.0.1"), ClosedPort: 9})
}

// TestAPIUDPConformance runs the UDP cases on the same API: datagram
// sockets go to the host's udp engine, and ICMP errors over its loopback
// reach them as they do on Linux.
func TestAPIUDPConformance(t *testing.T) {
	socktest.UDP(t, loopbackHost(t).API(), socktest.Env{Addr: netip.MustParseAddr("127.0.0.1"), ClosedPort: 9})
}

// loopbackHost starts a host with no wire, served until the test ends.
func loopbackHost(t *testing.T) *Host {
	t.Helper()
	h, err := New(Config{MAC: [6]byte{2, 0, 0, 0, 0, 9}, Addr: netip.MustParsePrefix("198.18.0.9/24"),
		TCP: tcp.Config{TimeWait: 2e9}}, func([]byte, int) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, h, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

package host

import (
	"context"
	"net/netip"
	"testing"

	"github.com/newtsim/newtsim/apps/socket/socktest"
	"github.com/newtsim/newtsim/servers/tcp"
)

// nullDevice is a NIC with no wire: the host talks to itself over its
// loopback.
type nullDevice struct{ ctx context.Context }

func (d nullDevice) Read([]byte) (int, error) { <-d.ctx.Done(); return 0, d.ctx.Err() }
func (nullDevice) Write([]byte) error         { return nil }

// TestAPIConformance runs the socket library's TCP conformance cases on
// the monolithic host's API: the same engine, linked into one process,
// gives what Linux gives.
func TestAPIConformance(t *testing.T) {
	h, err := New(Config{MAC: [6]byte{2, 0, 0, 0, 0, 9}, Addr: netip.MustParsePrefix("198.18.0.9/24"),
		TCP: tcp.Config{TimeWait: 2e9}}, func([]byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, h, nullDevice{ctx}) }()
	t.Cleanup(func() { cancel(); <-done })
	socktest.TCP(t, h.API(), socktest.Env{Addr: netip.MustParseAddr("127.0.0.1"), ClosedPort: 9})
}

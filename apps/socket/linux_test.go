package socket_test

import (
	"net/netip"
	"testing"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/apps/socket/socktest"
)

func TestLinuxUDP(t *testing.T) {
	api, err := socket.Open(socket.Config{Backend: "linux"})
	if err != nil {
		t.Fatal(err)
	}
	// Port 9 (discard) is closed on loopback unless something listens there.
	socktest.UDP(t, api, socktest.Env{Addr: netip.MustParseAddr("127.0.0.1"), ClosedPort: 9})
}

func TestUnbuiltBackendRefused(t *testing.T) {
	if _, err := socket.Open(socket.Config{Backend: "exposed"}); err == nil {
		t.Fatal("an unbuilt backend was opened")
	}
}

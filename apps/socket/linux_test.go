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

func TestLinuxTCP(t *testing.T) {
	api, err := socket.Open(socket.Config{Backend: "linux"})
	if err != nil {
		t.Fatal(err)
	}
	// Port 9 (discard) is closed on loopback unless something listens there.
	socktest.TCP(t, api, socktest.Env{Addr: netip.MustParseAddr("127.0.0.1"), ClosedPort: 9})
}

// TestCaseNamesUnique: results outside go test (socktest.Run) are keyed by
// case name, so no two cases of the suite may share one.
func TestCaseNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range append(append([]socktest.Case{}, socktest.UDPCases...), socktest.TCPCases...) {
		if seen[c.Name] {
			t.Errorf("two cases are named %q", c.Name)
		}
		seen[c.Name] = true
	}
}

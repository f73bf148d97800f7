package socktest

import (
	"net/netip"
	"testing"

	"github.com/newtsim/newtsim/apps/socket"
)

// TestRunOutsideGoTest runs the suite as an application process would, on
// Linux, where every case passes, and checks that Run records a failing and
// a panicking case with their clean-ups run.
func TestRunOutsideGoTest(t *testing.T) {
	env := Env{Addr: netip.MustParseAddr("127.0.0.1"), ClosedPort: 9}
	for name, failure := range Run(UDPCases, socket.Linux{}, env) {
		if failure != "" {
			t.Errorf("%s: %s", name, failure)
		}
	}
	cleaned := 0
	bad := []Case{
		{"fails", func(t T, _ socket.API, _ Env) { t.Cleanup(func() { cleaned++ }); t.Fatalf("no %d", 1) }},
		{"panics", func(t T, _ socket.API, _ Env) { t.Cleanup(func() { cleaned++ }); panic("boom") }},
	}
	got := Run(bad, socket.Linux{}, env)
	if got["fails"] != "no 1" || got["panics"] != "panic: boom" || cleaned != 2 {
		t.Fatalf("Run = %q, %d clean-ups ran", got, cleaned)
	}
}

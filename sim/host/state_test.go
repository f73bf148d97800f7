package host

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/apps/socket"
)

// TestWriteState: the state a stalled host is asked for names its
// drops, its connections by state, when its timers run and each
// connection.
func TestWriteState(t *testing.T) {
	h := loopbackHost(t)
	api := h.API()
	ln, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Bind(ln, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	if err := api.Listen(ln, 4); err != nil {
		t.Fatal(err)
	}
	addr, err := api.LocalAddr(ln)
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Connect(c, addr); err != nil {
		t.Fatal(err)
	}
	// A segment to a port nobody listens on is dropped and counted.
	x, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Connect(x, netip.MustParseAddrPort("127.0.0.1:9")); err == nil {
		t.Fatal("a connect to a closed port succeeded")
	}
	var b strings.Builder
	h.WriteState(&b)
	got := b.String()
	for _, want := range []string{"host: drops map[", "tcp/no-socket:1", "LISTEN:1", "ESTABLISHED:2",
		" LISTEN 127.0.0.1:" + strconv.Itoa(int(addr.Port())), " ESTABLISHED "} {
		if !strings.Contains(got, want) {
			t.Errorf("state lacks %q:\n%s", want, got)
		}
	}
	if !strings.Contains(got, "host: next timer in ") && !strings.Contains(got, "host: no timer") {
		t.Errorf("state does not say when the timers run:\n%s", got)
	}
}

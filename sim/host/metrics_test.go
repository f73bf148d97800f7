package host

import (
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/internal/prom"
)

// TestRegister: the host's metrics are its tcp engine's counters under
// the tcp server's names, read at each scrape: a connection over the
// loopback shows as one active and one passive open, and the payload as
// sent and received bytes.
func TestRegister(t *testing.T) {
	h := loopbackHost(t)
	reg := prometheus.NewRegistry()
	h.Register(reg)
	value := func(name string) float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]*dto.MetricFamily{}
		for _, f := range fams {
			m[f.GetName()] = f
		}
		v, ok := prom.Value(m, name, nil)
		if !ok {
			t.Fatalf("no %s", name)
		}
		return v
	}
	if v := value("newtsim_tcp_active_opens_total"); v != 0 {
		t.Fatalf("active opens before any connection: %v", v)
	}
	srv, cli := h.API(), h.API()
	ln, err := srv.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Bind(ln, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(ln, 4); err != nil {
		t.Fatal(err)
	}
	addr, _ := srv.LocalAddr(ln)
	fd, err := cli.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Connect(fd, addr); err != nil {
		t.Fatal(err)
	}
	c, _, err := srv.Accept(ln)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := cli.Send(fd, []byte("hello"), 0); n != 5 || err != nil {
		t.Fatalf("send: %d %v", n, err)
	}
	if n, err := srv.Recv(c, make([]byte, 16), 0); n != 5 || err != nil {
		t.Fatalf("recv: %d %v", n, err)
	}
	for name, want := range map[string]float64{"newtsim_tcp_active_opens_total": 1, "newtsim_tcp_passive_opens_total": 1,
		"newtsim_tcp_sent_bytes_total": 5, "newtsim_tcp_received_bytes_total": 5, "newtsim_tcp_retransmitted_segments_total": 0} {
		if v := value(name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
}

package bench

import (
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Drops sums every drop counter a process exports, by metric and reason
// label, and formatDrops names them in order.
func TestDrops(t *testing.T) {
	reg := prometheus.NewRegistry()
	udp := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "newtsim_udp_dropped_total"}, []string{"reason"})
	nobuf := prometheus.NewCounter(prometheus.CounterOpts{Name: "newtsim_ip_no_buffer_total"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "newtsim_ipc_messages_sent_total"})
	reg.MustRegister(udp, nobuf, other)
	udp.WithLabelValues("queue-full").Add(246)
	udp.WithLabelValues("no-socket").Add(3)
	nobuf.Add(2)
	other.Add(1000)
	got, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := map[string]*dto.MetricFamily{}
	for _, f := range got {
		fams[f.GetName()] = f
	}
	d := Drops(fams)
	want := map[string]float64{"udp-queue-full": 246, "udp-no-socket": 3, "ip-no-buffer": 2}
	if len(d) != len(want) {
		t.Fatalf("Drops = %v, want %v", d, want)
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("Drops[%q] = %v, want %v", k, d[k], v)
		}
	}
	for _, c := range []struct {
		in   map[string]float64
		want string
	}{
		{nil, "none"},
		{map[string]float64{"udp udp-queue-full": 246, "ip ip-no-buffer": 2}, "ip ip-no-buffer 2, udp udp-queue-full 246"},
	} {
		if s := formatDrops(c.in); s != c.want {
			t.Errorf("formatDrops(%v) = %q, want %q", c.in, s, c.want)
		}
	}
}

func TestDropsSince(t *testing.T) {
	before := map[string]float64{"nic nic-send": 3, "ip ip-no-route": 2, "tcp unread": -1}
	after := map[string]float64{"nic nic-send": 10, "ip ip-no-route": 2, "tcp unread": -1, "udp udp-queue-full": 4,
		"driver send-full": 1, "pf unread": -1}
	before["driver send-full"] = 5 // driver restarted: its counter went back
	want := map[string]float64{"nic nic-send": 7, "udp udp-queue-full": 4, "tcp unread": -1, "pf unread": -1}
	if got := dropsSince(before, after); !maps.Equal(got, want) {
		t.Errorf("dropsSince = %v, want %v", got, want)
	}
}

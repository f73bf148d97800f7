package servers

import (
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
)

// The packet path's roles (docs/PACKET_PATH.md): nic, driver, pf and ip
// pass frames up and down as buffer references; none copies a frame but the
// nic, from the device into its pool, and ip, when it builds one.

// counter makes a counter vector registered with the server.
func counter(s *sys.Server, subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: subsystem,
		Name: name, Help: help}, labels)
	s.Registry.MustRegister(c)
	return c
}

// forward sends the message on to the named peer, unchanged but for its
// destination.
func forward(s *sys.Server, to string, m *ipc.Message) error {
	f := *m
	return s.SendTo(to, &f)
}

// u32 unpacks an IPv4 address carried in a message word.
func u32(w uint64) [4]byte { return [4]byte{byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w)} }

// Addr4 packs an IPv4 address into a message word; anything else (the zero
// Addr of an unbound socket or an end of file, say) packs as 0.
func Addr4(a netip.Addr) uint64 {
	if !a.Unmap().Is4() {
		return 0
	}
	b := a.Unmap().As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// drops exports an engine's drop counters, by reason. An engine belongs to
// its server's loop, so the loop copies the counters here at most every
// 100 ms and a scrape reads the copy.
type drops struct {
	desc  *prometheus.Desc
	mu    sync.Mutex
	by    map[string]uint64
	taken time.Time
}

func newDrops(s *sys.Server, engine string, read func() map[string]uint64) *drops {
	d := &drops{desc: prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, engine, "dropped_total"),
		"What the "+engine+" engine dropped, by reason.", []string{"reason"}, nil), by: read()}
	s.Registry.MustRegister(d)
	return d
}

func (d *drops) update(now time.Time, read func() map[string]uint64) {
	if now.Sub(d.taken) < 100*time.Millisecond {
		return
	}
	by := read()
	d.mu.Lock()
	d.by, d.taken = by, now
	d.mu.Unlock()
}

func (d *drops) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

func (d *drops) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for r, n := range d.by {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(n), r)
	}
}

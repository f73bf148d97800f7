package servers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
)

// The packet path's roles (docs/PACKET_PATH.md): nic, driver, pf and ip
// pass frames up and down as buffer references; none copies a frame but the
// nic, from the device or the wire into its pool, pf, into its own pool
// before it checks it (so that what it forwards is what it checked), and
// ip, when it builds one.

// counter makes a counter vector registered with the server.
func counter(s *sys.Server, subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: subsystem,
		Name: name, Help: help}, labels)
	s.Registry.MustRegister(c)
	return c
}

// forward sends the message on to the named peer, unchanged but for its
// destination. A peer that is dead or restarting loses the message: the
// send is a drop, counted and its buffer given back (package sys), and
// the forwarding server goes on.
func forward(s *sys.Server, to string, m *ipc.Message) error {
	f := *m
	s.SendTo(to, &f)
	return nil
}

// drops exports an engine's drop counters, by reason. An engine belongs to
// its server's loop, so the loop copies the counters here, and a scrape
// reads the copy. Under load the loop copies at most every 100 ms; a change
// it skips is copied before the loop next sleeps, so a burst of drops
// followed by silence is never left out of the metrics.
type drops struct {
	desc    *prometheus.Desc
	s       *sys.Server
	read    func() map[string]uint64
	mu      sync.Mutex
	by      map[string]uint64
	taken   time.Time
	pending bool // a copy is queued for before the loop sleeps
}

func newDrops(s *sys.Server, engine string, read func() map[string]uint64) *drops {
	d := &drops{desc: prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, engine, "dropped_total"),
		"What the "+engine+" engine dropped, by reason.", []string{"reason"}, nil), s: s, read: read, by: read()}
	s.Registry.MustRegister(d)
	return d
}

// update copies the counters if the last copy is 100 ms old, and otherwise
// makes sure one is made before the loop sleeps.
func (d *drops) update(now time.Time) {
	if now.Sub(d.taken) < 100*time.Millisecond {
		if !d.pending {
			d.pending = true
			d.s.Later(func() { d.pending = false; d.take(time.Now()) })
		}
		return
	}
	d.take(now)
}

func (d *drops) take(now time.Time) {
	by := d.read()
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

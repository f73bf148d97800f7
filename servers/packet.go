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

// snapshot is how a server publishes its engine's state for its metrics.
// An engine belongs to its server's loop, so the loop copies what the
// metrics show, and a scrape, on another goroutine, reads the copy. Under
// load the loop copies at most every 100 ms; a change it skips is copied
// before the loop next sleeps, so the last of a burst (drops, a connection
// that closed) is never left out of the metrics while the server is idle.
type snapshot struct {
	s       *sys.Server
	take    func() // makes the copy, under the metrics' lock
	taken   time.Time
	pending bool // a copy is queued for before the loop sleeps
}

// update copies now if the last copy is 100 ms old, and otherwise makes
// sure one is made before the loop sleeps.
func (p *snapshot) update(now time.Time) {
	if now.Sub(p.taken) < 100*time.Millisecond {
		if !p.pending {
			p.pending = true
			p.s.Later(func() { p.pending = false; p.takeNow(time.Now()) })
		}
		return
	}
	p.takeNow(now)
}

func (p *snapshot) takeNow(now time.Time) {
	p.taken = now
	p.take()
}

// drops exports an engine's drop counters, by reason, published through a
// snapshot.
type drops struct {
	snapshot
	desc *prometheus.Desc
	read func() map[string]uint64
	mu   sync.Mutex
	by   map[string]uint64
}

func newDrops(s *sys.Server, engine string, read func() map[string]uint64) *drops {
	d := &drops{desc: prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, engine, "dropped_total"),
		"What the "+engine+" engine dropped, by reason.", []string{"reason"}, nil), read: read, by: read()}
	d.snapshot = snapshot{s: s, take: func() {
		by := d.read()
		d.mu.Lock()
		d.by = by
		d.mu.Unlock()
	}}
	s.Registry.MustRegister(d)
	return d
}

func (d *drops) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

func (d *drops) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for r, n := range d.by {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(n), r)
	}
}

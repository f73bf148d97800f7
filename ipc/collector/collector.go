// Package collector exports the ipc layer's counters to Prometheus. Hot
// paths count in plain atomic counters (ipc.Stats); the collectors here read
// them at scrape time, as node_exporter's collectors read /proc.
package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
)

// Transport exports one transport's counters.
type Transport struct {
	name  string
	stats *ipc.Stats
	peer  func(slot int) string // "" for slots to leave out

	sent, received, spins, sleeps, wakeups, refused *prometheus.Desc
}

// NewTransport returns a collector for stats of the transport named name
// ("shm" or "kernel"); peer names each slot (the empty string skips it).
func NewTransport(name string, stats *ipc.Stats, peer func(slot int) string) *Transport {
	d := func(n, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "ipc", n), help, labels,
			prometheus.Labels{"transport": name})
	}
	return &Transport{
		name: name, stats: stats, peer: peer,
		sent:     d("messages_sent_total", "Messages sent, by destination process.", "peer"),
		received: d("messages_received_total", "Messages received, by source process.", "peer"),
		spins:    d("spin_waits_total", "Waits that ended while spinning, without sleeping."),
		sleeps:   d("sleeps_total", "Waits that went to sleep (futex wait or blocking system call)."),
		wakeups:  d("wakeups_total", "Futex wake-ups issued to sleeping peers."),
		refused:  d("refused_messages_total", "Messages refused: malformed, forged source, or stale."),
	}
}

// Describe implements prometheus.Collector.
func (t *Transport) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{t.sent, t.received, t.spins, t.sleeps, t.wakeups, t.refused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (t *Transport) Collect(ch chan<- prometheus.Metric) {
	for slot := 0; slot < ipc.MaxSlots; slot++ {
		name := t.peer(slot)
		if name == "" {
			continue
		}
		ch <- prometheus.MustNewConstMetric(t.sent, prometheus.CounterValue, float64(t.stats.Sent[slot].Load()), name)
		ch <- prometheus.MustNewConstMetric(t.received, prometheus.CounterValue, float64(t.stats.Received[slot].Load()), name)
	}
	ch <- prometheus.MustNewConstMetric(t.spins, prometheus.CounterValue, float64(t.stats.Spins.Load()))
	ch <- prometheus.MustNewConstMetric(t.sleeps, prometheus.CounterValue, float64(t.stats.Sleeps.Load()))
	ch <- prometheus.MustNewConstMetric(t.wakeups, prometheus.CounterValue, float64(t.stats.Wakeups.Load()))
	ch <- prometheus.MustNewConstMetric(t.refused, prometheus.CounterValue, float64(t.stats.Refused.Load()))
}

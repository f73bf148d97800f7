// Package metrics holds what every newtsim process serves to Prometheus: a
// registry of its own, collectors over the transports' counters, and a
// loopback HTTP server for /metrics.
//
// Hot paths never touch Prometheus types: transports count in plain atomic
// counters (ipc.Stats), and the collectors here read them at scrape time,
// as node_exporter's collectors read /proc.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/newtsim/newtsim/ipc"
)

// Namespace prefixes every newtsim metric.
const Namespace = "newtsim"

// NewRegistry returns a registry with the Go runtime's and the process's
// own collectors, and an info metric naming the process.
func NewRegistry(process, role string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "process_info",
		Help:        "Always 1; names the newtsim process and its role.",
		ConstLabels: prometheus.Labels{"process": process, "role": role},
	})
	info.Set(1)
	reg.MustRegister(info)
	return reg
}

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
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "ipc", n), help, labels,
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

// Server serves a registry's /metrics on a loopback port.
type Server struct {
	Port int
	srv  *http.Server
}

// Serve listens on addr (such as "127.0.0.1:0" for any free port) and
// serves reg at /metrics, with scrape errors counted in the registry.
func Serve(reg *prometheus.Registry, addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s := &Server{Port: ln.Addr().(*net.TCPAddr).Port, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("metrics: serve: %v\n", err)
		}
	}()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

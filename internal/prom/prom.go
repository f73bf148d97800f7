// Package prom holds what every newtsim process needs of Prometheus: a
// registry of its own with an info metric naming the process, a loopback
// HTTP server for /metrics, and the file-based service discovery file
// (file_sd) that lists every process's metrics port. Tests and benchmarks
// read a process's metrics with Scrape and Value.
//
// Hot paths never touch Prometheus types: they count in plain atomic
// counters, and collectors read those at scrape time, as node_exporter's
// collectors read /proc (see package ipc/collector for the transports').
package prom

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

// Server serves a registry's /metrics on a loopback port.
type Server struct {
	Port int
	srv  *http.Server
	mux  *http.ServeMux
}

// Handle serves h at pattern beside /metrics, such as a process's trace
// snapshot (package internal/trace).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Serve listens on addr (such as "127.0.0.1:0" for any free port) and
// serves reg at /metrics, with scrape errors counted in the registry.
func Serve(reg *prometheus.Registry, addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("prom: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s := &Server{Port: ln.Addr().(*net.TCPAddr).Port, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, mux: mux}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("prom: serve: %v\n", err)
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

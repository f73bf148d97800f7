package bench

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/internal/prom"
)

func TestScrapeMetricAndText(t *testing.T) {
	reg := prom.NewRegistry("tcp", "tcp")
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "newtsim_tcp_rto_expiries_total", Help: "RTO expiries."}, []string{"kind"})
	c.WithLabelValues("a").Add(2)
	c.WithLabelValues("b").Add(3)
	reg.MustRegister(c)
	s, err := prom.Serve(reg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		port   int
		metric string
		want   float64
	}{
		{"every series summed", s.Port, "newtsim_tcp_rto_expiries_total", 5},
		{"missing metric", s.Port, "newtsim_ip_no_buffer_total", -1},
		{"no answer", 1, "newtsim_tcp_rto_expiries_total", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metricValue(scrapeRetried(tt.port), tt.metric); got != tt.want {
				t.Errorf("metricValue(scrapeRetried(%d), %s) = %v, want %v", tt.port, tt.metric, got, tt.want)
			}
		})
	}
	text := scrapeNewtsim(s.Port)
	if !strings.Contains(text, `newtsim_tcp_rto_expiries_total{kind="b"} 3`) || strings.Contains(text, "go_goroutines") {
		t.Errorf("scrapeNewtsim: want newtsim_* metrics only, got\n%s", text)
	}
	s.Close()
}

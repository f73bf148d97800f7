package host

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/servers"
	"github.com/newtsim/newtsim/servers/tcp"
)

// Register registers the host's metrics on r: its tcp engine's, under the
// names the tcp server gives them (newtsim_tcp_*, docs/METRICS.md), read
// under the host's lock at each scrape.
func (h *Host) Register(r *prometheus.Registry) {
	servers.RegisterTCPMetrics(r, func() (tcp.Stats, int, map[tcp.State]int) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.tcp.Stats(), h.tcp.Memory(), h.tcp.ByState()
	})
}

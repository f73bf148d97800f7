package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/kernel"
)

// dropCounter is a metric that counts drops, and the label that says why
// (none: the metric's own reason).
type dropCounter struct {
	metric, label, reason string
}

// dropCounters are every metric docs/METRICS.md describes as counting
// messages, frames or packets dropped or refused.
var dropCounters = []dropCounter{
	{"newtsim_ipc_refused_messages_total", "", "refused-on-receipt"},
	{"newtsim_server_send_failures_total", "reason", "send-"},
	{"newtsim_server_outbox_dropped_total", "", "outbox-full"},
	{"newtsim_server_stale_messages_total", "", "stale"},
	{"newtsim_server_bad_buffer_refs_total", "", "bad-buffer-ref"},
	{"newtsim_kernel_refused_messages_total", "reason", "kernel-refused-"},
	{"newtsim_nic_dropped_frames_total", "reason", "nic-"},
	{"newtsim_ip_dropped_total", "reason", "ip-"},
	{"newtsim_ip_no_buffer_total", "", "ip-no-buffer"},
	{"newtsim_udp_dropped_total", "reason", "udp-"},
	{"newtsim_tcp_dropped_total", "reason", "tcp-"},
}

// Drops returns a process's drop counters (every counter of messages,
// frames, packets or datagrams dropped or refused), by reason: the
// metric's, or its reason label's value after a prefix naming the metric
// ("udp-queue-full", "send-full").
func Drops(fams map[string]*dto.MetricFamily) map[string]float64 {
	m := map[string]float64{}
	for _, d := range dropCounters {
		for _, s := range fams[d.metric].GetMetric() {
			reason := d.reason
			if d.label != "" {
				for _, l := range s.GetLabel() {
					if l.GetName() == d.label {
						reason += l.GetValue()
					}
				}
			}
			m[reason] += s.GetCounter().GetValue()
		}
	}
	return m
}

// runDrops reads the drop counters of every process of a run, as
// "PROCESS REASON" -> count, leaving out those at zero; a process that
// cannot be scraped shows as "PROCESS unread" -> -1.
func runDrops(st *kernel.Status) map[string]float64 {
	out := map[string]float64{}
	for _, p := range st.Processes {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fams, err := prom.Scrape(ctx, prom.LocalURL(p.MetricsPort))
		cancel()
		if err != nil {
			out[p.Name+" unread"] = -1
			continue
		}
		for reason, n := range Drops(fams) {
			if n != 0 {
				out[p.Name+" "+reason] = n
			}
		}
	}
	return out
}

// formatDrops writes drops as "udp udp-queue-full 12, ..." in name order,
// or "none".
func formatDrops(drops map[string]float64) string {
	if len(drops) == 0 {
		return "none"
	}
	s := ""
	for i, k := range slices.Sorted(maps.Keys(drops)) {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %.0f", k, drops[k])
	}
	return s
}

// stateDrops is runDrops for the run whose state directory is state; nil
// when its status cannot be read.
func stateDrops(state string) map[string]float64 {
	st, err := kernel.ReadStatus(state)
	if err != nil {
		return nil
	}
	return runDrops(st)
}

// dropsSince is what each drop counter of after gained since before
// (runDrops' names), leaving out those that did not move (or went back,
// their process restarted); a process unread in after stays "PROCESS
// unread" -> -1.
func dropsSince(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, a := range after {
		switch b := max(before[k], 0); {
		case a < 0:
			d[k] = -1
		case a > b:
			d[k] = a - b
		}
	}
	return d
}

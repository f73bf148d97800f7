// This file times the role's handling of each message, by message type, for
// the histogram newtsim_server_service_seconds. The loop reads the
// monotonic clock before and after Handle and adds one to an atomic
// counter per power-of-two bucket; the histogram is built from those
// counters at scrape time, as every collector here is (see package
// ipc/collector), so the hot path never touches a Prometheus type.

package sys

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
)

// Buckets of the service-time histogram: bucket i counts handlings shorter
// than 2^(minServiceShift+i) nanoseconds, from 128ns up to about 67ms, and
// the last counts the longer ones.
const (
	minServiceShift = 7
	serviceBuckets  = 20
)

// otherType is the index that counts every type above ipc.MaxType.
const otherType = ipc.MaxType + 1

// serviceTimes counts handlings by type and bucket. Only the loop writes
// it; a scrape reads it from another goroutine, so a scrape may see a
// handling counted in its bucket and not yet in the sum.
type serviceTimes struct {
	base time.Time // a monotonic reading; times are read as time.Since(base)
	desc *prometheus.Desc
	by   [otherType + 1]struct {
		buckets [serviceBuckets + 1]atomic.Uint64
		sumNS   atomic.Uint64
	}
}

func newServiceTimes() *serviceTimes {
	return &serviceTimes{base: time.Now(), desc: prometheus.NewDesc(
		prometheus.BuildFQName(prom.Namespace, "server", "service_seconds"),
		"Time the role's handler took per message, by message type.", []string{"type"}, nil)}
}

// start is the loop's clock reading before Handle; zero when s is nil.
func (s *serviceTimes) start() time.Duration {
	if s == nil {
		return 0
	}
	return time.Since(s.base)
}

// done counts a handling of a message of type t that began at start.
func (s *serviceTimes) done(t ipc.Type, start time.Duration) {
	if s == nil {
		return
	}
	d := uint64(time.Since(s.base) - start)
	c := &s.by[min(t, otherType)]
	c.buckets[min(bits.Len64(d>>minServiceShift), serviceBuckets)].Add(1)
	c.sumNS.Add(d)
}

// Describe implements prometheus.Collector.
func (s *serviceTimes) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

// Collect implements prometheus.Collector: one histogram per message type
// handled at least once.
func (s *serviceTimes) Collect(ch chan<- prometheus.Metric) {
	for t := range s.by {
		c := &s.by[t]
		if c.sumNS.Load() == 0 && c.buckets[0].Load() == 0 {
			continue // never handled: every handling adds to sumNS or, at 0 ns, to the first bucket
		}
		var count uint64
		cum := make(map[float64]uint64, serviceBuckets)
		for i := range serviceBuckets {
			count += c.buckets[i].Load()
			cum[float64(uint64(1)<<(minServiceShift+i))/1e9] = count
		}
		count += c.buckets[serviceBuckets].Load()
		if count == 0 {
			continue
		}
		name := ipc.Type(t).String()
		if ipc.Type(t) == otherType {
			name = "other"
		}
		ch <- prometheus.MustNewConstHistogram(s.desc, count, float64(c.sumNS.Load())/1e9, cum, name)
	}
}

// TimeHandlers makes the loop time each message its role handles, for the
// histogram newtsim_server_service_seconds. It costs two clock reads and
// two atomic adds per message.
func (s *Server) TimeHandlers() {
	if s.times == nil {
		s.times = newServiceTimes()
		s.Registry.MustRegister(s.times)
	}
}

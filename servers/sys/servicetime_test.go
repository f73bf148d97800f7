package sys

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/boot"
)

// repeatTransport gives the same message n times, then Shutdown.
type repeatTransport struct {
	fakeTransport
	m ipc.Message
	n int
}

func (r *repeatTransport) Recv(m *ipc.Message) error {
	if r.n == 0 {
		*m = ipc.Message{Src: ipc.Kernel, Type: ipc.Shutdown}
		return nil
	}
	r.n--
	*m = r.m
	return nil
}

// fakeKernel answers every call with Ack.
type fakeKernel struct{ fakeTransport }

func (k *fakeKernel) Call(*ipc.Message) (ipc.Message, error) { return ipc.Message{Type: ipc.Ack}, nil }
func (k *fakeKernel) CallFile(*ipc.Message, *os.File) (ipc.Message, *os.File, error) {
	return ipc.Message{Type: ipc.Ack}, nil, nil
}

func newLoop(tb testing.TB, timed bool, m ipc.Message, n int) (*Server, *repeatTransport) {
	tb.Helper()
	tr := &repeatTransport{m: m, n: n}
	s, err := New(boot.Options{Name: "loop", Role: "loop", Endpoint: ipc.MakeEndpoint(2, 1), Transport: "fake",
		Procs: map[string]int{"loop": 2, "pf": 3}},
		Env{Transport: tr, Kernel: &fakeKernel{}})
	if err != nil {
		tb.Fatal(err)
	}
	if timed {
		s.TimeHandlers()
	}
	return s, tr
}

// spin is a handler that works for about d.
func spin(d time.Duration) HandlerFunc {
	return func(*Server, *ipc.Message) error {
		for t0 := time.Now(); time.Since(t0) < d; {
		}
		return nil
	}
}

func TestServiceTimes(t *testing.T) {
	m := ipc.Message{Src: ipc.MakeEndpoint(3, 1), Type: ipc.FrameRx}
	s, _ := newLoop(t, true, m, 5)
	if err := s.Serve(spin(10 * time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	// Three more of a type above MaxType.
	s.times.done(ipc.MaxType+7, s.times.start())
	s.times.done(ipc.MaxType+7, s.times.start())
	s.times.done(ipc.MaxType+7, s.times.start())
	n, err := testutil.GatherAndCount(s.Registry, "newtsim_server_service_seconds")
	if err != nil || n != 2 {
		t.Fatalf("%d histograms (%v), want one for frame-rx and one for other types", n, err)
	}
	var b strings.Builder
	fams, err := s.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "newtsim_server_service_seconds" {
			continue
		}
		for _, mt := range f.Metric {
			h := mt.GetHistogram()
			fmt.Fprintf(&b, "%s:%d ", mt.Label[0].GetValue(), h.GetSampleCount())
			if got := h.Bucket[len(h.Bucket)-1].GetUpperBound(); got != float64(uint64(1)<<(minServiceShift+serviceBuckets-1))/1e9 {
				t.Errorf("largest bound %v", got)
			}
			if mt.Label[0].GetValue() == ipc.FrameRx.String() {
				// 10µs is above the 8.192µs bound and below 16.384µs.
				if h.GetSampleSum() < 5*10e-6 {
					t.Errorf("sum %v, want at least 50µs", h.GetSampleSum())
				}
				for _, bk := range h.Bucket {
					if bk.GetUpperBound() < 8.192e-6 && bk.GetCumulativeCount() != 0 {
						t.Errorf("bucket le=%v has %d, want none below 10µs", bk.GetUpperBound(), bk.GetCumulativeCount())
					}
				}
			}
		}
	}
	if got, want := b.String(), "frame-rx:5 other:3 "; got != want {
		t.Errorf("histograms %q, want %q", got, want)
	}
}

func TestServiceTimesOff(t *testing.T) {
	s, _ := newLoop(t, false, ipc.Message{Type: ipc.FrameRx}, 3)
	if err := s.Serve(spin(0)); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(s.Registry, "newtsim_server_service_seconds"); err != nil || n != 0 {
		t.Fatalf("%d histograms (%v), want none when handlers are not timed", n, err)
	}
}

// BenchmarkServe is the loop's cost per message, a handler that does
// nothing and one that works about 250ns, with and without timing.
func BenchmarkServe(b *testing.B) {
	m := ipc.Message{Src: ipc.MakeEndpoint(3, 1), Type: ipc.FrameRx}
	for _, work := range []time.Duration{0, 250 * time.Nanosecond} {
		for _, timed := range []bool{false, true} {
			b.Run(fmt.Sprintf("work=%v/timed=%v", work, timed), func(b *testing.B) {
				s, _ := newLoop(b, timed, m, b.N)
				h := spin(work)
				if work == 0 {
					h = func(*Server, *ipc.Message) error { return nil }
				}
				b.ResetTimer()
				if err := s.Serve(h); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

package probe

import (
	"runtime"
	"testing"
	"time"

	"github.com/newtsim/newtsim/internal/cpu"
)

var quick = Budget{Warmup: 10 * time.Millisecond, Batch: 5 * time.Millisecond, Batches: 3}

// TestRingThreads passes the token around rings of threads: every hop is
// timed, and the sample is per hop (a lap of n hops divided by n).
func TestRingThreads(t *testing.T) {
	// On one core, as bench ipc and bench http run the ring: with a core
	// each, two threads pass the token without either sleeping.
	all, err := cpu.Current()
	if err != nil {
		t.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	if err := cpu.PinProcess(all[len(all)-1:]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cpu.PinProcess(all); err != nil {
			t.Error(err)
		}
		runtime.GOMAXPROCS(procs)
	})
	for _, n := range []int{2, 5} {
		res, err := ringThreads(quick, n)
		if err != nil {
			t.Fatalf("ring of %d: %v", n, err)
		}
		if s := res.Sample; s.NS <= 0 || s.RoundTrips%n != 0 || s.Batches != quick.Batches {
			t.Fatalf("ring of %d: sample %+v", n, s)
		}
		// Every hop runs a member: CPU time and at least a switch's
		// share each (the threads sleep on their futexes).
		if res.CPUNSPerHop <= 0 || res.SwitchesPerHop < 0.5 {
			t.Fatalf("ring of %d: %.0f CPU ns and %.2f switches per hop", n, res.CPUNSPerHop, res.SwitchesPerHop)
		}
	}
}

func TestNewRingRefuses(t *testing.T) {
	mem := make([]byte, RingBytes)
	for _, tc := range []struct {
		mem []byte
		n   int
		ok  bool
	}{
		{mem, 2, true},
		{mem, MaxRing, true},
		{mem, 1, false},
		{mem, MaxRing + 1, false},
		{mem[:RingBytes-1], 2, false},
	} {
		if _, err := newRing(tc.mem, tc.n); (err == nil) != tc.ok {
			t.Errorf("newRing(%d bytes, %d): %v, want ok %v", len(tc.mem), tc.n, err, tc.ok)
		}
	}
}

func TestPerHop(t *testing.T) {
	s := PerHop(Sample{NS: 900, Cycles: 1800, MinNS: 90, MaxNS: 9000, RoundTrips: 10, Batches: 2}, 9)
	want := Sample{NS: 100, Cycles: 200, MinNS: 10, MaxNS: 1000, RoundTrips: 90, Batches: 2}
	if s != want {
		t.Fatalf("PerHop: %+v, want %+v", s, want)
	}
}

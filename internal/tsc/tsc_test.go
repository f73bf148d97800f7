package tsc

import (
	"testing"
	"time"
)

func TestReadIncreases(t *testing.T) {
	a := Read()
	time.Sleep(time.Millisecond)
	b := Read()
	if b <= a {
		t.Fatalf("Read went from %d to %d across 1ms", a, b)
	}
}

func TestCalibrate(t *testing.T) {
	hz := Calibrate(50 * time.Millisecond)
	// Any real TSC runs between 100 MHz and 10 GHz; the fallback counts ns.
	lo, hi := 1e8, 1e10
	if !Available() {
		lo, hi = 0.9e9, 1.1e9
	}
	if hz < lo || hz > hi {
		t.Fatalf("Calibrate = %.0f Hz, want between %.0f and %.0f", hz, lo, hi)
	}
	// The cheap measurement must agree with the counter over a longer span.
	c0, t0 := Read(), time.Now()
	time.Sleep(20 * time.Millisecond)
	got := float64(Read()-c0) / time.Since(t0).Seconds()
	if r := got / hz; r < 0.9 || r > 1.1 {
		t.Errorf("rate over 20ms = %.0f Hz, calibrated %.0f Hz (ratio %.3f)", got, hz, r)
	}
}

func BenchmarkRead(b *testing.B) {
	for b.Loop() {
		Read()
	}
}

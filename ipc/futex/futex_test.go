package futex

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitReturnsWhenValueDiffers(t *testing.T) {
	var w atomic.Uint32
	w.Store(1)
	done := make(chan error, 1)
	go func() { done <- Wait(&w, 0, 0) }() // 1 != 0: returns at once
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait blocked although the word differed")
	}
}

func TestWakeReleasesWaiter(t *testing.T) {
	var w atomic.Uint32
	done := make(chan struct{})
	go func() {
		for w.Load() == 0 {
			if err := Wait(&w, 0, 0); err != nil {
				t.Error(err)
			}
		}
		close(done)
	}()
	time.Sleep(10 * time.Millisecond)
	w.Store(1)
	if _, err := Wake(&w, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("waiter was not woken")
	}
}

func TestWaitTimesOut(t *testing.T) {
	var w atomic.Uint32
	start := time.Now()
	if err := Wait(&w, 0, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 10*time.Millisecond {
		t.Fatalf("Wait returned after %v, before its timeout", d)
	}
}

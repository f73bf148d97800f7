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
	for _, tt := range []struct {
		name string
		wait func(*atomic.Uint32) error
	}{
		{"Wait", func(w *atomic.Uint32) error { return Wait(w, 0, 0) }},
		{"WaitHeld", func(w *atomic.Uint32) error { return WaitHeld(w, 0, 5*time.Second) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var w atomic.Uint32
			done := make(chan struct{})
			go func() {
				for w.Load() == 0 {
					if err := tt.wait(&w); err != nil {
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
			case <-time.After(4 * time.Second):
				t.Fatal("waiter was not woken")
			}
		})
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

func TestWaitHeld(t *testing.T) {
	t.Run("refuses no timeout", func(t *testing.T) {
		var w atomic.Uint32
		if err := WaitHeld(&w, 0, 0); err == nil {
			t.Fatal("WaitHeld with no timeout returned nil, want an error")
		}
	})
	t.Run("sleeps", func(t *testing.T) {
		// A signal (the runtime's preemption) may end a held sleep early,
		// so count returns over a while rather than time one.
		var w atomic.Uint32
		returns := 0
		for start := time.Now(); time.Since(start) < 100*time.Millisecond; returns++ {
			if err := WaitHeld(&w, 0, 20*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		if returns > 25 {
			t.Fatalf("WaitHeld returned %d times in 100 ms with a 20 ms timeout: it does not sleep", returns)
		}
	})
}

// TestSet: a sleep on several words ends at a wake on any of them, at
// once if one no longer holds its value, and at the timeout otherwise.
func TestSet(t *testing.T) {
	var a, b atomic.Uint32
	var s Set
	s.Add(&a, 0)
	s.Add(&b, 0)
	done := make(chan error, 1)
	go func() { done <- s.Wait(10*time.Second, false) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Keep waking until the sleeper is gone: it may not sleep yet.
		if n, err := Wake(&b, 1); err != nil {
			t.Fatal(err)
		} else if n == 1 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the sleep ended before any wake: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("nobody slept on the set")
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	a.Store(1) // a value that differs: no sleep at all
	for _, held := range []bool{false, true} {
		start := time.Now()
		if err := s.Wait(10*time.Second, held); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("held %v: slept %v on a word that no longer held its value", held, d)
		}
	}
	var empty Set
	if err := empty.Wait(time.Millisecond, false); err == nil {
		t.Error("an empty set slept")
	}
	s.Reset()
	s.Add(&a, 1)
	if err := s.Wait(time.Millisecond, true); err != nil {
		t.Fatalf("a timed-out sleep: %v", err)
	}
}

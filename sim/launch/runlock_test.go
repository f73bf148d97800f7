package launch

import (
	"slices"
	"testing"
)

// TestRunLock: a run whose launcher holds its lock counts as alive for
// every clean-up, before its kernel exists; once released it does not.
func TestRunLock(t *testing.T) {
	run := NewRunID()
	l, err := lockRun(run)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(liveRuns(), run) {
		t.Fatalf("liveRuns() = %v while run %s's lock is held, want it listed", liveRuns(), run)
	}
	if _, err := lockRun(run); err == nil {
		t.Fatal("a second lock of the same run was granted")
	}
	l.release()
	if slices.Contains(liveRuns(), run) {
		t.Fatalf("liveRuns() still lists run %s after its lock was released", run)
	}
}

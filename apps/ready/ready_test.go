package ready

import (
	"path/filepath"
	"testing"
	"time"
)

// A note written while the other side waits reaches it; a note never
// written ends the wait after the timeout.
func TestWriteAwait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	go func() {
		time.Sleep(20 * time.Millisecond)
		if err := Write(path, 43210); err != nil {
			t.Error(err)
		}
	}()
	port, err := Await(path, 5*time.Second)
	if err != nil || port != 43210 {
		t.Fatalf("Await = %d, %v; want 43210", port, err)
	}
	if _, err := Await(filepath.Join(t.TempDir(), "never"), 30*time.Millisecond); err == nil {
		t.Fatal("Await of a note never written: no error")
	}
}

// Package ready is how a listening application tells the client started
// beside it that it listens, and on which port: once it listens it writes
// a note to a file both were given, and the client waits for the note
// before it connects. Neither side guesses a port, and the client never
// connects on the chance that the server is up.
package ready

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Note is what a listening application writes once it listens.
type Note struct {
	Port uint16 `json:"port"`
}

// Write writes the note for a listener on port to path, whole: the file
// appears at once with all of it, never in part.
func Write(path string, port uint16) error {
	b, err := json.Marshal(Note{Port: port})
	if err != nil {
		return fmt.Errorf("ready: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("ready: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ready: %w", err)
	}
	return nil
}

// Await waits up to timeout for the note at path and returns the port in
// it.
func Await(path string, timeout time.Duration) (uint16, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var n Note
			if err := json.Unmarshal(b, &n); err != nil {
				return 0, fmt.Errorf("ready: %s: %w", path, err)
			}
			return n.Port, nil
		}
		if !os.IsNotExist(err) {
			return 0, fmt.Errorf("ready: %w", err)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("ready: no listener's note in %s after %v", path, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

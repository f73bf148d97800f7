// Package atomicfile replaces files whole: a reader that opens the file
// sees either the old contents or the new, never a part of either, and a
// write that fails leaves the old file as it was.
//
// The data goes to a temporary file in the same directory, which is then
// renamed over the file. It is not synced to disk: the files written this
// way are run state and results, which readers need whole, not durable
// across a crash of the machine, and the kernel writes its status from its
// loop, where a sync (8 to 33 ms on this project's VM disk, measured by
// `newtsim bench faults`) would stall every message it routes. The temporary file's name starts with a
// dot and ends in ".tmp-" and a random suffix, so a reader that picks
// files by extension (Prometheus' file_sd reads *.json) never takes it.
package atomicfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes data to the file at path, replacing it atomically. The
// file gets the permissions perm exactly: unlike os.WriteFile, the umask
// does not apply, so that a file meant for other users (a reader running
// as another user, such as Prometheus) is readable by them.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	return nil
}

// WriteJSON writes v to the file at path as JSON, indented by two spaces
// and ending in a newline, replacing the file atomically with permissions
// 0644. A value that cannot be encoded leaves the file as it was.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("atomicfile: encode %s: %w", path, err)
	}
	return WriteFile(path, append(b, '\n'), 0o644)
}

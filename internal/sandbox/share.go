package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ShareTemp lets the processes of a run reach a temporary path named in
// their arguments (a result to write, a capture, a document root, a file
// two processes map), as a harness that runs programs as other users
// must: when path lies under the system's temporary directory, the path
// itself if it exists, else the directory that will hold it, goes to
// group (read and write, and search for a directory), and each directory
// between it and the temporary directory gains search permission for
// group only. Anything else is left alone: no other file of the system
// changes hands.
func ShareTemp(path string, group int) error {
	tmp := filepath.Clean(os.TempDir())
	if !filepath.IsAbs(path) {
		return nil
	}
	path = filepath.Clean(path)
	rel, err := filepath.Rel(tmp, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return nil
	}
	target := path
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		target = filepath.Dir(path)
		if fi, err = os.Stat(target); err != nil || !fi.IsDir() || target == tmp {
			return nil // nowhere the process could write it anyway
		}
	} else if err != nil {
		return fmt.Errorf("sandbox: share %s: %w", path, err)
	}
	add := fs.FileMode(0o060)
	if fi.IsDir() {
		add = 0o070
	}
	if err := grant(target, group, add); err != nil {
		return err
	}
	for d := filepath.Dir(target); d != tmp && len(d) > len(tmp); d = filepath.Dir(d) {
		if err := grant(d, group, 0o010); err != nil {
			return err
		}
	}
	return nil
}

// ShareDir gives the directory dir to group, with read, write and search
// permission: a directory the launcher made for the run's processes to
// write in.
func ShareDir(dir string, group int) error { return grant(dir, group, 0o070) }

// grant gives path to group, adding add to its mode.
func grant(path string, group int, add fs.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("sandbox: share %s: %w", path, err)
	}
	if err := os.Chown(path, -1, group); err != nil {
		return fmt.Errorf("sandbox: share %s: %w", path, err)
	}
	if err := os.Chmod(path, fi.Mode().Perm()|fi.Mode()&(fs.ModeSticky|fs.ModeSetgid)|add); err != nil {
		return fmt.Errorf("sandbox: share %s: %w", path, err)
	}
	return nil
}

package atomicfile

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// leftovers returns the names in dir other than those given.
func leftovers(t *testing.T, dir string, keep ...string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, e := range ents {
		if !contains(keep, e.Name()) {
			extra = append(extra, e.Name())
		}
	}
	return extra
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func TestWriteJSON(t *testing.T) {
	tests := []struct {
		name    string
		v       any
		want    string // the file afterwards
		wantErr string
	}{
		{"object", map[string]int{"a": 1}, "{\n  \"a\": 1\n}\n", ""},
		{"list", []string{"x", "y"}, "[\n  \"x\",\n  \"y\"\n]\n", ""},
		{"channel", make(chan int), "old\n", "unsupported type"},
		{"NaN", math.NaN(), "old\n", "unsupported value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "status.json")
			if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := WriteJSON(path, tt.v)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Errorf("WriteJSON error %v, want one naming %s and mentioning %q", err, path, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("file holds %q, want %q", got, tt.want)
			}
			if extra := leftovers(t, dir, "status.json"); len(extra) != 0 {
				t.Errorf("left behind %v", extra)
			}
		})
	}
}

func TestWriteFilePermissionsIgnoreUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "targets.json")
	if err := WriteFile(path, []byte("[]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
}

func TestWriteFileFailures(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path to write
	}{
		{"no such directory", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "missing", "f.json")
		}},
		{"path is a directory that is not empty", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "d")
			if err := os.MkdirAll(filepath.Join(p, "inside"), 0o755); err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.setup(t, dir)
			before := leftovers(t, dir)
			if err := WriteFile(path, []byte("new"), 0o644); err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("WriteFile error %v, want one naming %s", err, path)
			}
			if after := leftovers(t, dir); len(after) != len(before) {
				t.Errorf("directory held %v, now %v: the temporary file is left", before, after)
			}
		})
	}
}

// TestReaderSeesWholeFiles rewrites a file over and over, alternating two
// contents, while another goroutine reads it: every read must be one of
// the two whole. os.WriteFile, which truncates and then writes, fails this.
func TestReaderSeesWholeFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "result.json")
	a, b := bytes.Repeat([]byte("a"), 1<<16), bytes.Repeat([]byte("b"), 1<<17)
	if err := WriteFile(path, a, 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			data := a
			if i%2 == 1 {
				data = b
			}
			if err := WriteFile(path, data, 0o644); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 300; i++ {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
			t.Fatalf("read %d bytes, neither whole version", len(got))
		}
	}
	close(stop)
	wg.Wait()
}

package prom

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestWriteTargetsFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "targets.json")
	targets := []Target{
		{Addr: "127.0.0.1:9101", Labels: map[string]string{"server": "tcp", "core": "1"}},
		{Addr: "127.0.0.1:9102"},
	}
	if err := WriteTargets(path, targets); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `[
  {
    "targets": [
      "127.0.0.1:9101"
    ],
    "labels": {
      "core": "1",
      "server": "tcp"
    }
  },
  {
    "targets": [
      "127.0.0.1:9102"
    ]
  }
]
`
	if string(got) != want {
		t.Errorf("file holds\n%s\nwant\n%s", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o644 {
		t.Errorf("mode %v, want 0644", m)
	}
}

func TestWriteTargetsRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		targets []Target
	}{
		{"none", nil},
		{"one", []Target{{Addr: "127.0.0.1:1", Labels: map[string]string{"server": "a"}}}},
		{"several", []Target{
			{Addr: "localhost:9090", Labels: map[string]string{"server": "a", "__metrics_path__": "/m"}},
			{Addr: "[::1]:80", Labels: map[string]string{"server": "b"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.json")
			if err := WriteTargets(path, tt.targets); err != nil {
				t.Fatal(err)
			}
			got, err := ReadTargets(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.targets) {
				t.Errorf("read back %+v, want %+v", got, tt.targets)
			}
		})
	}
}

func TestWriteTargetsReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "targets.json")
	for i, addr := range []string{"127.0.0.1:1", "127.0.0.1:2"} {
		if err := WriteTargets(path, []Target{{Addr: addr}}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	got, err := ReadTargets(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Addr != "127.0.0.1:2" {
		t.Errorf("after rewrite: %+v", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only targets.json", names)
	}
}

func TestWriteTargetsRefuses(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		targets []Target
		wantErr string
	}{
		{"yaml name", "t.yml", nil, ".json"},
		{"no extension", "targets", nil, ".json"},
		{"no port", "t.json", []Target{{Addr: "127.0.0.1"}}, "host:port"},
		{"no host", "t.json", []Target{{Addr: ":80"}}, "host:port"},
		{"scheme", "t.json", []Target{{Addr: "http://127.0.0.1:80"}}, "host:port"},
		{"label starts with digit", "t.json", []Target{{Addr: "a:1", Labels: map[string]string{"1x": "v"}}}, "label"},
		{"label with dash", "t.json", []Target{{Addr: "a:1", Labels: map[string]string{"a-b": "v"}}}, "label"},
		{"empty label", "t.json", []Target{{Addr: "a:1", Labels: map[string]string{"": "v"}}}, "label"},
		{"missing directory", "none/t.json", nil, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.path)
			err := WriteTargets(path, tt.targets)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("WriteTargets(%s, %+v) = %v, want an error mentioning %q", tt.path, tt.targets, err, tt.wantErr)
			}
			if _, err := os.Stat(path); err == nil {
				t.Errorf("refused write created %s", path)
			}
		})
	}
}

func TestReadTargetsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"targets": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{bad, filepath.Join(dir, "missing.json")} {
		if _, err := ReadTargets(path); err == nil {
			t.Errorf("ReadTargets(%s) succeeded", path)
		}
	}
}

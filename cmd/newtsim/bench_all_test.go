package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunAll runs every job through a stand-in for newtsim that fails
// bench udp: every job runs, with its three files in the directory and
// --repeat on the HTTP ones only; the summary names the failure; the
// whole fails.
func TestRunAll(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "args")
	exe := filepath.Join(dir, "newtsim")
	script := "#!/bin/sh\necho \"$@\" >> " + log + "\n[ \"$2\" = udp ] && exit 3\nexit 0\n"
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	jobs := allJobs(true)
	err := runAll(context.Background(), &out, &out, exe, "/r", jobs, 3, []string{"--check"})
	if err == nil || !strings.Contains(err.Error(), "1 of 7") {
		t.Errorf("runAll: %v, want 1 of 7 failed", err)
	}
	b, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(jobs) {
		t.Fatalf("%d jobs ran, want %d:\n%s", len(lines), len(jobs), b)
	}
	for i, j := range jobs {
		l := lines[i]
		for _, ext := range []string{"json", "md", "svg"} {
			if !strings.Contains(l, "--"+ext+" /r/"+j.name+"."+ext) {
				t.Errorf("%s: %q lacks --%s /r/%s.%s", j.name, l, ext, j.name, ext)
			}
		}
		if strings.Contains(l, "--repeat 3") != j.http {
			t.Errorf("%s: %q: --repeat only on the HTTP matrices", j.name, l)
		}
		if !strings.Contains(l, "--check") {
			t.Errorf("%s: %q: --check not passed on", j.name, l)
		}
	}
	if s := out.String(); !strings.Contains(s, "udp") || !strings.Contains(s, "FAILED: exit status 3") {
		t.Errorf("the summary does not name udp's failure:\n%s", s)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/sim/bench"
)

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, err string // err "": the path can be written
	}{
		{"new file", filepath.Join(dir, "new.json"), ""},
		{"existing file", file, ""},
		{"relative", "x.json", ""},
		{"missing directory", filepath.Join(dir, "missing", "x.json"), "no such file or directory"},
		{"a directory", dir, "is a directory"},
		{"under a file", filepath.Join(file, "x.json"), "is not a directory"},
		{"under /proc", "/proc/newtsim.json", "/proc/.newtsim-check-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path == "x.json" {
				t.Chdir(dir)
			}
			err := checkFile(tt.path)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("checkFile(%s) = %v, want %q", tt.path, err, tt.err)
			}
		})
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".newtsim-check-*")); len(left) != 0 {
		t.Errorf("the checks left %v", left)
	}
}

// fakeReport is a report that notes what it was asked to write.
type fakeReport struct {
	Bench   string        `json:"bench"`
	Rows    []string      `json:"rows"`
	Checks  []bench.Check `json:"checks"`
	written []string
}

func (r *fakeReport) Table() string { return "the table\n" }

func (r *fakeReport) WriteJSON(path string) error {
	r.written = append(r.written, path)
	return os.WriteFile(path, []byte("{}\n"), 0o644)
}

// fakeBench is a bench command, in the real tree, that reports rep at once.
func fakeBench(rep *fakeReport) *cobra.Command {
	root := newRootCommand(&globals{euid: func() int { return 0 }})
	var jsonOut, mdOut string
	cmd := &cobra.Command{
		Use: "fake",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.Println("bench fake: measuring")
			return showReport(cmd, rep, jsonOut, mdOut, "")
		},
	}
	cmd.Flags().StringVar(&jsonOut, "json", "", "")
	cmd.Flags().StringVar(&mdOut, "md", "", "")
	b, _, _ := root.Find([]string{"bench"})
	b.AddCommand(cmd)
	return root
}

func TestReportFiles(t *testing.T) {
	dir := t.TempDir()
	rep := &fakeReport{Rows: []string{"a"}}
	var stdout, stderr bytes.Buffer
	jsonPath, mdPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.md")
	if code := execute(fakeBench(rep), []string{"bench", "fake", "--json", jsonPath, "--md", mdPath}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "measuring") || !strings.Contains(out, "the table") || !strings.Contains(out, "wrote "+mdPath) {
		t.Errorf("stdout %q: want the progress, the table and what was written", out)
	}
	if len(rep.written) != 1 || rep.written[0] != jsonPath {
		t.Errorf("JSON written to %v, want %s", rep.written, jsonPath)
	}
	if b, err := os.ReadFile(mdPath); err != nil || string(b) != "the table\n" {
		t.Errorf("the Markdown: %q, %v", b, err)
	}
}

func TestJSONToStandardOutput(t *testing.T) {
	rep := &fakeReport{Rows: []string{"a", "b"}}
	var stdout, stderr bytes.Buffer
	mdPath := filepath.Join(t.TempDir(), "r.md")
	if code := execute(fakeBench(rep), []string{"bench", "fake", "--json", "-", "--md", mdPath}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr.String())
	}
	var got fakeReport
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || len(got.Rows) != 2 {
		t.Errorf("stdout %q is not the report as JSON: %v", stdout.String(), err)
	}
	if len(rep.written) != 0 {
		t.Errorf("JSON also written to %v", rep.written)
	}
	if e := stderr.String(); !strings.Contains(e, "measuring") || !strings.Contains(e, "the table") || !strings.Contains(e, "wrote "+mdPath) {
		t.Errorf("stderr %q: want the progress, the table and what was written", e)
	}
}

func TestResultsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "results", "latest")
	var results string
	cmd := &cobra.Command{Use: "run"}
	cmd.Flags().StringVar(&results, "results", "", "")
	if err := cmd.Flags().Set("results", dir); err != nil {
		t.Fatal(err)
	}
	if err := checkOutputs(cmd); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("--results %s: not made (%v)", dir, err)
	}
	if err := cmd.Flags().Set("results", "/proc/newtsim"); err != nil {
		t.Fatal(err)
	}
	if err := checkOutputs(cmd); err == nil || !strings.HasPrefix(err.Error(), "--results /proc/newtsim: ") {
		t.Errorf("--results /proc/newtsim: %v, want an error naming it", err)
	}
}

// TestCheckFlag: with --check, a check not met makes the command fail,
// after the table and files are written, naming the check; without it, or
// with every check met, the command succeeds.
func TestCheckFlag(t *testing.T) {
	met := []bench.Check{{Name: "a", Value: 1, Target: "<= 2", Met: true}}
	unmet := append(met, bench.Check{Name: "ratio b/c", Value: 3, Target: "<= 2", Met: false})
	tests := []struct {
		name   string
		args   []string
		checks []bench.Check
		code   int
	}{
		{"unmet without --check", nil, unmet, 0},
		{"met with --check", []string{"--check"}, met, 0},
		{"unmet with --check", []string{"--check"}, unmet, 1},
		{"unmet with --check=false", []string{"--check=false"}, unmet, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := &fakeReport{Bench: "fake", Checks: tt.checks}
			jsonPath := filepath.Join(t.TempDir(), "r.json")
			var stdout, stderr bytes.Buffer
			args := append([]string{"bench", "fake", "--json", jsonPath}, tt.args...)
			if code := execute(fakeBench(rep), args, &stdout, &stderr); code != tt.code {
				t.Fatalf("exit status %d, want %d: %s", code, tt.code, stderr.String())
			}
			if len(rep.written) != 1 || !strings.Contains(stdout.String(), "the table") {
				t.Errorf("the table and JSON not written first: %v\n%s", rep.written, stdout.String())
			}
			if tt.code != 0 && !strings.Contains(stderr.String(), "fake: ratio b/c (3, want <= 2)") {
				t.Errorf("stderr %q does not name the check not met", stderr.String())
			}
		})
	}
}

// TestEveryBenchHasCheck: every bench command, and run, takes --check.
func TestEveryBenchHasCheck(t *testing.T) {
	root := NewRootCommand()
	b, _, _ := root.Find([]string{"bench"})
	run, _, _ := root.Find([]string{"run"})
	cmds := append([]*cobra.Command{run}, b.Commands()...)
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		if c.Flags().Lookup("check") == nil && c.InheritedFlags().Lookup("check") == nil {
			t.Errorf("%s has no --check", c.CommandPath())
		}
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runCLI runs the real command tree with args as the user euid and returns
// the exit status and what it wrote.
func runCLI(t *testing.T, euid int, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand(&globals{euid: func() int { return euid }})
	code = execute(root, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestBadInputFails(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // on standard error
	}{
		{"typo under bench", []string{"bench", "eagian"},
			`newtsim: unknown command "eagian" for "newtsim bench"; did you mean eagain?`},
		{"typo at the top", []string{"bnech"}, `newtsim: unknown command "bnech" for "newtsim"; did you mean bench?`},
		{"nothing like it", []string{"bench", "xyzzy"},
			"newtsim: unknown command \"xyzzy\" for \"newtsim bench\" (see `newtsim bench --help`)"},
		{"unknown top command", []string{"frobnicate"}, `unknown command "frobnicate" for "newtsim"`},
		{"unknown flag", []string{"bench", "eagain", "--jsno", "x.json"},
			"newtsim: unknown flag: --jsno (see `newtsim bench eagain --help`)"},
		{"unknown flag at the top", []string{"--verbose"}, "newtsim: unknown flag: --verbose"},
		{"argument to a command that takes none", []string{"status", "now"}, `unknown command "now" for "newtsim status"`},
		{"typo under completion", []string{"completion", "bsh"}, `unknown command "bsh" for "newtsim completion"; did you mean bash`},
		{"bad flag value", []string{"bench", "tcp", "--reps", "many"}, `invalid argument "many" for "--reps"`},
		{"missing output directory", []string{"bench", "eagain", "--json", "/nonexistent/eagain.json"},
			"newtsim: --json /nonexistent/eagain.json: stat /nonexistent: no such file or directory"},
		{"output path is a directory", []string{"bench", "ipc", "--md", "/tmp"}, "newtsim: --md /tmp: is a directory"},
		{"results under /proc", []string{"run", "--results", "/proc/newtsim-results"}, "newtsim: --results /proc/newtsim-results:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, 0, tt.args...)
			if code != 1 {
				t.Errorf("newtsim %s: exit status %d, want 1", strings.Join(tt.args, " "), code)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("newtsim %s: stderr %q, want it to hold %q", strings.Join(tt.args, " "), stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("newtsim %s: printed %q, want nothing (no help, no measuring)", strings.Join(tt.args, " "), stdout)
			}
		})
	}
}

func TestGoodInputSucceeds(t *testing.T) {
	tests := []struct {
		args []string
		want string // on standard output
	}{
		{[]string{}, "Available Commands:"},
		{[]string{"bench"}, "Available Commands:"},
		{[]string{"bench", "--help"}, "eagain"},
		{[]string{"--version"}, "newtsim "},
		{[]string{"version"}, "newtsim "},
		{[]string{"help", "bench"}, "eagain"},
		{[]string{"completion", "bash"}, "bash completion"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(t, 1000, tt.args...)
		if code != 0 || stderr != "" {
			t.Errorf("newtsim %s: exit status %d, stderr %q; want 0 and nothing", strings.Join(tt.args, " "), code, stderr)
		}
		if !strings.Contains(stdout, tt.want) {
			t.Errorf("newtsim %s: printed %q, want it to hold %q", strings.Join(tt.args, " "), stdout, tt.want)
		}
	}
}

func TestNeedsRoot(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		name string // "" when the command runs without root
	}{
		{[]string{"up"}, "up"},
		{[]string{"down"}, "down"},
		{[]string{"run", "--results", dir}, "run"},
		{[]string{"host"}, "host"},
		{[]string{"bench", "ipc"}, "bench ipc"},
		{[]string{"bench", "eagain", "--json", "/nonexistent/x.json"}, "bench eagain"},
		{[]string{"bench", "paper", "--short"}, "bench paper"},
		{[]string{"status", "--state-dir", dir}, ""},
		{[]string{"version"}, ""},
	}
	for _, tt := range tests {
		code, _, stderr := runCLI(t, 1000, tt.args...)
		if tt.name == "" {
			if code != 0 {
				t.Errorf("newtsim %s as a user: exit status %d (%s), want 0", strings.Join(tt.args, " "), code, stderr)
			}
			continue
		}
		want := "newtsim: " + tt.name + " needs root (network namespaces, /run/newtsim, pinning): run it with sudo\n"
		if code != 1 || stderr != want {
			t.Errorf("newtsim %s as a user: exit status %d, stderr %q; want 1 and %q", strings.Join(tt.args, " "), code, stderr, want)
		}
	}
}

// TestBenchCommandsNeedRoot: every benchmark, added later too, is checked.
func TestBenchCommandsNeedRoot(t *testing.T) {
	bench, _, err := NewRootCommand().Find([]string{"bench"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range bench.Commands() {
		if !c.Hidden && !needsRoot(c) {
			t.Errorf("%s does not need root", c.CommandPath())
		}
	}
}

func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := NewRootCommand()
	completion(root)
	walk(root)
}

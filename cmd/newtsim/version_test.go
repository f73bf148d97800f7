package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribeBuild(t *testing.T) {
	tests := []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{"from a clean commit", debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Version: "v0.0.0-20261205185918-3c6dbbc17530"},
			Settings: []debug.BuildSetting{
				{Key: "-compiler", Value: "gc"},
				{Key: "vcs.revision", Value: "3c6dbbc17530f017139d745772b85859342d8a0f"},
				{Key: "vcs.time", Value: "2026-12-05T18:59:18Z"},
				{Key: "vcs.modified", Value: "false"},
			},
		}, `newtsim v0.0.0-20261205185918-3c6dbbc17530
  commit:      3c6dbbc17530f017139d745772b85859342d8a0f
  commit time: 2026-12-05T18:59:18Z
  modified:    false
  go:          go1.26.8
`},
		{"without version control", debug.BuildInfo{GoVersion: "go1.26.8"}, `newtsim (devel)
  go:          go1.26.8
`},
	}
	for _, tt := range tests {
		if got := describeBuild(&tt.info); got != tt.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}

func TestVersionCommands(t *testing.T) {
	_, flag, _ := runCLI(t, 1000, "--version")
	_, cmd, _ := runCLI(t, 1000, "version")
	if flag != cmd || !strings.HasPrefix(flag, "newtsim ") || !strings.Contains(flag, "go:") {
		t.Errorf("--version printed %q and version %q: want the same, naming the Go version", flag, cmd)
	}
}

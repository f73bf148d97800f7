package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// NewVersionCommand returns `newtsim version`, which prints what
// `newtsim --version` prints.
func NewVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the module version, the commit it was built from and the Go version",
		Example: "  newtsim version\n  newtsim --version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(cmd.OutOrStdout(), version())
			return nil
		},
	}
}

// version describes this binary from its build information.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "newtsim (no build information)\n"
	}
	return describeBuild(info)
}

// describeBuild formats a binary's build information: the module version,
// then the commit (vcs.revision), its time, whether the tree had changes
// not committed (vcs.modified), and the Go version, each where known.
func describeBuild(info *debug.BuildInfo) string {
	var b strings.Builder
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	fmt.Fprintf(&b, "newtsim %s\n", v)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for _, f := range []struct{ label, key string }{
		{"commit", "vcs.revision"}, {"commit time", "vcs.time"}, {"modified", "vcs.modified"},
	} {
		if v, ok := settings[f.key]; ok {
			fmt.Fprintf(&b, "  %-12s %s\n", f.label+":", v)
		}
	}
	fmt.Fprintf(&b, "  %-12s %s\n", "go:", info.GoVersion)
	return b.String()
}

package main

import (
	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/sim/launch"
)

// NewDownCommand returns `newtsim down`.
func NewDownCommand(g *globals) *cobra.Command {
	return needingRoot(&cobra.Command{
		Use:     "down",
		Short:   "Stop the running topology and remove everything it left behind",
		Example: "  sudo newtsim down\n  sudo newtsim down --state-dir /tmp/newtsim-state",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return launch.Down(g.stateDir, cmd.OutOrStdout())
		},
	})
}

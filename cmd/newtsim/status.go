package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/launch"
)

// launchStatus is the status the launcher reports when a run is up.
type launchStatus = kernel.Status

// NewStatusCommand returns `newtsim status`.
func NewStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show what runs: every process with its pid, cores, transport and metrics port",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			st, alive := launch.Running(g.stateDir)
			if !alive {
				fmt.Fprintln(out, "nothing is running")
				if st != nil {
					fmt.Fprintf(out, "(run %s left state behind: `newtsim down` cleans it up)\n", st.Run)
				}
				return nil
			}
			s, err := kernel.ReadStatus(g.stateDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "core plan: %s\n", s.Plan)
			launch.PrintStatus(out, s)
			return nil
		},
	}
}

package main

import (
	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/sim/launch"
)

// globals are the flags every command shares.
type globals struct {
	stateDir string
}

// NewRootCommand returns the newtsim command with every subcommand.
func NewRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "newtsim",
		Short: "A multiserver OS network stack as real processes, measured beside Linux",
		Long: `newtsim runs a NewtOS-style network stack (kernel, syscall, tcp, udp, ip, pf
and driver servers, each its own process pinned to its cores) and measures what
socket calls cost on it, beside Linux's own sockets in the same run.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", launch.DefaultStateDir, "directory for the running topology's state files")
	root.AddCommand(
		NewUpCommand(g), NewDownCommand(g), NewStatusCommand(g), NewRunCommand(g),
		NewBenchCommand(g), NewKernelCommand(g), NewServeCommand(), NewHostCommand(),
	)
	return root
}

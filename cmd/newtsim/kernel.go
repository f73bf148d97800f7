package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/internal/spawn"
	"github.com/newtsim/newtsim/kernel"
)

// NewKernelCommand returns the hidden `newtsim kernel`, the kernel process
// that `up` starts with the Spec it resolved.
func NewKernelCommand(g *globals) *cobra.Command {
	var run, specPath string
	cmd := &cobra.Command{
		Use:    "kernel",
		Short:  "Run the kernel process (started by `newtsim up`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := kernel.ReadSpec(specPath)
			if err != nil {
				return err
			}
			exe, err := spawn.Self()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return kernel.Run(ctx, kernel.Config{Run: run, StateDir: g.stateDir, Spec: *spec,
				Exe: exe, Log: log.New(os.Stderr, "kernel: ", log.Lmicroseconds)})
		},
	}
	cmd.Flags().StringVar(&run, "run", "", "run id")
	cmd.Flags().StringVar(&specPath, "spec", "", "the run's processes, resolved by the launcher (JSON)")
	for _, f := range []string{"run", "spec"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/internal/spawn"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/coreplan"
	"github.com/newtsim/newtsim/sim/topology"
)

// NewKernelCommand returns the hidden `newtsim kernel`, the kernel process
// that `up` starts.
func NewKernelCommand(g *globals) *cobra.Command {
	var run, topoPath, cpus string
	var slots int
	cmd := &cobra.Command{
		Use:    "kernel",
		Short:  "Run the kernel process (started by `newtsim up`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := topology.Load(topoPath)
			if err != nil {
				return err
			}
			cs, err := cpu.ParseList(cpus)
			if err != nil {
				return err
			}
			plan, err := coreplan.FromTopology(t, cs, "app")
			if err != nil {
				return err
			}
			exe, err := spawn.Self()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return kernel.Run(ctx, kernel.Config{Run: run, StateDir: g.stateDir, Topology: t, Plan: plan,
				Exe: exe, Slots: slots, Log: log.New(os.Stderr, "kernel: ", log.Lmicroseconds)})
		},
	}
	cmd.Flags().StringVar(&run, "run", "", "run id")
	cmd.Flags().StringVar(&topoPath, "topology", "", "topology file")
	cmd.Flags().StringVar(&cpus, "cpus", "", "CPUs the plan is made for")
	cmd.Flags().IntVar(&slots, "slots", 0, "messages per ring")
	for _, f := range []string{"run", "topology", "cpus"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

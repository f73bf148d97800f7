package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/launch"
)

// NewRunCommand returns `newtsim run`, the main job that `make run` runs:
// start the topology, show it, run the IPC benchmark, stop cleanly.
func NewRunCommand(g *globals) *cobra.Command {
	var f topoFlags
	var results string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "The main job: start the topology, print the core plan and processes, run the IPC benchmark table, stop",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			t, cpus, err := f.load()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			fmt.Fprintln(out, "== starting the topology")
			h, err := launch.Start(ctx, launch.Options{StateDir: g.stateDir, Topology: t, CPUs: cpus, Out: out, Slots: f.slots})
			if err != nil {
				return err
			}
			launch.PrintStatus(out, h.Status)
			fmt.Fprintf(out, "metrics: each process serves /metrics on the port above; Prometheus targets in %s\n",
				filepath.Join(g.stateDir, kernel.TargetsFile))
			if err := h.Stop(); err != nil {
				return err
			}
			fmt.Fprintln(out, "== topology stopped; the IPC benchmark runs its own processes")
			var jsonOut, mdOut string
			if results != "" {
				if err := os.MkdirAll(results, 0o755); err != nil {
					return err
				}
				jsonOut, mdOut = filepath.Join(results, "ipc.json"), filepath.Join(results, "ipc.md")
			}
			_, err = runIPCBench(ctx, cmd, f.cpus, f.slots, jsonOut, mdOut)
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&results, "results", "", "also write results/ipc.json and ipc.md into this directory")
	return cmd
}

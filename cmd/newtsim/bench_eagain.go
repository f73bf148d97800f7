package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/sim/bench"
)

// newBenchEagainCommand is `newtsim bench eagain`: the NewtOS talk's
// recvfrom-EAGAIN table, measured here.
func newBenchEagainCommand() *cobra.Command {
	var jsonOut, mdOut, svgOut, cpus string
	var breakdown bool
	var compare bool
	cmd := &cobra.Command{
		Use:   "eagain",
		Short: "recvfrom() returning EAGAIN on an idle TCP socket: kernel messages, user-space messages, Linux, exposed buffers",
		Example: `  sudo newtsim bench eagain
  sudo newtsim bench eagain --json results/eagain.json --md results/eagain.md --svg results/eagain.svg`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop, cs, command, err := benchStart(cpus)
			if err != nil {
				return err
			}
			defer stop()
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "bench eagain: measuring")
			rep, err := bench.Eagain(ctx, bench.EagainOptions{CPUs: cs, Progress: out, Command: command, Breakdown: breakdown,
				CompareSandbox: compare})
			if err != nil {
				return err
			}
			return showReport(cmd, rep, jsonOut, mdOut, svgOut)
		},
	}
	reportFlags(cmd.Flags(), &jsonOut, &mdOut)
	cmd.Flags().StringVar(&svgOut, "svg", "", "draw the rows as an SVG bar chart (log scale) in this file")
	cmd.Flags().BoolVar(&breakdown, "breakdown", false, "trace the message rows and break a call down by hop (docs/LATENCY.md)")
	cmd.Flags().StringVar(&cpus, "cpus", "", "CPUs to use (default: every online CPU)")
	cmd.Flags().BoolVar(&compare, "compare-sandbox", false, "measure every row again with the sandbox off, right after it (docs/SANDBOX.md)")
	return cmd
}

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
	"github.com/newtsim/newtsim/sim/bench"
	"github.com/newtsim/newtsim/sim/launch"
)

// NewRunCommand returns `newtsim run`, the main job that `make run` runs:
// start the topology, show it, run the IPC benchmark, stop cleanly.
func NewRunCommand(g *globals) *cobra.Command {
	var f topoFlags
	var results string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "The main job: start the topology, print the core plan and processes, run the IPC, recvfrom-EAGAIN and short HTTP tables, stop",
		Example: `  sudo newtsim run
  sudo newtsim run --results results/latest   # what make run runs
  sudo newtsim run --transport kernel --cpus 0-3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			t, cpus, err := f.load()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			fmt.Fprintln(out, "== starting the topology")
			h, err := launch.Start(ctx, launch.Options{StateDir: g.stateDir, Topology: t, CPUs: cpus, Out: out, Slots: f.slots,
				NoSandbox: f.noSandbox, IDBase: f.idBase})
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
			// in names a file of the results directory; "" when none was asked for.
			in := func(name string) string {
				if results == "" {
					return ""
				}
				return filepath.Join(results, name)
			}
			cs, err := parseCPUs(f.cpus)
			if err != nil {
				return err
			}
			if _, err = runIPCBench(ctx, cmd, bench.IPCOptions{CPUs: cs, Command: "newtsim run", Slots: f.slots}, in("ipc.json"), in("ipc.md"), in("ipc.svg")); err != nil {
				return err
			}
			fmt.Fprintln(out, "\n== recvfrom() returning EAGAIN, row by row (the NewtOS talk's table)")
			rep, err := bench.Eagain(ctx, bench.EagainOptions{CPUs: cs, Progress: out, Command: "newtsim run"})
			if err != nil {
				return err
			}
			if err := showReport(cmd, rep, in("eagain.json"), in("eagain.md"), in("eagain.svg")); err != nil {
				return err
			}
			fmt.Fprintln(out, "\n== the HTTP evaluation, short: httpd on every backend and lighttpd, loaded from a client namespace (full matrix: newtsim bench paper)")
			hrep, err := bench.Paper(ctx, bench.HTTPOptions{CPUs: cs, Short: true, Progress: out, Command: "newtsim run"})
			if err != nil {
				return err
			}
			if err := showReport(cmd, hrep, in("http-short.json"), in("http-short.md"), in("http-short.svg")); err != nil {
				return err
			}
			if results != "" {
				fmt.Fprintf(out, "\n== done: every run stopped; the results are in %s; each process served its metrics while it ran (the targets file above)\n", results)
			} else {
				fmt.Fprintln(out, "\n== done: every run stopped; each process served its metrics while it ran (the targets file above); --results DIR writes the tables")
			}
			return nil
		},
	}
	f.register(cmd)
	checkFlag(cmd.Flags())
	cmd.Flags().StringVar(&results, "results", "", "also write the tables into this directory, made if missing (ipc, eagain and http-short, each as .json, .md and .svg)")
	return needingRoot(cmd)
}

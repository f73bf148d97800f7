package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/sim/bench"
)

// newBenchFaultsCommand is `newtsim bench faults`: each server of the
// simulated host killed under an HTTP load, and what it cost.
func newBenchFaultsCommand() *cobra.Command {
	var jsonOut, mdOut, svgOut, cpus, log string
	var o bench.FaultOptions
	cmd := &cobra.Command{
		Use:   "faults",
		Short: "Crash under load: kill -9 each server (and httpd) while a client loads httpd; time to restart and recover, requests and connections lost, leaks",
		Long: "For every backend and every server named, starts the simulated host with httpd on the backend, loads it from\n" +
			"the run's namespace, kills the server with SIGKILL and records: the time until the kernel has it running and\n" +
			"registered again, the time until a new request succeeds, the requests failed and connections lost meanwhile,\n" +
			"and, once the run is stopped, the processes and /dev/shm files it left.",
		Example: `  sudo newtsim bench faults --quick
  sudo newtsim bench faults --backends exposed --servers tcp,ip --json results/faults.json --md results/faults.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop, cs, command, err := benchStart(cpus)
			if err != nil {
				return err
			}
			defer stop()
			if log != "" {
				lf, err := os.Create(log)
				if err != nil {
					return err
				}
				defer lf.Close()
				o.Log = lf
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "bench faults: killing servers under load")
			o.CPUs, o.Progress, o.Command = cs, out, command
			rep, err := bench.Faults(ctx, o)
			if err != nil {
				return err
			}
			return showReport(cmd, rep, jsonOut, mdOut, svgOut)
		},
	}
	f := cmd.Flags()
	reportFlags(f, &jsonOut, &mdOut)
	svgFlag(f, &svgOut)
	f.StringVar(&cpus, "cpus", "", "CPUs to use, the first the client's (default: every online CPU)")
	f.StringVar(&log, "log", "", "write every process's log to this file (default: a temporary file, kept only when the benchmark fails)")
	f.BoolVar(&o.Quick, "quick", false, "a short run for a test: shorter windows, and only the servers "+fmt.Sprint(bench.QuickFaultServers))
	f.StringSliceVar(&o.Backends, "backends", nil, fmt.Sprintf("httpd's backends (default %v)", bench.FaultBackends))
	f.StringSliceVar(&o.Servers, "servers", nil, fmt.Sprintf("the processes to kill (default %v)", bench.FaultServers))
	f.IntVar(&o.Keepalive, "keepalive", 0, "client workers keeping their connection (default 4)")
	f.IntVar(&o.Fresh, "fresh", 0, "client workers opening a connection per request (default 4)")
	f.DurationVar(&o.RequestTimeout, "request-timeout", 0, "a request not answered within this fails (default 2s)")
	f.DurationVar(&o.Timeout, "timeout", 0, "the longest wait after a kill for restart and recovery (default 10s, 4s with --quick)")
	return cmd
}

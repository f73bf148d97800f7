package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/sim/bench"
	"github.com/newtsim/newtsim/sim/machine"
)

// NewBenchCommand returns `newtsim bench` and its benchmarks.
func NewBenchCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure newtsim beside its references and Linux, in one run",
	}
	cmd.AddCommand(newBenchIPCCommand(), newBenchPeerCommand())
	return cmd
}

func newBenchIPCCommand() *cobra.Command {
	var jsonOut, mdOut, cpus string
	var slots int
	cmd := &cobra.Command{
		Use:   "ipc",
		Short: "Round trips over user-space channels and kernel messages, beside a cache-line ping-pong and a pipe",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			_, err := runIPCBench(ctx, cmd, cpus, slots, jsonOut, mdOut)
			return err
		},
	}
	cmd.Flags().StringVar(&jsonOut, "json", "", "write the report as JSON to this file")
	cmd.Flags().StringVar(&mdOut, "md", "", "write the report as Markdown to this file")
	cmd.Flags().StringVar(&cpus, "cpus", "", "CPUs to use, such as 0-1 (default: every online CPU; the first two are used)")
	cmd.Flags().IntVar(&slots, "slots", 0, "messages per ring for the transport rows (a power of two; default 256)")
	return cmd
}

func runIPCBench(ctx context.Context, cmd *cobra.Command, cpus string, slots int, jsonOut, mdOut string) (*bench.Report, error) {
	out := cmd.OutOrStdout()
	var cs []int
	if cpus != "" {
		var err error
		if cs, err = machine.ParseCPUList(cpus); err != nil {
			return nil, fmt.Errorf("--cpus: %w", err)
		}
	}
	fmt.Fprintln(out, "bench ipc: measuring (each row in its own pinned processes)")
	rep, err := bench.IPC(ctx, bench.IPCOptions{CPUs: cs, Progress: out, Slots: slots,
		Command: "newtsim " + strings.Join(os.Args[1:], " ")})
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(out)
	fmt.Fprint(out, rep.Table())
	if jsonOut != "" {
		if err := rep.WriteJSON(jsonOut); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "wrote %s\n", jsonOut)
	}
	if mdOut != "" {
		if err := os.WriteFile(mdOut, []byte(rep.Table()), 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "wrote %s\n", mdOut)
	}
	return rep, nil
}

func newBenchPeerCommand() *cobra.Command {
	var mode, file, out string
	cmd := &cobra.Command{
		Use:    "peer",
		Hidden: true,
		Short:  "One side of a reference measurement (started by bench ipc)",
		RunE: func(*cobra.Command, []string) error {
			return bench.PeerMain(mode, file, out)
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "", "cacheline-ping, cacheline-pong, pipe-ping or pipe-pong")
	cmd.Flags().StringVar(&file, "file", "", "the shared cache line's file")
	cmd.Flags().StringVar(&out, "out", "", "where the ping side writes its result")
	return cmd
}

package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/sim/timeline"
)

// NewTraceCommand returns `newtsim trace`.
func NewTraceCommand(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Write the running topology's recorded window as a Chrome trace (open it in Perfetto or chrome://tracing)",
		Long: `trace reads every server's trace ring (a run started with ` + "`newtsim up --trace`" + `) from its
metrics port, matches each message's put in its sender with its take in its receiver, and writes a
timeline in Chrome's trace event format: a process per server, its handlings and sleeps as slices,
every message as a slice on its receiver's inbox track with an arrow from its sender. See docs/LATENCY.md.`,
		Example: `  sudo newtsim up --trace &
  newtsim trace --out trace.json   # then open https://ui.perfetto.dev and load trace.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("trace: --out FILE is required")
			}
			st, err := readStatus(g.stateDir)
			if err != nil {
				return err
			}
			if !st.Running {
				return fmt.Errorf("trace: nothing is running (start a run with `newtsim up --trace`)")
			}
			snaps, hz, err := timeline.Capture(context.Background(), g.stateDir)
			if err != nil {
				return err
			}
			msgs := timeline.Match(snaps)
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			if err := timeline.WriteChrome(f, snaps, msgs, hz); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			events := 0
			for _, s := range snaps {
				events += len(s.Events)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trace: %d processes, %d events, %d messages matched: %s\n", len(snaps), events, len(msgs), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the Chrome trace file to write (JSON)")
	return cmd
}

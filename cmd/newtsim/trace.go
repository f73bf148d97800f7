package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/sim/timeline"
)

// NewTraceCommand returns `newtsim trace`.
func NewTraceCommand(g *globals) *cobra.Command {
	var out, svg string
	var span time.Duration
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
			if out == "" && svg == "" {
				return fmt.Errorf("trace: --out FILE (or --svg FILE) is required")
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
			if out != "" {
				if err := writeFile(out, func(w io.Writer) error { return timeline.WriteChrome(w, snaps, msgs, hz) }); err != nil {
					return err
				}
			}
			if svg != "" {
				start, ok := timeline.Window(msgs, timeline.Names(snaps), "nic", ipc.FrameRx, span, hz)
				if !ok {
					return fmt.Errorf("trace: no frame from the nic with %v recorded after it, to draw", span)
				}
				if err := writeFile(svg, func(w io.Writer) error { return timeline.WriteSVG(w, snaps, msgs, hz, start, span) }); err != nil {
					return err
				}
			}
			events := 0
			for _, s := range snaps {
				events += len(s.Events)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trace: %d processes, %d events, %d messages matched: %s %s\n", len(snaps), events, len(msgs), out, svg)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the Chrome trace file to write (JSON)")
	cmd.Flags().StringVar(&svg, "svg", "", "also draw a picture of the timeline in this SVG file: --span from shortly before the last frame the nic passed up")
	cmd.Flags().DurationVar(&span, "span", 500*time.Microsecond, "the time the SVG shows")
	return cmd
}

// writeFile creates path and writes it with write.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

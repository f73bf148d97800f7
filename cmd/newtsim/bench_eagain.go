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
)

// newBenchEagainCommand is `newtsim bench eagain`: the NewtOS talk's
// recvfrom-EAGAIN table, measured here.
func newBenchEagainCommand() *cobra.Command {
	var jsonOut, mdOut, svgOut, cpus string
	cmd := &cobra.Command{
		Use:   "eagain",
		Short: "recvfrom() returning EAGAIN on an idle TCP socket: kernel messages, user-space messages, Linux, exposed buffers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cs, err := parseCPUs(cpus)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "bench eagain: measuring")
			rep, err := bench.Eagain(ctx, bench.EagainOptions{CPUs: cs, Progress: out,
				Command: "newtsim " + strings.Join(os.Args[1:], " ")})
			if err != nil {
				return err
			}
			return writeEagain(out, rep, jsonOut, mdOut, svgOut)
		},
	}
	cmd.Flags().StringVar(&jsonOut, "json", "", "write the report as JSON to this file")
	cmd.Flags().StringVar(&mdOut, "md", "", "write the table as Markdown to this file")
	cmd.Flags().StringVar(&svgOut, "svg", "", "draw the rows as an SVG bar chart (log scale) in this file")
	cmd.Flags().StringVar(&cpus, "cpus", "", "CPUs to use (default: every online CPU)")
	return cmd
}

// writeEagain prints the eagain table and writes the files asked for.
func writeEagain(out interface{ Write([]byte) (int, error) }, rep *bench.EagainReport, jsonOut, mdOut, svgOut string) error {
	fmt.Fprintln(out)
	fmt.Fprint(out, rep.Table())
	for _, f := range []struct {
		path  string
		write func(string) error
	}{
		{jsonOut, rep.WriteJSON},
		{mdOut, func(p string) error { return os.WriteFile(p, []byte(rep.Table()), 0o644) }},
		{svgOut, rep.WriteSVG},
	} {
		if f.path == "" {
			continue
		}
		if err := f.write(f.path); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s\n", f.path)
	}
	return nil
}

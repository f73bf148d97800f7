package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/launch"
)

// launchStatus is the status the launcher reports when a run is up.
type launchStatus = kernel.Status

// statusReport is what `newtsim status --json` prints: whether a run is up
// and, when one is, its status as the kernel writes it.
type statusReport struct {
	Running bool `json:"running"`
	// Stale names a run that stopped without cleaning up after itself
	// (`newtsim down` does).
	Stale string `json:"stale_run,omitempty"`
	*kernel.Status
}

// NewStatusCommand returns `newtsim status`.
func NewStatusCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what runs: every process with its pid, cores, transport and metrics port",
		Example: `  newtsim status
  newtsim status --json | jq '.processes[] | {name, pid, metrics_port}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := readStatus(g.stateDir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, err := json.MarshalIndent(r, "", "  ")
				if err != nil {
					return fmt.Errorf("encode the status: %w", err)
				}
				_, err = out.Write(append(b, '\n'))
				return err
			}
			if !r.Running {
				fmt.Fprintln(out, "nothing is running")
				if r.Stale != "" {
					fmt.Fprintf(out, "(run %s left state behind: `newtsim down` cleans it up)\n", r.Stale)
				}
				return nil
			}
			fmt.Fprintf(out, "core plan: %s\n", r.Plan)
			launch.PrintStatus(out, r.Status)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON, for scripts")
	return cmd
}

// readStatus reads the status of the run whose state is in dir.
func readStatus(dir string) (*statusReport, error) {
	st, alive := launch.Running(dir)
	if !alive {
		r := &statusReport{}
		if st != nil {
			r.Stale = st.Run
		}
		return r, nil
	}
	s, err := kernel.ReadStatus(dir)
	if err != nil {
		return nil, err
	}
	return &statusReport{Running: true, Status: s}, nil
}

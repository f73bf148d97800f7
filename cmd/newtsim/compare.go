package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/sim/compare"
)

// NewCompareCommand returns `newtsim compare`.
func NewCompareCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "compare OLD.json NEW.json",
		Short: "Compare two result files of one benchmark: each figure's ratio, and whether it stands out of the noise",
		Long: `compare reads two JSON files written by the same ` + "`newtsim bench`" + ` command
(` + strings.Join(compare.Kinds(), ", ") + `) and prints, for every figure of every row, the old
and new values, their ratio and whether the difference stands out of the noise,
as benchstat does: by the Mann-Whitney U test (p < 0.05) where both rows carry
their samples (--repeat, or tcp's per-batch rates), by whether the min-max
ranges overlap where they carry only those, and "cannot tell" where either
side is a single figure. "~" means within the noise.`,
		Example: `  newtsim compare results/ipc.json results/latest/ipc.json
  newtsim compare old/http.json new/http.json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			old, err := compare.Read(args[0])
			if err != nil {
				return err
			}
			new, err := compare.Read(args[1])
			if err != nil {
				return err
			}
			rows, err := compare.Compare(old, new)
			if err != nil {
				return err
			}
			compare.Write(cmd.OutOrStdout(), old, new, rows)
			return nil
		},
	}
}

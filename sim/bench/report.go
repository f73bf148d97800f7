package bench

import (
	"fmt"
	"io"
)

// String says whether the check met its target, with the value.
func (c Check) String() string {
	met := "met"
	if !c.Met {
		met = "NOT met"
	}
	return fmt.Sprintf("%s: %.3g (target %s): %s", c.Name, c.Value, c.Target, met)
}

// writeChecks lists the checks and notes of a report, a line each, after
// prefix ("check ", "- target ", ...).
func writeChecks(w io.Writer, checkPrefix, notePrefix string, checks []Check, notes []string) {
	for _, c := range checks {
		fmt.Fprintf(w, "%s%s\n", checkPrefix, c)
	}
	for _, n := range notes {
		fmt.Fprintf(w, "%s%s\n", notePrefix, n)
	}
}

package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/machine"
)

// TestEagainTableHeader: the EAGAIN table opens as the other reports do,
// with the command, the time, the machine (named once) and the core plan.
func TestEagainTableHeader(t *testing.T) {
	r := &EagainReport{Bench: "eagain", Command: "newtsim bench eagain --md x.md", Time: time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC),
		Machine: machine.Info{CPUModel: "AMD EPYC", CPUs: 2}, CorePlan: "shared/2cpu"}
	got := r.Table()
	for _, want := range []string{"- command: `newtsim bench eagain --md x.md`\n", "- when: 2026-12-05T22:00:00Z\n",
		"- machine: AMD EPYC, 2 CPUs", "- core plan: shared/2cpu\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "machine: machine:") {
		t.Errorf("the machine is named twice:\n%s", got)
	}
}

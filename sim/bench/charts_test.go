package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChartsFromResults draws the recorded results of bench ipc, udp, tcp
// and faults: each chart is written, with error bars where the rows have
// a spread, and the machine under it.
func TestChartsFromResults(t *testing.T) {
	for _, tt := range []struct {
		file   string
		spread bool
	}{{"ipc.json", true}, {"udp.json", true}, {"tcp.json", true}, {"faults.json", false}} {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "results", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var rep interface{ WriteSVG(string) error }
			if tt.file == "faults.json" {
				rep = &FaultReport{}
			} else {
				rep = &Report{}
			}
			if err := json.Unmarshal(b, rep); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "chart.svg")
			if err := rep.WriteSVG(path); err != nil {
				t.Fatal(err)
			}
			svg, _ := os.ReadFile(path)
			if got := strings.Contains(string(svg), `class="spread"`); got != tt.spread {
				t.Errorf("error bars drawn: %v, want %v", got, tt.spread)
			}
			if !strings.Contains(string(svg), `class="caption"`) || !strings.Contains(string(svg), "AMD EPYC") {
				t.Errorf("no caption naming the machine")
			}
		})
	}
	if err := (&Report{Bench: "tcp"}).WriteSVG(filepath.Join(t.TempDir(), "x.svg")); err == nil {
		t.Error("an empty report drew a chart")
	}
}

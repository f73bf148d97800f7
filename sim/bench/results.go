package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/newtsim/newtsim/sim/bench/probe"
)

// readResult waits for a measuring process's result file.
func readResult(path string, timeout time.Duration, failed <-chan error) (probe.Result, error) {
	var r probe.Result
	err := awaitJSON(path, timeout, failed, &r)
	return r, err
}

// readStream waits for a UDP stream's count (a blaster's unpaced stream,
// written before its search).
func readStream(path string, timeout time.Duration) (probe.StreamResult, error) {
	var r probe.StreamResult
	err := awaitJSON(path, timeout, nil, &r)
	return r, err
}

// readStreamReport waits for a UDP blaster's report.
func readStreamReport(path string, timeout time.Duration) (probe.StreamReport, error) {
	var r probe.StreamReport
	err := awaitJSON(path, timeout, nil, &r)
	return r, err
}

// awaitJSON waits up to timeout for a measuring process's result file (a
// whole one: they are written atomically) and decodes it into v. An error
// on failed, the measuring process's end, stops the wait.
func awaitJSON(path string, timeout time.Duration, failed <-chan error, v any) error {
	deadline := time.After(timeout)
	for {
		if b, err := os.ReadFile(path); err == nil {
			if err := json.Unmarshal(b, v); err != nil {
				return fmt.Errorf("bench: parse %s: %w", path, err)
			}
			return nil
		}
		select {
		case err := <-failed:
			return fmt.Errorf("bench: measuring process failed: %v", err)
		case <-deadline:
			return fmt.Errorf("bench: no result in %s after %v", path, timeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// This file reads the example configuration in examples/prometheus, to run
// it in tests as its users run it, and runs promtool, which checks it.

package promtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ExampleDir is the example configuration's folder in the module.
const ExampleDir = "examples/prometheus"

// ExampleTargets is the targets file the example configuration reads: the
// one `newtsim up` writes in its default state directory.
const ExampleTargets = "/run/newtsim/targets.json"

// ExampleRules names the example's rule files, which its prometheus.yml
// names relative to itself.
var ExampleRules = []string{"rules.yml"}

// exampleFast are the example's intervals, and what Example makes them.
var exampleFast = map[string]string{
	"scrape_interval: 5s":     "scrape_interval: 1s",
	"scrape_timeout: 5s":      "scrape_timeout: 1s",
	"evaluation_interval: 5s": "evaluation_interval: 1s",
	"refresh_interval: 5s":    "refresh_interval: 1s",
}

// Example reads the example configuration in dir (a module's ExampleDir)
// and returns it for StartConfig: its prometheus.yml, reading targetsFile
// instead of ExampleTargets and scraping and evaluating every second
// instead of every 5 seconds, and its rule files. A configuration that no
// longer says what Example rewrites is an error, not a silent change.
func Example(dir, targetsFile string) (cfg []byte, files map[string][]byte, err error) {
	abs, err := filepath.Abs(targetsFile)
	if err != nil {
		return nil, nil, fmt.Errorf("promtest: targets file: %w", err)
	}
	cfg, err = os.ReadFile(filepath.Join(dir, "prometheus.yml"))
	if err != nil {
		return nil, nil, fmt.Errorf("promtest: example: %w", err)
	}
	rewrite := map[string]string{ExampleTargets: abs}
	for from, to := range exampleFast {
		rewrite[from] = to
	}
	for from, to := range rewrite {
		if n := bytes.Count(cfg, []byte(from)); n != 1 {
			return nil, nil, fmt.Errorf("promtest: example %s says %q %d times, want once", dir, from, n)
		}
		cfg = bytes.Replace(cfg, []byte(from), []byte(to), 1)
	}
	files = map[string][]byte{}
	for _, name := range ExampleRules {
		if files[name], err = os.ReadFile(filepath.Join(dir, name)); err != nil {
			return nil, nil, fmt.Errorf("promtest: example: %w", err)
		}
	}
	return cfg, files, nil
}

// Promtool runs promtool, Prometheus' checker, with args in dir, and
// returns what it printed. A missing promtool is an error wrapping
// ErrNotInstalled; promtool's own failure is an error with its output.
func Promtool(dir string, args ...string) (string, error) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		return "", fmt.Errorf("%w: no promtool in $PATH; install the Debian package %q (apt-get install %s)",
			ErrNotInstalled, DebianPackage, DebianPackage)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("promtool %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/internal/spawn"
)

// allJob is one table `bench all` writes: its files' base name and the
// bench command's arguments (before the files).
type allJob struct {
	name string
	args []string
	http bool // takes --repeat and --duration
}

// allJobs are the tables of results/, in the order results/README.md lists
// them; quick is the shorter form of each, for a look or a test.
func allJobs(quick bool) []allJob {
	paper := []string{"paper"}
	faults := []string{"faults"}
	tcp := []string{"tcp"}
	if quick {
		paper = []string{"paper", "--short"}
		faults = []string{"faults", "--quick"}
		tcp = []string{"tcp", "--bytes", "33554432", "--conns", "200", "--linux-conns", "2000", "--reps", "3"}
	}
	return []allJob{
		{name: "ipc", args: []string{"ipc"}},
		{name: "udp", args: []string{"udp"}},
		{name: "tcp", args: tcp},
		{name: "eagain", args: []string{"eagain"}},
		{name: "http", args: paper, http: true},
		{name: "http-remote", args: append(slices.Clone(paper), "--client", "remote-host",
			"--servers", "httpd-message-shm,httpd-message-kernel,httpd-exposed"), http: true},
		{name: "faults", args: faults},
	}
}

// newBenchAllCommand is `newtsim bench all`: every table of results/, each
// benchmark run by a newtsim process of its own, one after the other.
func newBenchAllCommand() *cobra.Command {
	var out, only string
	var quick bool
	var repeat int
	cmd := &cobra.Command{
		Use:   "all",
		Short: "Every benchmark, one after the other: each table of results/ as JSON, Markdown and an SVG chart in --out",
		Long: `all runs ipc, udp, tcp, eagain, the HTTP matrix (http), the HTTP matrix from a remote
client host (http-remote) and faults, each as the newtsim command results/README.md
records for it, writing NAME.json, NAME.md and NAME.svg into --out. Each report
records the command that made it. A benchmark that fails is reported and the
others still run; the command then exits with status 1, as it does under --check
when a check is not met.`,
		Example: `  sudo newtsim bench all --out results --repeat 3   # what make results runs
  sudo newtsim bench all --out /tmp/r --quick --only ipc,eagain
  newtsim compare results/ipc.json /tmp/r/ipc.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out DIR is required")
			}
			if repeat <= 0 {
				return fmt.Errorf("--repeat %d: want 1 or more", repeat)
			}
			// Checked here rather than by checkOutputs: a hidden peer's
			// --out names a file.
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("--out %s: %w", out, err)
			}
			if err := checkDir(out); err != nil {
				return fmt.Errorf("--out %s: %w", out, err)
			}
			jobs := allJobs(quick)
			if only != "" {
				var picked []allJob
				for _, name := range strings.Split(only, ",") {
					i := slices.IndexFunc(jobs, func(j allJob) bool { return j.name == name })
					if i < 0 {
						return fmt.Errorf("--only %s: no table %q (have %s)", only, name, strings.Join(jobNames(jobs), ", "))
					}
					picked = append(picked, jobs[i])
				}
				jobs = picked
			}
			exe, err := spawn.Self()
			if err != nil {
				return err
			}
			ctx, stop, _, _, err := benchStart("")
			if err != nil {
				return err
			}
			defer stop()
			check, _ := cmd.Flags().GetBool("check")
			var extra []string
			if cpus, _ := cmd.Flags().GetString("cpus"); cpus != "" {
				extra = append(extra, "--cpus", cpus)
			}
			if check {
				extra = append(extra, "--check")
			}
			return runAll(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), exe, out, jobs, repeat, extra)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&out, "out", "", "the directory the tables are written into, made if missing (results/ to regenerate the recorded ones)")
	fl.StringVar(&only, "only", "", "only these tables, comma-separated: "+strings.Join(jobNames(allJobs(false)), ", "))
	fl.BoolVar(&quick, "quick", false, "shorter runs: the short HTTP matrix, bench faults --quick, smaller TCP transfers")
	fl.IntVar(&repeat, "repeat", 1, "measure the HTTP matrices this many times over (median, spread and error bars)")
	fl.String("cpus", "", "CPUs every benchmark uses (default: every online CPU)")
	return cmd
}

func jobNames(jobs []allJob) []string {
	var s []string
	for _, j := range jobs {
		s = append(s, j.name)
	}
	return s
}

// runAll runs each job as `exe bench ARGS --json --md --svg`, its output
// passed through, and prints a summary; it fails when a job did.
func runAll(ctx context.Context, stdout, stderr io.Writer, exe, dir string, jobs []allJob, repeat int, extra []string) error {
	type outcome struct {
		name string
		took time.Duration
		err  error
	}
	var done []outcome
	for i, j := range jobs {
		args := append([]string{"bench"}, j.args...)
		if j.http && repeat > 1 {
			args = append(args, "--repeat", strconv.Itoa(repeat))
		}
		args = append(args, extra...)
		for _, ext := range []string{"json", "md", "svg"} {
			args = append(args, "--"+ext, filepath.Join(dir, j.name+"."+ext))
		}
		fmt.Fprintf(stdout, "\n== bench all [%d/%d] %s: newtsim %s\n", i+1, len(jobs), j.name, strings.Join(args, " "))
		start := time.Now()
		c := exec.CommandContext(ctx, exe, args...)
		c.Stdout, c.Stderr = stdout, stderr
		err := c.Run()
		done = append(done, outcome{j.name, time.Since(start), err})
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintf(stdout, "\n== bench all: %s\n", dir)
	failed := 0
	for _, o := range done {
		state := "written"
		if o.err != nil {
			state = "FAILED: " + o.err.Error()
			failed++
		}
		fmt.Fprintf(stdout, "  %-12s %6.0fs  %s\n", o.name, o.took.Seconds(), state)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("bench all: %d of %d benchmarks failed (or missed a check, under --check)", failed, len(done))
	}
	return nil
}

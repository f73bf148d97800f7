package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/sim/bench"
)

// fileFlags are the flags that name a file a command writes; dirFlags name
// a directory it writes files into, made when missing. checkOutputs checks
// them all before a command starts, so that a path that cannot be written
// fails at once, not after minutes of measuring.
var (
	fileFlags = []string{"json", "md", "svg", "log", "pcap"}
	dirFlags  = []string{"results"}
)

// stdoutPath, given to --json, writes the JSON to standard output; the
// command's other output then goes to standard error.
const stdoutPath = "-"

// checkOutputs checks the output paths cmd's flags name: each file's
// directory exists and takes a new file, each directory flag's directory
// exists (made if missing) and takes a new file. --json - sends the
// command's output to standard error, leaving standard output to the JSON.
func checkOutputs(cmd *cobra.Command) error {
	for _, name := range fileFlags {
		f := cmd.Flags().Lookup(name)
		if f == nil || f.Value.Type() != "string" || f.Value.String() == "" {
			continue // status --json is a switch, not a path
		}
		path := f.Value.String()
		if path == stdoutPath && name == "json" {
			cmd.SetOut(cmd.ErrOrStderr())
			continue
		}
		if err := checkFile(path); err != nil {
			return fmt.Errorf("--%s %s: %w", name, path, err)
		}
	}
	for _, name := range dirFlags {
		f := cmd.Flags().Lookup(name)
		if f == nil || f.Value.Type() != "string" || f.Value.String() == "" {
			continue
		}
		dir := f.Value.String()
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			err = checkDir(dir)
		}
		if err != nil {
			return fmt.Errorf("--%s %s: %w", name, dir, err)
		}
	}
	return nil
}

// checkFile reports whether a file can be written at path: not a
// directory, in a directory that takes a new file.
func checkFile(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return errors.New("is a directory")
	}
	return checkDir(filepath.Dir(path))
}

// checkDir reports whether dir is a directory that takes a new file, by
// creating one there and removing it.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".newtsim-check-*")
	if err != nil {
		return err
	}
	return errors.Join(f.Close(), os.Remove(f.Name()))
}

// report is what every benchmark's report can do.
type report interface {
	Table() string
	WriteJSON(path string) error
}

// showReport prints a report's table on cmd's output and writes the files
// asked for: JSON (to standard output for -), the table as Markdown, and a
// chart where the report draws one (an empty path writes nothing).
func showReport(cmd *cobra.Command, rep report, jsonOut, mdOut, svgOut string) error {
	out := cmd.OutOrStdout()
	fmt.Fprintln(out)
	fmt.Fprint(out, rep.Table())
	files := []struct {
		path  string
		write func(string) error
	}{
		{jsonOut, rep.WriteJSON},
		{mdOut, func(p string) error { return atomicfile.WriteFile(p, []byte(rep.Table()), 0o644) }},
	}
	if svgOut != "" {
		chart, ok := rep.(interface{ WriteSVG(string) error })
		if !ok {
			return fmt.Errorf("this report draws no chart")
		}
		files = append(files, struct {
			path  string
			write func(string) error
		}{svgOut, chart.WriteSVG})
	}
	if err := noteChecks(cmd, rep); err != nil {
		return err
	}
	if jsonOut == stdoutPath {
		// checkOutputs pointed cmd's output at standard error; the root
		// command's is still standard output.
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the report: %w", err)
		}
		if _, err := cmd.Root().OutOrStdout().Write(append(b, '\n')); err != nil {
			return err
		}
		files = files[1:]
	}
	for _, f := range files {
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

// reportFlags adds --json and --md, a benchmark report's files, to fs.
func reportFlags(fs *pflag.FlagSet, jsonOut, mdOut *string) {
	fs.StringVar(jsonOut, "json", "", "write the report as JSON to this file (- for standard output; the table then goes to standard error)")
	fs.StringVar(mdOut, "md", "", "write the report as Markdown to this file")
}

// checkValue is the --check flag of every bench command and of run: on, a
// check a report did not meet makes the command fail (exit status 1) once
// every table is printed and written. It keeps the checks not met.
type checkValue struct {
	on    bool
	unmet []string
}

func (c *checkValue) String() string { return strconv.FormatBool(c.on) }
func (c *checkValue) Type() string   { return "bool" }
func (c *checkValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	c.on = v
	return err
}

// checkFlag adds --check to fs.
func checkFlag(fs *pflag.FlagSet) {
	f := fs.VarPF(&checkValue{}, "check", "", "exit with status 1 when a check of the report is not met (after printing and writing everything)")
	f.NoOptDefVal = "true"
}

// noteChecks records, for --check, the checks rep did not meet. Every
// report lists its checks in its JSON, as bench.Check.
func noteChecks(cmd *cobra.Command, rep report) error {
	f := cmd.Flags().Lookup("check")
	if f == nil {
		return nil
	}
	c := f.Value.(*checkValue)
	if !c.on {
		return nil
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	var r struct {
		Bench  string        `json:"bench"`
		Checks []bench.Check `json:"checks"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("read the report's checks: %w", err)
	}
	for _, ch := range r.Checks {
		if !ch.Met {
			c.unmet = append(c.unmet, fmt.Sprintf("%s: %s (%.4g, want %s)", r.Bench, ch.Name, ch.Value, ch.Target))
		}
	}
	return nil
}

// unmetChecks is the error of a command run with --check whose reports
// did not meet every check; nil otherwise.
func unmetChecks(cmd *cobra.Command) error {
	f := cmd.Flags().Lookup("check")
	if f == nil {
		return nil
	}
	c, ok := f.Value.(*checkValue)
	if !ok || len(c.unmet) == 0 {
		return nil
	}
	return fmt.Errorf("--check: %d check(s) not met:\n  %s", len(c.unmet), strings.Join(c.unmet, "\n  "))
}

// svgFlag adds --svg, a benchmark's chart, to fs.
func svgFlag(fs *pflag.FlagSet, svgOut *string) {
	fs.StringVar(svgOut, "svg", "", "draw the report as an SVG bar chart, with each row's spread as an error bar and the machine and commit under it, in this file")
}

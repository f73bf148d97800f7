package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// keptLog gives a benchmark that was handed no log a temporary file for its
// processes' logs. The returned finish, deferred with the benchmark's
// error, removes the file when the benchmark succeeded and names it in the
// error when it failed.
func keptLog(bench string) (f *os.File, finish func(*error), err error) {
	f, err = os.CreateTemp("", "newtsim-bench-"+bench+"-*.log")
	if err != nil {
		return nil, nil, err
	}
	return f, func(err *error) {
		f.Close()
		if *err == nil {
			os.Remove(f.Name())
		} else {
			*err = fmt.Errorf("%w (the processes' logs are in %s)", *err, f.Name())
		}
	}, nil
}

// httpRoot makes a temporary directory holding www/, the files the web
// servers serve, and returns both; the caller removes dir.
func httpRoot(bench string) (dir, www string, err error) {
	if dir, err = os.MkdirTemp("", "newtsim-bench-"+bench+"-"); err != nil {
		return "", "", err
	}
	www = filepath.Join(dir, "www")
	if err = os.Mkdir(www, 0o755); err == nil {
		err = writeHTTPFiles(www)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", "", err
	}
	return dir, www, nil
}

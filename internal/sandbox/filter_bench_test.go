package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchEnv makes the test binary a child that installs a filter (or none)
// and times n calls of one kind; see BenchmarkSyscall.
const benchEnv = "NEWTSIM_SANDBOX_BENCH"

// benchChild runs in the child: "FILTER CALL N", prints ns per call.
func benchChild(spec string) error {
	f := strings.Fields(spec)
	if len(f) != 3 {
		return fmt.Errorf("bench child: %q", spec)
	}
	n, err := strconv.Atoi(f[2])
	if err != nil {
		return err
	}
	if f[0] != "none" {
		flt, ok := Lookup(f[0])
		if !ok {
			return fmt.Errorf("no filter %q", f[0])
		}
		if err := flt.Install(); err != nil {
			return err
		}
	}
	var call func()
	switch f[1] {
	case "getppid": // allowed whatever its arguments: Linux's cached verdict
		call = func() { unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0) }
	case "prctl": // allowed on an argument: the filter runs
		call = func() { unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_VMA, 99, 0, 0, 0, 0) }
	default:
		return fmt.Errorf("bench child: call %q", f[1])
	}
	start := time.Now()
	for range n {
		call()
	}
	fmt.Printf("ns %f\n", float64(time.Since(start).Nanoseconds())/float64(n))
	return nil
}

// BenchmarkSyscall measures what a filter adds to a system call: each
// sub-benchmark runs b.N calls in a child process under the filter (or
// none), so the rows compare side by side (benchstat reads them). getppid
// is allowed whatever its arguments, so Linux answers from its cached
// verdict; prctl(PR_SET_VMA) with an unknown sub-option is allowed only on
// an argument check, so the filter's BPF runs.
func BenchmarkSyscall(b *testing.B) {
	for _, call := range []string{"getppid", "prctl"} {
		for _, filter := range append([]string{"none"}, Filters()...) {
			b.Run(call+"/"+filter, func(b *testing.B) {
				cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
				cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d", benchEnv, filter, call, b.N))
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				var ns float64
				if _, err := fmt.Sscanf(string(out), "ns %f", &ns); err != nil {
					b.Fatalf("child said %q", out)
				}
				b.ReportMetric(ns, "ns/call")
			})
		}
	}
}

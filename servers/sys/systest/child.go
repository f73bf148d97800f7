package systest

import (
	"os"
	"os/exec"
	"testing"
)

// childEnv names, in a child process InChild started, the test it runs.
const childEnv = "NEWTSIM_SYSTEST_CHILD"

// InChild reports whether the calling test runs in the child process it
// is meant to run in. The first time, in the parent, it runs the test
// again in a child process (the test binary, selecting the test alone),
// fails the test with the child's output if the child does not pass, and
// reports false: the parent returns. For tests whose failure kills the
// process (a fault on a mapping a peer truncated is a SIGBUS that Go
// cannot recover without sys.Fault), so that it fails the test instead.
func InChild(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the child process running %s failed: %v\n%s", t.Name(), err, out)
	}
	return false
}

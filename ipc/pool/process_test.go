package pool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/ipc"
)

// Environment of the reader process TestCrossProcessReader starts.
const (
	envHelper = "NEWTSIM_POOL_HELPER"
	envPath   = "NEWTSIM_POOL_PATH"
	envRefs   = "NEWTSIM_POOL_REFS"
)

// TestCrossProcessReader has the owner fill buffers and a second process,
// this test binary re-executed (TestMain runs readerMain), open the pool read-only
// and sum the bytes the refs name.
func TestCrossProcessReader(t *testing.T) {
	c := testConfig(t)
	c.Count = 16
	p := create(t, c)
	var refs []string
	var want uint64
	for i, n := range []int{1, 64, 1500, DefaultBufSize, 7} {
		r, b, err := p.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		for j := range n {
			b[j] = byte(i*31 + j)
			want += uint64(b[j])
		}
		for j := n; j < len(b); j++ {
			b[j] = 0xff // beyond the ref: must not be summed
		}
		refs = append(refs, strconv.FormatUint(uint64(p.Slice(r, n)), 16))
	}

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		envHelper+"=1",
		envPath+"="+c.Path,
		envRefs+"="+strings.Join(refs, ","),
	)
	if os.Getenv("GORACE") == "" {
		// A race-enabled binary otherwise sleeps a second on exit.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reader process: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.Bytes())
	}
	var got uint64
	found := false
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), "sum="); ok {
			if got, err = strconv.ParseUint(v, 10, 64); err != nil {
				t.Fatalf("reader printed %q: %v", sc.Text(), err)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("reader printed no sum:\n%s", out)
	}
	if got != want {
		t.Errorf("reader summed %d, owner wrote %d", got, want)
	}
}

// TestMain runs the binary as TestCrossProcessReader's reader when asked.
func TestMain(m *testing.M) {
	if os.Getenv(envHelper) == "1" {
		if err := readerMain(); err != nil {
			fmt.Fprintln(os.Stderr, "reader:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// readerMain is the reader process of TestCrossProcessReader.
func readerMain() error {
	c := Config{ID: 3, Path: os.Getenv(envPath), Count: 16, Owner: owner, Readers: []ipc.Endpoint{reader}}
	p, err := Open(c)
	if err != nil {
		return err
	}
	defer p.Close()
	var sum uint64
	for _, s := range strings.Split(os.Getenv(envRefs), ",") {
		v, err := strconv.ParseUint(s, 16, 64)
		if err != nil {
			return fmt.Errorf("ref %q: %w", s, err)
		}
		b, err := p.Bytes(Ref(v), owner)
		if err != nil {
			return err
		}
		for _, x := range b {
			sum += uint64(x)
		}
	}
	// A ref forged by a process without rights is refused here too.
	if _, err := p.Bytes(MakeRef(3, 0, 1), stranger); !errors.Is(err, ErrNoRights) {
		return fmt.Errorf("forged ref: %v, want ErrNoRights", err)
	}
	fmt.Printf("sum=%d\n", sum)
	return nil
}

package loadgen

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal and returns its two ends, or skips the
// test where the system has none.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

func TestProgressOnlyOnTerminals(t *testing.T) {
	srv := newHTTPServer(t, http.StatusOK, nil)
	file, err := os.Create(filepath.Join(t.TempDir(), "progress"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var buf bytes.Buffer
	for _, w := range []io.Writer{&buf, file} {
		run(t, Config{Target: srv.addr, Requests: 200, Progress: w})
	}
	if st, err := file.Stat(); err != nil || st.Size() != 0 || buf.Len() != 0 {
		t.Errorf("progress written to a buffer (%q) or a file (%v, %v)", buf.String(), st.Size(), err)
	}

	master, tty := openPTY(t)
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(master) // ends with EIO once tty is closed
		got <- string(b)
	}()
	run(t, Config{Target: srv.addr, Requests: 200, Progress: tty})
	tty.Close()
	out := <-got
	if !strings.Contains(out, "\r[") || !strings.Contains(out, "100%  200 requests, 0 failed") {
		t.Errorf("progress on a terminal: %q", out)
	}
}

func TestProgressRedrawRate(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, total: 100}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.begin(t0)
	draws := 0
	for ms := 0; ms < 1000; ms += 10 {
		before := buf.Len()
		p.update(t0.Add(time.Duration(ms)*time.Millisecond), int64(ms/10), 0)
		if buf.Len() != before {
			draws++
		}
	}
	if draws != 10 {
		t.Errorf("%d redraws in a second of updates every 10ms; want 10", draws)
	}
	p.finish(t0.Add(time.Second), 100, 0)
	if out := buf.String(); !strings.HasSuffix(out, "\n") || !strings.Contains(out, "[==============================] 100%") {
		t.Errorf("last line %q", out[strings.LastIndexByte(out, '\r'):])
	}
	var nilBar *progress
	nilBar.update(t0, 1, 1) // draws nothing, and does not panic
	nilBar.finish(t0, 1, 1)
}

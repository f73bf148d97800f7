package procstat

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		in        string
		run, wait time.Duration
		err       bool
	}{
		{"123456 789 10\n", 123456, 789, false},
		{"0 0 0", 0, 0, false},
		{"123456 789", 0, 0, true},
		{"x 1 2", 0, 0, true},
		{"-5 1 2", 0, 0, true},
		{"5 x 2", 0, 0, true},
		{"5 -1 2", 0, 0, true},
		{"", 0, 0, true},
	}
	for _, tt := range tests {
		run, wait, err := ParseSchedstat(tt.in)
		if (err != nil) != tt.err || run != tt.run || wait != tt.wait {
			t.Errorf("ParseSchedstat(%q) = %v, %v, %v; want %v, %v, error %v", tt.in, run, wait, err, tt.run, tt.wait, tt.err)
		}
	}
}

func TestParseSwitches(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  bool
	}{
		{"Name:\tx\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t3\n", 10, false},
		{"voluntary_ctxt_switches:\t7\n", 0, true},
		{"voluntary_ctxt_switches:\tseven\nnonvoluntary_ctxt_switches:\t3\n", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSwitches(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseSwitches(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// TestReadIn sums a process's threads from a /proc laid out by hand.
func TestReadIn(t *testing.T) {
	root := t.TempDir()
	for tid, files := range map[string][2]string{
		"41": {"1000 5 2\n", "voluntary_ctxt_switches:\t4\nnonvoluntary_ctxt_switches:\t1\n"},
		"42": {"2500 7 2\n", "voluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t0\n"},
	} {
		dir := filepath.Join(root, "41", "task", tid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "schedstat"), []byte(files[0]), 0o644)
		os.WriteFile(filepath.Join(dir, "status"), []byte(files[1]), 0o644)
	}
	u, err := readIn(root, 41)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Usage{CPU: 3500, Wait: 12, Switches: 15, Threads: 2}); u != want {
		t.Errorf("readIn = %+v, want %+v", u, want)
	}
	if d := u.Sub(Usage{CPU: 500, Wait: 2, Switches: 5}); d.CPU != 3000 || d.Wait != 10 || d.Switches != 10 {
		t.Errorf("Sub = %+v", d)
	}
	if _, err := readIn(root, 99); err == nil {
		t.Error("readIn of a missing process returned nil")
	}
}

// TestReadSelf reads this process, which has run and switched. It spins
// until the kernel's other account of its CPU time (getrusage) says 20 ms
// more, not for 20 ms of wall time: on a loaded machine those 20 ms held
// 9 ms of CPU.
func TestReadSelf(t *testing.T) {
	a, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	start := cpuTime(t)
	for cpuTime(t)-start < 20*time.Millisecond {
	}
	time.Sleep(time.Millisecond)
	b, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	d := b.Sub(a)
	if d.CPU < 10*time.Millisecond || d.Switches == 0 || b.Threads == 0 {
		t.Errorf("20 ms of spinning and a sleep read as %+v", d)
	}
}

// cpuTime is the process's user and system time, as getrusage says.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

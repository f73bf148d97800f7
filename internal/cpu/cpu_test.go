package cpu

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestThread(t *testing.T) {
	orig, err := Of(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		cores []int
	}{
		{"first core", orig[:1]},
		{"last core", orig[len(orig)-1:]},
		{"all cores", orig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := PinThread(tt.cores); err != nil {
				t.Fatalf("PinThread(%v) = %v", tt.cores, err)
			}
			defer func() {
				if err := PinThread(orig); err != nil {
					t.Errorf("restoring %v: %v", orig, err)
				}
			}()
			got, err := Current()
			if err != nil || !slices.Equal(got, tt.cores) {
				t.Fatalf("Current() = %v, %v; want %v", got, err, tt.cores)
			}
		})
	}
}

func TestBadCores(t *testing.T) {
	tests := []struct {
		name  string
		cores []int
		want  string
	}{
		{"none", nil, "no cores given"},
		{"negative", []int{0, -1}, "core -1 is out of range"},
		{"too large", []int{Max}, "out of range 0-1023"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for fn, pin := range map[string]func([]int) error{"PinThread": PinThread, "PinProcess": PinProcess} {
				if err := pin(tt.cores); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s(%v) = %v, want an error containing %q", fn, tt.cores, err, tt.want)
				}
			}
		})
	}
}

func TestProcess(t *testing.T) {
	orig, err := Of(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	defer func() {
		if err := PinProcess(orig); err != nil {
			t.Errorf("restoring %v: %v", orig, err)
		}
		runtime.GOMAXPROCS(procs)
	}()
	core := orig[len(orig)-1:]
	if err := PinProcess(core); err != nil {
		t.Fatalf("PinProcess(%v) = %v", core, err)
	}
	if got := runtime.GOMAXPROCS(0); got != 2 { // one core, but never below two Ps
		t.Errorf("GOMAXPROCS = %d, want 2", got)
	}
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		got, err := Of(tid)
		if err != nil {
			continue // the thread has gone
		}
		if !slices.Equal(got, core) {
			t.Errorf("thread %d may run on %v, want %v", tid, got, core)
		}
	}
	// A new process inherits the mask.
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to start: %v", err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if got, err := Of(cmd.Process.Pid); err != nil || !slices.Equal(got, core) {
		t.Errorf("Of(child) = %v, %v; want %v", got, err, core)
	}
}

func TestOfUnknown(t *testing.T) {
	if _, err := Of(1 << 30); err == nil || !strings.Contains(err.Error(), "cpu: process 1073741824") {
		t.Fatalf("Of(no such pid) = %v, want an error", err)
	}
}

package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/launch"
)

func TestStatusJSON(t *testing.T) {
	write := func(dir, name string, v any) {
		t.Helper()
		if err := atomicfile.WriteJSON(filepath.Join(dir, name), v); err != nil {
			t.Fatal(err)
		}
	}
	// A process whose command line names run "st1", as the kernel's does.
	kern := exec.Command("sh", "-c", "sleep 60; :", "sh", "--run", "st1")
	if err := kern.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kern.Process.Kill(); kern.Wait() })

	empty, stale, running := t.TempDir(), t.TempDir(), t.TempDir()
	write(stale, launch.StateFile, launch.State{Run: "gone", KernelPid: 0})
	write(running, launch.StateFile, launch.State{Run: "st1", KernelPid: kern.Process.Pid})
	write(running, kernel.StatusFile, kernel.Status{Run: "st1", Topology: "default", Transport: "shm", Plan: "shared", Ready: true,
		Processes: []kernel.ProcStatus{{Name: "kernel", Pid: kern.Process.Pid, Alive: true, MetricsPort: 9100},
			{Name: "nic", Slot: 7, UID: 61007, SetupRoot: true, Filter: "server", Syscalls: 76}}})

	tests := []struct {
		dir  string
		want string // the JSON, compact
		text string // in `newtsim status`
	}{
		{empty, `{"running":false}`, "nothing is running"},
		{stale, `{"running":false,"stale_run":"gone"}`, "run gone left state behind"},
		{running, `{"running":true,"run":"st1","topology":"default","transport":"shm","core_plan":"shared","ready":true,` +
			`"processes":[{"name":"kernel","role":"","slot":0,"endpoint":"","pid":PID,"cores":null,"wait":"","alive":true,` +
			`"ready":false,"metrics_port":9100,"restarts":0,"uid":0},` +
			`{"name":"nic","role":"","slot":7,"endpoint":"","pid":0,"cores":null,"wait":"","alive":false,"ready":false,` +
			`"metrics_port":0,"restarts":0,"uid":61007,"setup_root":true,"filter":"server","filter_syscalls":76}]}`, "server (76 calls)"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(t, 1000, "status", "--json", "--state-dir", tt.dir)
		if code != 0 {
			t.Fatalf("status --json: exit status %d: %s", code, stderr)
		}
		var v any
		if err := json.Unmarshal([]byte(stdout), &v); err != nil {
			t.Fatalf("status --json printed %q: %v", stdout, err)
		}
		compact, _ := json.Marshal(v)
		want := strings.Replace(tt.want, "PID", strconv.Itoa(kern.Process.Pid), 1)
		var w any
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatal(err)
		}
		wantCompact, _ := json.Marshal(w)
		if string(compact) != string(wantCompact) {
			t.Errorf("status --json:\n got %s\nwant %s", compact, wantCompact)
		}
		if _, text, _ := runCLI(t, 1000, "status", "--state-dir", tt.dir); !strings.Contains(text, tt.text) {
			t.Errorf("status: %q, want it to hold %q", text, tt.text)
		}
	}
}

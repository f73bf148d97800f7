package launch_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/newtsim/newtsim/internal/sandbox"
	"github.com/newtsim/newtsim/ipc/runfiles"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/topology"
)

// credentialOf reads what a live process runs as from /proc.
func credentialOf(t *testing.T, pid int) (*syscall.Credential, map[string]string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			f[k] = strings.TrimSpace(v)
		}
	}
	num := func(s string) uint32 {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("pid %d: %q in /proc status", pid, s)
		}
		return uint32(n)
	}
	c := &syscall.Credential{Uid: num(strings.Fields(f["Uid"])[1]), Gid: num(strings.Fields(f["Gid"])[1])}
	for _, g := range strings.Fields(f["Groups"]) {
		c.Groups = append(c.Groups, num(g))
	}
	return c, f
}

// as runs a shell line with c's ids and reports whether it succeeded.
func as(c *syscall.Credential, line string, args ...string) (bool, string) {
	cmd := exec.Command("/bin/sh", append([]string{"-c", line, "sh"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c}
	out, err := cmd.CombinedOutput()
	return err == nil, string(out)
}

// TestProtectionDomains: with the sandbox on (the default) each process
// runs as a user of its own under its role's seccomp filter; an
// application, with exactly its ids, can read its peer's pool but not
// reach another application's inbox (it has no name; its mapping is
// another user's), nor signal the kernel or read its memory, nor write
// the kernel's status. Off, everything is root and unfiltered.
func TestProtectionDomains(t *testing.T) {
	dir := t.TempDir()
	top := topology.Default()
	for i, n := range []string{"app1", "app2"} {
		top.Processes = append(top.Processes, topology.Process{Name: n, Role: "udpecho", Args: []string{"--port", strconv.Itoa(7 + i)}})
		top.Links = append(top.Links, topology.Link{A: n, B: "syscall"})
	}
	topoPath := filepath.Join(dir, "two.topo")
	if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUp(t, "--topology", topoPath)
	if !strings.Contains(u.out.String(), "server (") || !strings.Contains(u.out.String(), "app (") {
		t.Errorf("up does not print the filters:\n%s", u.out)
	}
	uids := map[int]string{}
	var kern kernel.ProcStatus
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("newtsim up said:\n%s", u.out)
		}
	})
	for _, p := range u.status.Processes {
		if p.Pid == 0 {
			t.Fatalf("%s is not running", p.Name)
		}
		c, f := credentialOf(t, p.Pid)
		if p.Name == "kernel" {
			kern = p
			if c.Uid != 0 {
				t.Errorf("kernel runs as %d, want root", c.Uid)
			}
			continue
		}
		if c.Uid == 0 || int(c.Uid) != p.UID || uids[p.UID] != "" {
			t.Errorf("%s runs as uid %d (status says %d; %q has it too)", p.Name, c.Uid, p.UID, uids[p.UID])
		}
		uids[p.UID] = p.Name
		if f["Seccomp"] != "2" || f["NoNewPrivs"] != "1" || p.Filter == "" || p.Syscalls == 0 {
			t.Errorf("%s: Seccomp %s NoNewPrivs %s, status filter %q with %d calls; want a filter (mode 2)",
				p.Name, f["Seccomp"], f["NoNewPrivs"], p.Filter, p.Syscalls)
		}
	}
	app1 := u.proc("app1")
	c, _ := credentialOf(t, app1.Pid)
	// Inboxes have no names (sealed memfds the kernel hands over): the
	// way to another's inbox would be through its mapping, which root
	// can open.
	var other string
	for _, m := range runMappings(t, u.proc("app2").Pid, u.status.Run) {
		if strings.HasSuffix(strings.TrimSuffix(m.name, " (deleted)"), "app2.inbox") {
			other = m.file
		}
	}
	if f, err := os.Open(other); err != nil {
		t.Fatalf("root cannot open app2's inbox through its mapping %q: %v", other, err)
	} else {
		f.Close()
	}
	// Pools have no names either: app1 holds a read-only descriptor of
	// every other pool of the run, which it may open again for reading
	// (as itself, through /proc), never for writing.
	peerPool := heldFile(t, app1.Pid, runfiles.PoolName(u.status.Run, "syscall"))
	app2Pool := heldFile(t, app1.Pid, runfiles.PoolName(u.status.Run, "app2"))
	tests := []struct {
		name string
		line string
		args []string
		want bool
	}{
		{"read its peer's pool", `exec 3<"$1"`, []string{peerPool}, true},
		{"write its peer's pool", `exec 3<>"$1"`, []string{peerPool}, false},
		{"open another app's inbox through its mapping", `exec 3<>"$1"`, []string{other}, false},
		{"read another app's inbox through its mapping", `exec 3<"$1"`, []string{other}, false},
		{"write another app's pool", `exec 3<>"$1"`, []string{app2Pool}, false},
		{"signal the kernel", `kill -0 "$1"`, []string{strconv.Itoa(kern.Pid)}, false},
		{"signal another app", `kill -0 "$1"`, []string{strconv.Itoa(u.proc("app2").Pid)}, false},
		{"read the kernel's environment", `exec 3<"$1"`, []string{fmt.Sprintf("/proc/%d/environ", kern.Pid)}, false},
		{"write the kernel's status", `exec 3>>"$1"`, []string{filepath.Join(u.dir, kernel.StatusFile)}, false},
	}
	for _, tt := range tests {
		if ok, out := as(c, tt.line, tt.args...); ok != tt.want {
			t.Errorf("app1 (uid %d groups %v): %s: succeeded %v, want %v (%s)", c.Uid, c.Groups, tt.name, ok, tt.want, out)
		}
	}
	u.down()

	off := startUp(t, "--topology", topoPath, "--no-sandbox")
	for _, p := range off.status.Processes {
		if c, f := credentialOf(t, p.Pid); c.Uid != 0 || f["Seccomp"] != "0" || p.Filter != "" {
			t.Errorf("--no-sandbox: %s runs as %d with Seccomp %s, filter %q", p.Name, c.Uid, f["Seccomp"], p.Filter)
		}
	}
	if sandbox.DefaultBase+1 != u.status.Processes[1].UID {
		t.Errorf("slot 1 runs as %d, want %d", u.status.Processes[1].UID, sandbox.DefaultBase+1)
	}
}

// heldFile returns /proc/PID/fd/N for the descriptor pid holds of the memfd
// called name.
func heldFile(t *testing.T, pid int, name string) string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "/memfd:"+name) {
			return filepath.Join(dir, e.Name())
		}
	}
	t.Fatalf("pid %d holds no descriptor of %s", pid, name)
	return ""
}

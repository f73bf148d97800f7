package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary a child that runs one of the checks
// below, in a process of its own, since a filter and dropped ids are for
// good.
const childEnv = "NEWTSIM_SANDBOX_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(benchEnv); spec != "" {
		if err := benchChild(spec); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if what := os.Getenv(childEnv); what != "" {
		if err := child(what, os.Args[len(os.Args)-1]); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		fmt.Println("OK")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// attempts are what a child tries, each reported as "name: errno".
var attempts = []struct {
	name string
	call func() error
}{
	{"getpid", func() error { _, _, e := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0); return errno(e) }},
	{"open", func() error {
		f, err := os.Open(os.DevNull)
		if err == nil {
			f.Close()
		}
		return err
	}},
	// ppoll: kmsg's RecvTimeout waits on the kernel connection with it, in
	// every process (a server's loop whose outbox waits).
	{"ppoll", func() error {
		ts := unix.Timespec{}
		_, err := unix.Ppoll(nil, &ts, nil)
		return err
	}},
	{"unshare", func() error { return unix.Unshare(unix.CLONE_NEWUTS) }},
	{"kill", func() error { return unix.Kill(os.Getppid(), 0) }},
	{"execve", func() error { return unix.Exec("/nonexistent/newtsim", []string{"x"}, nil) }},
	{"ptrace", func() error {
		_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, uintptr(os.Getppid()), 0, 0, 0, 0)
		return errno(e)
	}},
	{"prctl-other", func() error { return unix.Prctl(unix.PR_SET_NAME, 0, 0, 0, 0) }},
}

func errno(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// child runs as what says ("filter NAME" or "drop"), then reports.
func child(what, arg string) error {
	kind, name, _ := strings.Cut(what, " ")
	switch kind {
	case "filter":
		f, ok := Lookup(name)
		if !ok {
			return fmt.Errorf("no filter %q", name)
		}
		if err := f.Install(); err != nil {
			return err
		}
	case "none":
	case "drop":
		ids := IDs{Base: DefaultBase}
		if err := ids.Domain(2, []int{3}).Drop(); err != nil {
			return err
		}
		// arg names a directory of files made for slots 2, 3 and 4 and the
		// run; report which the dropped process can open.
		for _, n := range []string{"own", "peer", "other", "run"} {
			f, err := os.OpenFile(filepath.Join(arg, n), os.O_RDWR, 0)
			if err == nil {
				f.Close()
			}
			fmt.Printf("%s: %v\n", n, err)
		}
		return nil
	}
	for _, a := range attempts {
		err := a.call()
		if errors.Is(err, unix.EPERM) {
			fmt.Printf("%s: EPERM\n", a.name)
		} else {
			fmt.Printf("%s: %v\n", a.name, err)
		}
	}
	return nil
}

func runChild(t *testing.T, what, arg string) map[string]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", arg)
	cmd.Env = append(os.Environ(), childEnv+"="+what)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "OK\n") {
		t.Fatalf("child %q: %v\n%s", what, err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			got[k] = v
		}
	}
	return got
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the checks compare with what root may do")
	}
}

// TestFilterRefuses: under each filter a child may still make the calls
// its runtime needs, and every forbidden call fails with EPERM, although
// the same child without the filter, as root, makes them.
func TestFilterRefuses(t *testing.T) {
	needRoot(t)
	free := runChild(t, "none", "")
	for _, name := range []string{"unshare", "kill", "prctl-other", "ptrace", "execve"} {
		if free[name] == "EPERM" {
			t.Fatalf("unfiltered, %s = %s: the test cannot tell the filter's refusal", name, free[name])
		}
	}
	for _, name := range Filters() {
		t.Run(name, func(t *testing.T) {
			got := runChild(t, "filter "+name, "")
			for _, a := range attempts {
				want := "EPERM"
				if a.name == "getpid" || a.name == "open" || a.name == "ppoll" {
					want = "<nil>"
				}
				if got[a.name] != want {
					t.Errorf("filter %s: %s = %s, want %s", name, a.name, got[a.name], want)
				}
			}
		})
	}
}

// TestDomainFiles: a process dropped to slot 2's domain (linked to 3)
// opens its own files and the inbox of the peer it sends to, but not
// another process's, nor the run's files for writing.
func TestDomainFiles(t *testing.T) {
	needRoot(t)
	ids := IDs{Base: DefaultBase}
	dir, err := os.MkdirTemp("", "sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := []struct {
		name       string
		uid, gid   int
		mode       os.FileMode
		wantOpenRW bool
	}{
		{"own", ids.User(2), ids.Group(2), 0o660, true},
		{"peer", ids.User(3), ids.Group(3), 0o660, true},
		{"other", ids.User(4), ids.Group(4), 0o660, false},
		{"run", ids.User(4), ids.RunGroup(), 0o640, false}, // a pool: read-only to the run
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, f.uid, f.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	got := runChild(t, "drop", dir)
	for _, f := range files {
		if ok := got[f.name] == "<nil>"; ok != f.wantOpenRW {
			t.Errorf("open %s (uid %d gid %d mode %v) read-write: %s; want success %v", f.name, f.uid, f.gid, f.mode, got[f.name], f.wantOpenRW)
		}
	}
}

func TestDomain(t *testing.T) {
	ids := IDs{Base: 61000}
	tests := []struct {
		slot   int
		peers  []int
		uid    int
		groups []int
	}{
		{1, nil, 61001, []int{61000}},
		{2, []int{3, 1, 3, 0}, 61002, []int{61000, 61001, 61003}}, // the kernel (0) has no group
	}
	for _, tt := range tests {
		d := ids.Domain(tt.slot, tt.peers)
		if d.UID != tt.uid || d.GID != tt.uid || !slices.Equal(d.Groups, tt.groups) {
			t.Errorf("Domain(%d, %v) = %+v, want uid=gid=%d groups %v", tt.slot, tt.peers, d, tt.uid, tt.groups)
		}
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		base int
		ok   bool
	}{
		{0, true}, // off
		{61000, true},
		{999, false},
		{65500, false}, // the range would hold nobody (65534)
		{65535, true},
	}
	for _, tt := range tests {
		if err := (IDs{Base: tt.base}).Check(); (err == nil) != tt.ok {
			t.Errorf("IDs{%d}.Check() = %v, want ok %v", tt.base, err, tt.ok)
		}
	}
}

// TestFiltersAssemble: every filter names only calls this machine knows.
func TestFiltersAssemble(t *testing.T) {
	for _, name := range Filters() {
		f, _ := Lookup(name)
		if err := f.Check(); err != nil {
			t.Error(err)
		}
		if f.Count() < 50 {
			t.Errorf("filter %s allows %d calls: too few for a Go process", name, f.Count())
		}
	}
	if _, ok := Lookup("nonesuch"); ok {
		t.Error("Lookup found a filter that does not exist")
	}
}

func TestShareTemp(t *testing.T) {
	needRoot(t)
	dir := t.TempDir() // 0700, under the temporary directory
	out := filepath.Join(dir, "sub", "result.json")
	if err := os.Mkdir(filepath.Dir(out), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := ShareTemp(out, 61000); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode // at least
	}{{filepath.Dir(out), 0o770}, {dir, 0o010}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&c.mode != c.mode || fi.Sys().(*syscall.Stat_t).Gid != 61000 {
			t.Errorf("%s: mode %v gid %d, want %v gid 61000", c.path, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, c.mode)
		}
	}
	if err := ShareTemp("/etc/passwd", 61000); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat("/etc/passwd"); fi.Sys().(*syscall.Stat_t).Gid == 61000 {
		t.Fatal("ShareTemp changed a file outside the temporary directory")
	}
}

package spawn

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNetNS: a child started with NetNS is in that namespace (only a
// loopback there), a child started after it in this process's again.
func TestNetNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test makes a network namespace: run it as root")
	}
	path := filepath.Join(t.TempDir(), "ns")
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		// Locked, and unlocked only once back home: a thread left in the
		// new namespace ends with the goroutine (or, the main thread,
		// parks for good).
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(home)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		err = unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(path, unix.MNT_DETACH)
	devices := func(netns string) []string {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := Start(Spec{Path: "/bin/cat", Args: []string{"/proc/net/dev"}, Stdout: w, NetNS: netns})
		w.Close()
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		out.ReadFrom(r)
		cmd.Wait()
		var names []string
		for _, l := range strings.Split(out.String(), "\n")[2:] {
			if name, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
				names = append(names, name)
			}
		}
		return names
	}
	if got := devices(path); len(got) != 1 || got[0] != "lo" {
		t.Errorf("in the namespace: devices %v, want lo alone", got)
	}
	host, _ := os.ReadFile("/proc/net/dev")
	if got := devices(""); len(got) != strings.Count(string(host), ":") {
		t.Errorf("after it: devices %v, want this process's:\n%s", got, host)
	}
}

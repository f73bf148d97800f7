package launch_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc/shm"
)

// sealedKinds are the kinds of run file the kernel hands over as sealed
// memfds: what they are called ends so.
var sealedKinds = []string{".inbox", ".ring", ".pool", ".awake"}

// runMapping is one shared mapping of a run file in a process.
type runMapping struct {
	name string // the file's name, as /proc/PID/maps shows it
	file string // /proc/PID/map_files/RANGE: the mapped file, for root
}

// runMappings lists pid's mappings of the run's files of the sealed kinds.
func runMappings(t *testing.T, pid int, run string) []runMapping {
	t.Helper()
	return mappings(t, pid, func(name string) bool {
		if !strings.Contains(name, shm.Prefix(run)) {
			return false
		}
		for _, k := range sealedKinds {
			if strings.Contains(name, k) {
				return true
			}
		}
		return false
	})
}

// mappings lists pid's mappings whose name (what /proc/PID/maps calls
// each) match accepts, each with its /proc/PID/map_files entry.
func mappings(t *testing.T, pid int, match func(name string) bool) []runMapping {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ms []runMapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		if name := strings.Join(fields[5:], " "); match(name) {
			ms = append(ms, runMapping{name, fmt.Sprintf("/proc/%d/map_files/%s", pid, fields[0])})
		}
	}
	return ms
}

// truncateMappings tries, as root, to truncate every run file of the
// sealed kinds that pid maps, through the mapping itself, and reports
// each attempt that did not fail with EPERM.
func truncateMappings(t *testing.T, name string, pid int, run string) int {
	t.Helper()
	ms := runMappings(t, pid, run)
	truncateEach(t, name, ms)
	return len(ms)
}

// truncateEach tries, as root, to truncate the file of each mapping of
// the process called name through the mapping itself, and reports each
// attempt that did not fail with EPERM.
func truncateEach(t *testing.T, name string, ms []runMapping) {
	t.Helper()
	for _, m := range ms {
		f, err := os.OpenFile(m.file, os.O_RDWR, 0)
		if err != nil {
			t.Errorf("%s: open %s (%s): %v", name, m.file, m.name, err)
			continue
		}
		if err := f.Truncate(64); !errors.Is(err, syscall.EPERM) {
			t.Errorf("%s: truncating %s it maps: %v, want EPERM", name, m.name, err)
		}
		f.Close()
	}
}

// TestSealedRunFiles: every inbox page, ring, pool and awake word a process maps is a sealed memfd that
// nobody, root included, can truncate through any descriptor of it (on
// the old code, a /dev/shm file whose truncation killed its receiver with
// SIGBUS), and none has a name in /dev/shm; a restarted process is handed
// its files again, as sealed.
func TestSealedRunFiles(t *testing.T) {
	u := startUp(t, "--topology", "testdata/probe.topo", "--transport", "shm")
	u.logOnFailure()
	run := u.status.Run
	for _, k := range sealedKinds {
		if files, _ := filepath.Glob(shm.Path(run, "*"+k)); len(files) != 0 {
			t.Errorf("run files of kind %s under names: %v", k, files)
		}
	}
	n := 0
	for _, p := range u.status.Processes {
		if p.Name != "kernel" {
			n += truncateMappings(t, p.Name, p.Pid, run)
		}
	}
	if n == 0 {
		t.Fatal("no process maps a run file")
	}
	pongs := func() float64 {
		return scrape(t, u.proc("prober").MetricsPort, "newtsim_prober_pongs_total", `peer="echo"`)
	}
	waitFor(t, "pongs from echo", 10*time.Second, func() bool { return pongs() > 3 })
	for _, p := range u.status.Processes {
		if st := u.proc(p.Name); st.Restarts != 0 || !st.Alive {
			t.Errorf("%s: restarted %d times, alive %v after the truncations", p.Name, st.Restarts, st.Alive)
		}
	}

	u.restart(t, "echo", 1)
	if truncateMappings(t, "echo restarted", u.proc("echo").Pid, run) == 0 {
		t.Error("the restarted echo maps no run file")
	}
	before := pongs()
	waitFor(t, "pongs from the new echo", 10*time.Second, func() bool { return pongs() > before+3 })
	u.down()

	// The default stack: tcp maps its awake word, sealed too.
	d := startUp(t)
	d.logOnFailure()
	kinds := map[string]bool{}
	for _, p := range d.status.Processes {
		if p.Name == "kernel" {
			continue
		}
		truncateMappings(t, p.Name, p.Pid, d.status.Run)
		for _, m := range runMappings(t, p.Pid, d.status.Run) {
			kinds[filepath.Ext(strings.TrimSuffix(m.name, " (deleted)"))] = true
		}
	}
	for _, k := range sealedKinds {
		if !kinds[k] {
			t.Errorf("no process of the default stack maps a file of kind %s (maps %v)", k, kinds)
		}
	}
	for _, p := range d.status.Processes {
		if st := d.proc(p.Name); st.Restarts != 0 || !st.Alive {
			t.Errorf("%s: restarted %d times, alive %v after the truncations", p.Name, st.Restarts, st.Alive)
		}
	}
	d.down()
}

// heldRunFiles returns the names of the run's memfds pid holds a
// descriptor of, by kind (".inbox", ".pool"), each name once.
func heldRunFiles(t *testing.T, pid int, run string) map[string][]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	held := map[string][]string{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		name, ok := strings.CutPrefix(strings.TrimSuffix(l, " (deleted)"), "/memfd:"+shm.Prefix(run))
		if err != nil || !ok || seen[name] {
			continue
		}
		seen[name] = true
		kind := filepath.Ext(name)
		held[kind] = append(held[kind], name)
	}
	return held
}

package launch_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/newtsim/newtsim/apps/loadgen"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/sim/topology"
)

// regionMappings lists pid's mappings of the run's exposed socket regions
// (named "<prefix><server>.xs<id>", as sockbuf.RegionName names them):
// what /proc/PID/maps calls each, and its /proc/PID/map_files entry.
func regionMappings(t *testing.T, pid int, run string) []runMapping {
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
		name := strings.Join(fields[5:], " ")
		if strings.Contains(name, shm.Prefix(run)) && strings.Contains(name, ".xs") {
			ms = append(ms, runMapping{name, fmt.Sprintf("/proc/%d/map_files/%s", pid, fields[0])})
		}
	}
	return ms
}

// TestSealedRegions: with exposed sockets open and idle regions kept,
// every region an application or tcp maps is a memfd (the kernel passed
// the application its descriptor) that nobody, root included, can
// truncate through its mapping (EPERM), and no region is named under
// /dev/shm; the applications and tcp stay up. On the old code regions
// were /dev/shm files made by tcp, which an application (in the sandbox)
// could not unlink, and which truncated. Both transports: the descriptors
// travel on the kernel connections either way.
func TestSealedRegions(t *testing.T) {
	for _, tr := range []string{"shm", "kernel"} {
		t.Run(tr, func(t *testing.T) { sealedRegions(t, tr) })
	}
}

func sealedRegions(t *testing.T, transport string) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	os.MkdirAll(www, 0o755)
	if err := os.WriteFile(filepath.Join(www, "20b.txt"), []byte("twenty bytes here!!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, ready := filepath.Join(dir, "loadgen.json"), filepath.Join(dir, "httpd.port")
	top := topology.Default()
	top.Processes = append(top.Processes,
		topology.Process{Name: "httpd", Role: "httpd", Args: []string{"--backend", "exposed", "--addr", "0.0.0.0:80", "--dir", www, "--ready", ready}},
		topology.Process{Name: "lg", Role: "loadgen", Args: []string{"--backend", "exposed", "--target", "127.0.0.1:80", "--ready", ready,
			"--path", "/20b.txt", "--requests", "200", "--connections", "4", "--requests-per-conn", "10", "--out", out}})
	for _, app := range []string{"httpd", "lg"} {
		top.Links = append(top.Links, topology.Link{A: app, B: "syscall"}, topology.Link{A: app, B: "tcp"})
	}
	topoPath := filepath.Join(dir, "regions.topo")
	if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUp(t, "--topology", topoPath, "--transport", transport)
	u.logOnFailure()
	var res loadgen.RoleResult
	waitFor(t, "the load generator's report", 60*time.Second, func() bool {
		b, err := os.ReadFile(out)
		return err == nil && json.Unmarshal(b, &res) == nil
	})
	if r := res.Report; res.Error != "" || r.Requests != 200 || r.Errors.Failed() != 0 {
		t.Fatalf("report %+v, error %q; want 200 requests, none failed", r, res.Error)
	}
	run := u.status.Run
	if files, _ := filepath.Glob(shm.Path(run, "*.xs*")); len(files) != 0 {
		t.Errorf("regions named under /dev/shm: %v", files)
	}
	// httpd maps its listener's region, the load generator its closed
	// sockets' (kept for reuse), tcp all of them.
	for _, name := range []string{"httpd", "lg", "tcp"} {
		ms := regionMappings(t, u.proc(name).Pid, run)
		if len(ms) == 0 {
			t.Errorf("%s maps no region", name)
		}
		for _, m := range ms {
			if !strings.HasPrefix(m.name, "/memfd:") {
				t.Errorf("%s maps region %s, not a memfd", name, m.name)
			}
			f, err := os.OpenFile(m.file, os.O_RDWR, 0)
			if err != nil {
				t.Errorf("%s: open %s (%s): %v", name, m.file, m.name, err)
				continue
			}
			if err := f.Truncate(64); !errors.Is(err, syscall.EPERM) {
				t.Errorf("%s: truncating region %s it maps: %v, want EPERM", name, m.name, err)
			}
			f.Close()
		}
	}
	for _, name := range []string{"httpd", "lg", "tcp"} {
		if st := u.proc(name); st.Restarts != 0 || !st.Alive {
			t.Errorf("%s: restarted %d times, alive %v", name, st.Restarts, st.Alive)
		}
	}
	u.down()
}

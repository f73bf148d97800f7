package launch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/newtsim/newtsim/apps/loadgen"
	"github.com/newtsim/newtsim/ipc/shm"
)

// regionMappings lists pid's mappings of the run's exposed socket regions
// (named "<prefix><server>.xs<id>", as sockbuf.RegionName names them).
func regionMappings(t *testing.T, pid int, run string) []runMapping {
	t.Helper()
	return mappings(t, pid, func(name string) bool {
		return strings.Contains(name, shm.Prefix(run)) && strings.Contains(name, ".xs")
	})
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
	topoPath, out := exposedHTTPTopology(t, "200", "4", "10")
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
		}
		truncateEach(t, name, ms)
	}
	for _, name := range []string{"httpd", "lg", "tcp"} {
		if st := u.proc(name); st.Restarts != 0 || !st.Alive {
			t.Errorf("%s: restarted %d times, alive %v", name, st.Restarts, st.Alive)
		}
	}
	u.down()
}

package sys_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// TestTruncatedMapping: a peer truncates a file the server has mapped (a
// pool, an exposed socket's region) and the role's handler touches it: the
// SIGBUS, fatal to a Go process, becomes a fault the loop recovers from,
// counts, and drops the message for; the next message is served. It runs
// in a child process, since on failure the fault kills it.
func TestTruncatedMapping(t *testing.T) {
	if !systest.InChild(t) {
		return
	}
	path := filepath.Join(t.TempDir(), "region")
	reg, err := shm.CreateRegion(path, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if err := os.Truncate(path, 0); err != nil { // the hostile peer's ftruncate
		t.Fatal(err)
	}
	var handled int
	var sum byte
	h := systest.New(t, systest.Config{Name: "tcp", Procs: map[string]int{"tcp": 2, "ip": 4}, Peers: []string{"ip"}},
		func(*sys.Server) (sys.Handler, error) {
			return sys.HandlerFunc(func(_ *sys.Server, m *ipc.Message) error {
				if m.Seq == 1 {
					sum += reg.Mem[4096] // past the end of the file now
				}
				handled++
				return nil
			}), nil
		})
	first, second := systest.Datagram(0, 0), systest.Datagram(0, 0)
	first.Seq, second.Seq = 1, 2
	h.Deliver("ip", first, second)
	if handled != 1 {
		t.Fatalf("handled %d messages, want the second one only", handled)
	}
	if got := h.Metric("newtsim_server_memory_faults_total"); got != 1 {
		t.Fatalf("memory faults counted %v, want 1", got)
	}
}

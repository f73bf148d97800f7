package servers

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/ipc/sockbuf"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// openExposed has the application app open an exposed socket on tcp, and
// returns the reply.
func openExposed(t *testing.T, h *systest.Harness) sockcall.Reply {
	t.Helper()
	var open ipc.Message
	sockcall.Call{Op: ipc.OpOpen, Type: unix.SOCK_STREAM, Exposed: true}.Encode(&open)
	h.Deliver("app", open)
	out := h.SentTo("app")
	if len(out) != 1 || systest.Result(out[0]) < 0 {
		t.Fatalf("sent %v, want the exposed open answered", out)
	}
	var r sockcall.Reply
	r.Decode(&out[0])
	return r
}

// TestTCPExposedRegionSealed: tcp makes an exposed socket's region a
// memfd sealed against resizing, with no name under /dev/shm, and deposits
// it with the kernel for the application before it answers the open; the
// application's descriptor cannot truncate it (EPERM). The old tcp made a
// file in /dev/shm, which the application opened by name and could
// truncate, and deposited nothing.
func TestTCPExposedRegionSealed(t *testing.T) {
	h := newRole(t, "tcp", TCP)
	r := openExposed(t, h)
	f := h.K.Deposited(h.Endpoint("app"), r.Region)
	if f == nil {
		t.Fatalf("tcp answered the open with region %d, deposited nothing for the application", r.Region)
	}
	defer f.Close()
	if err := unix.Ftruncate(int(f.Fd()), 0); !errors.Is(err, unix.EPERM) {
		t.Errorf("ftruncate of the application's descriptor: %v, want EPERM", err)
	}
	if reg, err := sockbuf.Map(f, true); err != nil {
		t.Errorf("the deposited file is not the region: %v", err)
	} else {
		reg.Close()
	}
	if files, _ := filepath.Glob(shm.Path(h.S.Opts.Run, "*")); len(files) != 0 {
		t.Errorf("files under /dev/shm: %v", files)
	}
}

// namedRegions makes tcp's regions files in /dev/shm, unsealed, as they
// were before regions were sealed memfds: the fixture of a region its
// application truncates.
func namedRegions(t *testing.T, tcpH *tcpServer) {
	tcpH.x.regionFile = func(s *sys.Server, id uint64) (*os.File, error) {
		f, err := os.OpenFile(filepath.Join(shm.Dir, sockbuf.RegionName(s.Opts.Run, s.Opts.Name, id)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { os.Remove(f.Name()) })
		if err := f.Truncate(sockbuf.Size); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
}

// TestTCPExposedRegionTruncated: an application truncates its exposed
// socket's region file and rings the doorbell: tcp's pump faults on the
// mapping (SIGBUS, fatal to the process without sys.Fault), ends that
// socket as hostile (reason fault) and serves on. Regions are sealed
// memfds now, which nobody can truncate (TestTCPExposedRegionSealed); the
// recovery stays, as defence in depth, and the fixture is a named file.
// In a child process, since on failure the fault kills it.
func TestTCPExposedRegionTruncated(t *testing.T) {
	if !systest.InChild(t) {
		return
	}
	h := newRole(t, "tcp", TCP)
	namedRegions(t, h.Handler.(*tcpServer))
	r := openExposed(t, h)
	if err := os.Truncate(filepath.Join(shm.Dir, sockbuf.RegionName(h.S.Opts.Run, "tcp", r.Region)), 0); err != nil {
		t.Fatal(err)
	}
	var bell ipc.Message
	sockcall.Doorbell{Sock: uint64(r.Result)}.Encode(&bell)
	h.Deliver("app", bell)
	if got := h.Metric("newtsim_tcp_exposed_refused_total", "reason", "fault"); got != 1 {
		t.Fatalf("exposed sockets ended for a fault: %v, want 1", got)
	}
	h.Deliver("app", systest.Open(unix.SOCK_STREAM)) // and it serves on
	if out := h.SentTo("app"); len(out) != 1 || systest.Result(out[0]) < 0 {
		t.Fatalf("sent %v, want the next open answered", out)
	}
}

// TestTCPExposedPumpBudget: one pump takes at most its budget of
// descriptors from a socket's transmit ring, and leaves the rest for the
// loop's next turns, so that an application that keeps posting cannot
// pin tcp's loop. The budget is cut to 4 here: the ring holds 256, and
// only an application posting while tcp pumps could give one pump more.
// Before the budget, one pump took every descriptor there was.
func TestTCPExposedPumpBudget(t *testing.T) {
	h := newRole(t, "tcp", TCP)
	h.Handler.(*tcpServer).x.budget = 4
	r := openExposed(t, h)
	f := h.K.Deposited(h.Endpoint("app"), r.Region)
	if f == nil {
		t.Fatal("no region deposited")
	}
	defer f.Close()
	reg, err := sockbuf.Map(f, true)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	tx := reg.TX()
	for range 10 { // shutdowns of no direction: each taken, none acts
		if ok, err := tx.Put(&sockbuf.Desc{Kind: sockbuf.KindShutdown, Aux: 99}); !ok || err != nil {
			t.Fatalf("post: %v, %v", ok, err)
		}
	}
	reg.Doorbell().Add(1)
	var bell ipc.Message
	sockcall.Doorbell{Sock: uint64(r.Result)}.Encode(&bell)
	h.Deliver("app", bell)
	// The doorbell's pump, then the look at every doorbell that ends
	// each handling: two pumps of 4.
	if got := tx.Len(); got != 2 {
		t.Fatalf("%d descriptors left after one doorbell, want 2 (two pumps of 4)", got)
	}
	if got := h.Metric("newtsim_tcp_exposed_pump_budget_spent_total"); got != 2 {
		t.Fatalf("pumps that spent their budget: %v, want 2", got)
	}
	h.Idle() // the loop's next turns take the rest
	if got := tx.Len(); got != 0 {
		t.Errorf("%d descriptors left once the loop went idle, want 0", got)
	}
}

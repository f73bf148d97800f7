package servers

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/sockbuf"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// TestTCPExposedRegionTruncated: an application truncates its exposed
// socket's region file and rings the doorbell: tcp's pump faults on the
// mapping (SIGBUS, fatal to the process without sys.Fault), ends that
// socket as hostile (reason fault) and serves on. In a child process,
// since on failure the fault kills it.
func TestTCPExposedRegionTruncated(t *testing.T) {
	if !systest.InChild(t) {
		return
	}
	h := newRole(t, "tcp", TCP)
	var open ipc.Message
	sockcall.Call{Op: ipc.OpOpen, Type: unix.SOCK_STREAM, Exposed: true}.Encode(&open)
	h.Deliver("app", open)
	out := h.SentTo("app")
	if len(out) != 1 || systest.Result(out[0]) < 0 {
		t.Fatalf("sent %v, want the exposed open answered", out)
	}
	var r sockcall.Reply
	r.Decode(&out[0])
	if err := os.Truncate(sockbuf.RegionPath(h.S.Opts.Run, "tcp", r.Region), 0); err != nil {
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

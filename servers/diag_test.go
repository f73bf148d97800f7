package servers

import (
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// diagRun is a small run for the diagnostic roles: the role, two peers,
// and a process it is not linked to.
var diagRun = map[string]int{"diag": 1, "a": 2, "b": 3, "stranger": 4}

func TestProber(t *testing.T) {
	h := systest.New(t, systest.Config{Name: "diag", Role: "prober", Procs: diagRun, Peers: []string{"a", "b"},
		Args: []string{"--interval", "20ms"}}, Prober)
	armed := func() {
		t.Helper()
		k := h.KernelSent()
		if len(k) != 1 || k[0].Type != ipc.SetAlarm || systest.AlarmAfter(k[0]) != 20*time.Millisecond {
			t.Fatalf("sent the kernel %v, want an alarm in 20ms", k)
		}
	}
	armed() // at the start
	h.Deliver("kernel", systest.Alarm())
	pinged := map[string]int{}
	for _, m := range h.Sent() {
		if m.Type != ipc.Ping {
			t.Fatalf("sent %v, want pings", m)
		}
		pinged[h.Name(m.Dst)]++
	}
	if len(pinged) != 2 || pinged["a"] != 1 || pinged["b"] != 1 {
		t.Errorf("pinged %v, want each peer once", pinged)
	}
	armed() // again, for the next round
	h.Deliver("a", systest.Pong(0))
	h.Deliver("a", systest.Pong(0))
	h.Deliver("kernel", systest.KernelError(ipc.EDEADSRCDST, ipc.Ping, h.Endpoint("b")))
	if got := h.Metric("newtsim_prober_pongs_total", "peer", "a"); got != 2 {
		t.Errorf("pongs from a = %v, want 2", got)
	}
	if got := h.Metric("newtsim_prober_pongs_total", "peer", "b"); got != 0 {
		t.Errorf("pongs from b = %v, want none", got)
	}
	if got := h.Metric("newtsim_prober_send_failures_total", "peer", "b", "reason", ipc.EDEADSRCDST.Error()); got != 1 {
		t.Errorf("failures to b = %v, want 1", got)
	}
	// A restarted peer is pinged at its new endpoint.
	ep := h.Restart("a")
	h.Deliver("kernel", systest.Alarm())
	found := false
	for _, m := range h.Sent() {
		found = found || m.Dst == ep
	}
	if !found {
		t.Errorf("a restarted peer was not pinged at %v", ep)
	}
}

func TestHostile(t *testing.T) {
	h := systest.New(t, systest.Config{Name: "diag", Role: "hostile", Procs: diagRun, Peers: []string{"a"},
		Args: []string{"--forbidden", "stranger"}}, Hostile)
	// The forbidden send goes through the kernel, which will refuse it.
	k := h.KernelSent()
	if len(k) != 1 || k[0].Type != ipc.Ping || k[0].Dst != h.Endpoint("stranger") {
		t.Fatalf("sent the kernel %v, want a ping to stranger", k)
	}
	h.Deliver("kernel", systest.KernelError(ipc.EPERM, ipc.Ping, h.Endpoint("stranger")),
		systest.KernelError(ipc.EINVAL, 0, 0), systest.KernelError(ipc.EPERM, ipc.Ping, h.Endpoint("stranger")))
	if got := h.Metric("newtsim_hostile_kernel_errors_total", "errno", ipc.EPERM.Error()); got != 2 {
		t.Errorf("EPERM counted %v times, want 2", got)
	}
	if got := h.Metric("newtsim_hostile_kernel_errors_total"); got != 3 {
		t.Errorf("%v errors counted, want 3", got)
	}
	// It serves like any server.
	h.Deliver("a", systest.Ping(5))
	if out := h.SentTo("a"); len(out) != 1 || out[0].Type != ipc.Pong || out[0].Seq != 5 {
		t.Errorf("sent %v, want a pong", out)
	}
}

func TestEcho(t *testing.T) {
	h := systest.New(t, systest.Config{Name: "diag", Role: "echo", Procs: diagRun, Peers: []string{"a"}}, Echo)
	h.Deliver("a", systest.Ping(9, 1, 2))
	h.Deliver("kernel", systest.Alarm(), systest.Alarm())
	h.Deliver("a", systest.FrameRx(0)) // an application may not send frames: refused
	if got := h.Metric("newtsim_server_refused_messages_total", "reason", "wrong-sender"); got != 1 {
		t.Errorf("refused %v frames, want 1", got)
	}
	want := systest.Pong(9, 1, 2)
	want.Src, want.Dst = h.Endpoint("diag"), h.Endpoint("a")
	if out := h.SentTo("a"); len(out) != 1 || out[0] != want {
		t.Errorf("sent %v, want %v", out, want)
	}
	for typ, n := range map[string]float64{"alarm": 2, "frame-rx": 0, "ping": 0} {
		if got := h.Metric("newtsim_server_ignored_messages_total", "type", typ); got != n {
			t.Errorf("%s ignored %v times, want %v", typ, got, n)
		}
	}
}

package metrics

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/newtsim/newtsim/ipc"
)

func peers(slot int) string {
	switch slot {
	case 0:
		return "kernel"
	case 2:
		return "ip"
	}
	return ""
}

// TestTransportMetrics checks the collector's output against a golden
// exposition and lints every name as Prometheus's own linter does.
func TestTransportMetrics(t *testing.T) {
	var st ipc.Stats
	st.Sent[2].Add(5)
	st.Received[2].Add(3)
	st.Received[0].Add(1)
	st.Spins.Add(7)
	st.Sleeps.Add(2)
	st.Wakeups.Add(4)
	st.Refused.Add(1)
	c := NewTransport("shm", &st, peers)
	want := `
# HELP newtsim_ipc_messages_received_total Messages received, by source process.
# TYPE newtsim_ipc_messages_received_total counter
newtsim_ipc_messages_received_total{peer="ip",transport="shm"} 3
newtsim_ipc_messages_received_total{peer="kernel",transport="shm"} 1
# HELP newtsim_ipc_messages_sent_total Messages sent, by destination process.
# TYPE newtsim_ipc_messages_sent_total counter
newtsim_ipc_messages_sent_total{peer="ip",transport="shm"} 5
newtsim_ipc_messages_sent_total{peer="kernel",transport="shm"} 0
# HELP newtsim_ipc_refused_messages_total Messages refused: malformed, forged source, or stale.
# TYPE newtsim_ipc_refused_messages_total counter
newtsim_ipc_refused_messages_total{transport="shm"} 1
# HELP newtsim_ipc_sleeps_total Waits that went to sleep (futex wait or blocking system call).
# TYPE newtsim_ipc_sleeps_total counter
newtsim_ipc_sleeps_total{transport="shm"} 2
# HELP newtsim_ipc_spin_waits_total Waits that ended while spinning, without sleeping.
# TYPE newtsim_ipc_spin_waits_total counter
newtsim_ipc_spin_waits_total{transport="shm"} 7
# HELP newtsim_ipc_wakeups_total Futex wake-ups issued to sleeping peers.
# TYPE newtsim_ipc_wakeups_total counter
newtsim_ipc_wakeups_total{transport="shm"} 4
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestRegistryLintsAndServes(t *testing.T) {
	reg := NewRegistry("tcp", "tcp")
	var st ipc.Stats
	reg.MustRegister(NewTransport("kernel", &st, peers))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "newtsim_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	s, err := Serve(reg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(s.Port) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `newtsim_process_info{process="tcp",role="tcp"} 1`) {
		t.Fatalf("served metrics lack the process info:\n%s", b)
	}
}

package collector

import (
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

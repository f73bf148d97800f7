package prom_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/collector"
)

func TestRegistryLintsAndServes(t *testing.T) {
	reg := prom.NewRegistry("tcp", "tcp")
	var st ipc.Stats
	reg.MustRegister(collector.NewTransport("kernel", &st, func(slot int) string {
		if slot == 2 {
			return "ip"
		}
		return ""
	}))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "newtsim_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	s, err := prom.Serve(reg, "127.0.0.1:0")
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

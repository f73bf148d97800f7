package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/bench/probe"
)

// TestSwitchHop runs both rings on one core, as bench http does before its
// matrix: each gives a positive time per hop, and a ring whose members are
// not all there never finishes a lap (the lead's sample is made of laps
// that went round every member).
func TestSwitchHop(t *testing.T) {
	cpus, log, done, err := prepare("ring", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	h, err := measureSwitchHop(cpus[0], log)
	if err != nil {
		t.Fatal(err)
	}
	if h.Members != RingMembers || h.ProcessNS <= 0 || h.ThreadNS <= 0 || h.ProcessCPUNS <= 0 || h.ThreadCPUNS <= 0 {
		t.Fatalf("switch hop %+v: want %d members and positive times", h, RingMembers)
	}
	// Each hop puts the next process on the core: a switch at least,
	// whatever else runs there.
	if h.ProcessSwitches < 0.9 {
		t.Fatalf("%.2f switches a hop between processes: a hop that switches nothing was not measured", h.ProcessSwitches)
	}
	t.Logf("on CPU %d: a hop between processes %.0f ns of CPU (%.0f wall, %.2f switches), between threads %.0f (%.0f wall)",
		h.Core, h.ProcessCPUNS, h.ProcessNS, h.ProcessSwitches, h.ThreadCPUNS, h.ThreadNS)
}

// TestRingLeadNeedsEveryMember: a lap goes round every member, so a lead
// whose ring of 3 has only member 1 running finishes no lap and writes no
// sample.
func TestRingLeadNeedsEveryMember(t *testing.T) {
	cpus, log, done, err := prepare("ring", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	f, err := probe.RingFile()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), "ring.json")
	var cmds []*exec.Cmd
	for _, o := range []probe.PeerOptions{{Mode: "ring-member", Size: 3, Index: 1, Out: out}, {Mode: "ring-lead", Size: 3, Out: out}} {
		cmd, err := startPeer(cpus[0], log, []*os.File{f}, o)
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmds[1].Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("the lead of a ring missing a member finished: %v", err)
	case <-time.After(2 * time.Second):
	}
	for _, c := range cmds {
		c.Process.Kill()
	}
	<-exited
	cmds[0].Wait()
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a ring missing a member wrote a sample")
	}
}

// TestSwitchTable: the floor is switches times the hop, for the simulated
// host's rows only, and the table shows it beside the CPU per request.
func TestSwitchTable(t *testing.T) {
	r := &HTTPReport{
		Servers: []HTTPServer{{Name: "httpd-exposed", Kind: sideHost}, {Name: "lighttpd", Kind: sideLighttpd}},
		Rows: []HTTPRow{
			{Workload: "20B-10rpc", Server: "httpd-exposed", SwitchesPerRequest: 4, ServerCPUUSPerRequest: 160},
			{Workload: "20B-10rpc", Server: "lighttpd", SwitchesPerRequest: 0.3, ServerCPUUSPerRequest: 23},
		},
		SwitchHop: &SwitchHop{Members: 9, Core: 1, ProcessNS: 30000, ProcessCPUNS: 40000, ProcessSwitches: 2, ThreadNS: 6000, ThreadCPUNS: 5000},
	}
	r.setSwitchFloors()
	if f := r.Rows[0].SwitchFloorUS; f == nil || *f != 80 {
		t.Fatalf("exposed floor %v, want 80 us (4 switches x 20 us a switch: 40 us a hop of 2 switches)", f)
	}
	if r.Rows[1].SwitchFloorUS != nil {
		t.Fatalf("lighttpd has a floor: %v", *r.Rows[1].SwitchFloorUS)
	}
	tab := r.switchTable()
	for _, want := range []string{"40.0 us of CPU and 2.00 context switches (30.0 us of wall time), 20.0 us of CPU a switch", "5.0 us of CPU (6.0 wall), 8.0x less", "| 20B-10rpc | httpd-exposed | 4.00 | 80.0 | 160.0 | 50% |"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	if strings.Contains(tab, "lighttpd") {
		t.Errorf("table has lighttpd:\n%s", tab)
	}
}

// TestLighttpdChecks: the targets against lighttpd are checks, and
// a missed one with a switch floor gets a note with the CPU a request may
// take at the target.
func TestLighttpdChecks(t *testing.T) {
	r := &HTTPReport{
		Servers: []HTTPServer{{Name: "httpd-exposed", Kind: sideHost}, {Name: "httpd-message-shm", Kind: sideHost},
			{Name: "lighttpd", Kind: sideLighttpd}},
		Rows: []HTTPRow{
			{Workload: "20B-10rpc", Server: "httpd-exposed", ReqPerS: 5000, SwitchesPerRequest: 4, ServerCPUUSPerRequest: 160},
			{Workload: "20B-10rpc", Server: "httpd-message-shm", ReqPerS: 5000, SwitchesPerRequest: 30, ServerCPUUSPerRequest: 700},
			{Workload: "20B-10rpc", Server: "lighttpd", ReqPerS: 20000},
		},
		SwitchHop: &SwitchHop{Members: 9, ProcessCPUNS: 20000, ProcessSwitches: 1},
	}
	r.setSwitchFloors()
	r.judge()
	want := map[string]bool{
		"20B-10rpc: httpd-exposed req/s / lighttpd req/s":     false, // 0.25 < 0.5
		"20B-10rpc: httpd-message-shm req/s / lighttpd req/s": true,  // 0.25 >= 0.2
	}
	for name, met := range want {
		i := slices.IndexFunc(r.Checks, func(c Check) bool { return c.Name == name })
		if i < 0 {
			t.Fatalf("no check %q in %+v", name, r.Checks)
		}
		if c := r.Checks[i]; c.Met != met || c.Value != 0.25 {
			t.Errorf("%s: met %v value %v, want %v 0.25", name, c.Met, c.Value, met)
		}
	}
	note := strings.Join(r.Notes, "\n")
	if !strings.Contains(note, "has 100.0 us of CPU a request; this cell's switch floor alone is 80.0 us") {
		t.Errorf("notes lack the exposed cell's floor against its budget:\n%s", note)
	}
	if strings.Contains(note, "httpd-message-shm") {
		t.Errorf("a met target has a note:\n%s", note)
	}
}

// TestBulkFloors: bench tcp's rows of the simulated host get a switch floor
// per MiB from the measured hop, the others none; a missed target gets a
// note with the CPU a MiB may take at it; and the table shows both.
func TestBulkFloors(t *testing.T) {
	tests := []struct {
		name     string
		shm      float64 // message-shm's Mbit/s
		wantNote bool
	}{
		{"target missed", 1000, true},
		{"target met", 2200, false}, // 0.25 of Linux is 2097 Mbit/s
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{
				Bench: "tcp",
				Bulk: []BulkRow{
					{Name: "message-shm", Mbits: tt.shm},
					{Name: "monolith", Mbits: 3000},
					{Name: "linux", Mbits: 1000 * (1 << 20) * 8 / 1e6}, // 1000 MiB/s
				},
				SwitchHop: &SwitchHop{Members: 9, Core: 1, ProcessCPUNS: 20000, ProcessSwitches: 2},
			}
			r.Bulk[0].setCost(3*time.Millisecond, 200, 2<<20) // 1500 us and 100 switches a MiB
			r.Bulk[1].setCost(0, 5, 2<<20)                    // no CPU read: no cost
			r.setBulkFloors(0.25)
			if f := r.Bulk[0].SwitchFloorUSPerMiB; f == nil || *f != 1000 {
				t.Fatalf("message-shm floor %v, want 1000 us a MiB (100 switches x 10 us)", f)
			}
			if r.Bulk[1].SwitchFloorUSPerMiB != nil || r.Bulk[2].SwitchFloorUSPerMiB != nil {
				t.Fatal("a row without a cost has a floor")
			}
			note := slices.ContainsFunc(r.Notes, func(n string) bool {
				// 0.25 of 1000 MiB/s: 250 MiB/s, 4000 us a MiB.
				return strings.Contains(n, "has 4000.0 us of CPU a MiB; its switch floor alone is 1000.0 us (100.0 switches a MiB x 10.0 us")
			})
			if note != tt.wantNote {
				t.Errorf("note %v, want %v: %q", note, tt.wantNote, r.Notes)
			}
			md := r.Table()
			for _, want := range []string{"| 1500.0 | 100.00 | 1000.0 |", "10.0 us of CPU a switch"} {
				if !strings.Contains(md, want) {
					t.Errorf("table lacks %q:\n%s", want, md)
				}
			}
		})
	}
}

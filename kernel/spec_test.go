package kernel

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/boot"
)

// testSpec: a chain syscall - tcp - ip - nic on shared memory.
func testSpec() *Spec {
	return &Spec{
		Topology: "chain", Transport: TransportShm, Slots: 64, Plan: "dedicated/5cpu: ...", KernelCores: []int{0},
		Procs: []Proc{
			{Name: "syscall", Role: "syscall", Cores: []int{1}, Wait: "poll", Routes: map[string]string{"ip": "tcp", "nic": "tcp"}},
			{Name: "tcp", Role: "tcp", Cores: []int{2}, Wait: "20us", Routes: map[string]string{"nic": "ip"}},
			{Name: "ip", Role: "ip", Cores: []int{3}, Wait: "block", Routes: map[string]string{"syscall": "tcp"}},
			{Name: "nic", Role: "nic", Wait: "block", Args: []string{"--backend", "tap"},
				Routes: map[string]string{"syscall": "ip", "tcp": "ip"}},
		},
		Links: []Link{{"syscall", "tcp"}, {"tcp", "ip"}, {"ip", "nic"}},
	}
}

func TestSpecRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spec.json")
	want := testSpec()
	if err := WriteSpec(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadSpec(WriteSpec(s)) =\n%+v\nwant\n%+v", got, want)
	}
}

func TestReadSpecRefusesUnknownFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spec.json")
	os.WriteFile(path, []byte(`{"transport":"shm","topology_file":"x"}`), 0o644)
	if _, err := ReadSpec(path); err == nil || !strings.Contains(err.Error(), "topology_file") {
		t.Fatalf("ReadSpec = %v, want an error naming the unknown field", err)
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *Spec)
		want   string // "": valid
	}{
		{"valid", func(*Spec) {}, ""},
		{"kernel transport", func(s *Spec) { s.Transport = TransportKernel }, ""},
		{"unknown transport", func(s *Spec) { s.Transport = "pigeon" }, "transport"},
		{"duplicate name", func(s *Spec) { s.Procs[1].Name = "syscall" }, "taken"},
		{"process called kernel", func(s *Spec) { s.Procs[0].Name = "kernel" }, "reserved"},
		{"empty name", func(s *Spec) { s.Procs[0].Name = "" }, "empty"},
		{"bad wait", func(s *Spec) { s.Procs[2].Wait = "sometimes" }, "ip"},
		{"link to nobody", func(s *Spec) { s.Links = append(s.Links, Link{"ip", "pf"}) }, "link ip-pf"},
		{"link to itself", func(s *Spec) { s.Links = append(s.Links, Link{"ip", "ip"}) }, "link ip-ip"},
		{"route via nobody", func(s *Spec) { s.Procs[0].Routes["nic"] = "pf" }, "route"},
		{"too many", func(s *Spec) {
			for len(s.Procs) < ipc.MaxSlots {
				s.Procs = append(s.Procs, Proc{Name: "p" + string(rune('A'+len(s.Procs))), Wait: "block"})
			}
		}, "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSpec()
			tt.change(s)
			err := s.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestSpecBoot: the options a server starts with come from its process,
// its links and the run, and survive the command line.
func TestSpecBoot(t *testing.T) {
	s := testSpec()
	ep := ipc.MakeEndpoint(2, 3)
	o, err := s.Boot("0a1b2c3d", 2, ep)
	if err != nil {
		t.Fatal(err)
	}
	want := boot.Options{Name: "tcp", Role: "tcp", Endpoint: ep, Run: "0a1b2c3d", Transport: "shm",
		Wait: ipc.WaitPolicy{Spin: 20000}, Cores: []int{2},
		Peers:  map[string]int{"syscall": 1, "ip": 3},
		Procs:  map[string]int{"syscall": 1, "tcp": 2, "ip": 3, "nic": 4},
		Routes: map[string]string{"nic": "ip"},
		Roles:  map[string]string{"syscall": "syscall", "tcp": "tcp", "ip": "ip", "nic": "nic"}}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("Boot(tcp) =\n%+v\nwant\n%+v", o, want)
	}
	if back, err := boot.Parse(o.Argv()); err != nil || !reflect.DeepEqual(back, o) {
		t.Fatalf("boot.Parse(Argv()) = %+v, %v", back, err)
	}
	if o, _ := s.Boot("0a1b2c3d", 4, ipc.MakeEndpoint(4, 1)); !reflect.DeepEqual(o.Args, []string{"--backend", "tap"}) ||
		!reflect.DeepEqual(o.Peers, map[string]int{"ip": 3}) {
		t.Fatalf("Boot(nic) = %+v", o)
	}
	for _, slot := range []int{0, 5} {
		if _, err := s.Boot("0a1b2c3d", slot, ep); err == nil {
			t.Errorf("Boot(slot %d) succeeded", slot)
		}
	}
}

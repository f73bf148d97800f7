package topology

import (
	"slices"
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	var names []string
	for _, p := range d.Processes {
		if p.Role != p.Name {
			t.Errorf("process %s has role %s, want its name", p.Name, p.Role)
		}
		names = append(names, p.Name)
	}
	if want := []string{"syscall", "tcp", "udp", "ip", "pf", "driver", "nic"}; !slices.Equal(names, want) {
		t.Errorf("processes %v, want %v", names, want)
	}
	if d.Name != "default" || d.Transport != Shm || d.Wait != "" {
		t.Errorf("name, transport, wait = %q, %q, %q", d.Name, d.Transport, d.Wait)
	}
	if len(d.Links) != 7 {
		t.Errorf("%d links, want 7", len(d.Links))
	}
	if Default() == d || &Default().Processes[0] == &d.Processes[0] {
		t.Error("Default returns shared state")
	}
}

func TestSlot(t *testing.T) {
	d := Default()
	tests := []struct {
		name string
		want int
	}{
		{"kernel", 0},
		{"syscall", 1},
		{"tcp", 2},
		{"driver", 6},
		{"nosuch", -1},
		{"", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.Slot(tt.name); got != tt.want {
				t.Fatalf("Slot(%q) = %d, want %d", tt.name, got, tt.want)
			}
		})
	}
}

func TestProcess(t *testing.T) {
	d := Default()
	tests := []struct {
		name   string
		wantOK bool
	}{
		{"tcp", true},
		{"pf", true},
		{"kernel", false},
		{"app", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := d.Process(tt.name)
			if ok != tt.wantOK || ok && p.Name != tt.name {
				t.Fatalf("Process(%q) = %+v, %v; want ok %v", tt.name, p, ok, tt.wantOK)
			}
		})
	}
}

func TestPeers(t *testing.T) {
	d := Default()
	tests := []struct {
		name string
		want []string
	}{
		{"syscall", []string{"tcp", "udp"}},
		{"tcp", []string{"syscall", "ip"}},
		// Topology order, not link order: pf-driver is listed after ip-pf.
		{"pf", []string{"ip", "driver"}},
		{"ip", []string{"tcp", "udp", "pf"}},
		{"driver", []string{"pf", "nic"}},
		{"kernel", []string{"syscall", "tcp", "udp", "ip", "pf", "driver", "nic"}},
		{"nosuch", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.Peers(tt.name); !slices.Equal(got, tt.want) {
				t.Fatalf("Peers(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func TestCanSend(t *testing.T) {
	d := Default()
	tests := []struct {
		from, to string
		want     bool
	}{
		{"syscall", "tcp", true},
		{"tcp", "syscall", true},
		{"ip", "pf", true},
		{"driver", "pf", true},
		{"syscall", "ip", false},
		{"tcp", "driver", false},
		{"tcp", "tcp", false},
		{"kernel", "driver", true},
		{"driver", "kernel", true},
		{"kernel", "nosuch", true},
		{"nosuch", "tcp", false},
	}
	for _, tt := range tests {
		t.Run(tt.from+"-"+tt.to, func(t *testing.T) {
			if got := d.CanSend(tt.from, tt.to); got != tt.want {
				t.Fatalf("CanSend(%q, %q) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Topology)
		wantErr string // "" for valid
	}{
		{name: "default", edit: func(*Topology) {}},
		{name: "no name", edit: func(t *Topology) { t.Name = "" }},
		{name: "empty role is the name", edit: func(t *Topology) { t.Processes[0].Role = "" }},
		{name: "other role", edit: func(t *Topology) { t.Processes[0].Role = "my-role" }},
		{name: "kernel transport", edit: func(t *Topology) { t.Transport = Kernel }},
		{name: "waits", edit: func(t *Topology) {
			t.Wait = "20us"
			t.Processes[0].Wait, t.Processes[1].Wait, t.Processes[2].Wait, t.Processes[3].Wait = "poll", "block", "auto", "0"
		}},
		{name: "yields", edit: func(t *Topology) { t.Wait, t.Processes[0].Wait = "yield", "yield:50us" }},
		{name: "cores", edit: func(t *Topology) { t.Processes[0].Cores = []int{3, 0} }},
		{name: "args", edit: func(t *Topology) { t.Processes[0].Args = []string{"--size", "64"} }},
		{name: "no processes", edit: func(t *Topology) { t.Processes, t.Links = nil, nil }},
		{name: "63 processes", edit: func(t *Topology) {
			t.Processes, t.Links = nil, nil
			for i := range MaxProcesses {
				t.Processes = append(t.Processes, Process{Name: "p" + string(rune('a'+i/26)) + string(rune('a'+i%26))})
			}
		}},

		{name: "bad topology name", edit: func(t *Topology) { t.Name = "my topology" }, wantErr: "topology name"},
		{name: "no transport", edit: func(t *Topology) { t.Transport = "" }, wantErr: `transport ""`},
		{name: "unknown transport", edit: func(t *Topology) { t.Transport = "udp" }, wantErr: `transport "udp"`},
		{name: "bad wait", edit: func(t *Topology) { t.Wait = "spin" }, wantErr: `wait "spin"`},
		{name: "bad yield", edit: func(t *Topology) { t.Wait = "yield:soon" }, wantErr: `wait "yield:soon"`},
		{name: "negative wait", edit: func(t *Topology) { t.Processes[1].Wait = "-1us" }, wantErr: `process tcp: wait "-1us"`},
		{name: "empty name", edit: func(t *Topology) { t.Processes[1].Name = "" }, wantErr: `name ""`},
		{name: "upper-case name", edit: func(t *Topology) { t.Processes[1].Name = "TCP" }, wantErr: `name "TCP"`},
		{name: "long name", edit: func(t *Topology) { t.Processes[1].Name = "abcdefghijklmnopqrstuvwxyz0123456" }, wantErr: "1 to 32"},
		{name: "kernel listed", edit: func(t *Topology) { t.Processes[1].Name = "kernel" }, wantErr: "implicit kernel"},
		{name: "duplicate name", edit: func(t *Topology) { t.Processes[2].Name = "tcp" }, wantErr: "process tcp: duplicate name (process 2"},
		{name: "bad role", edit: func(t *Topology) { t.Processes[1].Role = "Tcp" }, wantErr: `role "Tcp"`},
		{name: "negative core", edit: func(t *Topology) { t.Processes[1].Cores = []int{-1} }, wantErr: "core -1 is out of range"},
		{name: "core twice", edit: func(t *Topology) { t.Processes[1].Cores = []int{1, 1} }, wantErr: "core 1 is listed twice"},
		{name: "arg with space", edit: func(t *Topology) { t.Processes[1].Args = []string{"a b"} }, wantErr: `argument "a b"`},
		{name: "arg with hash", edit: func(t *Topology) { t.Processes[1].Args = []string{"#1"} }, wantErr: `argument "#1"`},
		{name: "empty arg", edit: func(t *Topology) { t.Processes[1].Args = []string{""} }, wantErr: `argument ""`},
		{name: "unknown link end", edit: func(t *Topology) { t.Links[0].B = "tpc" }, wantErr: `link syscall tpc: no process is called "tpc"`},
		{name: "kernel link", edit: func(t *Topology) { t.Links[0].B = "kernel" }, wantErr: "kernel is linked to every process"},
		{name: "self link", edit: func(t *Topology) { t.Links[0].B = "syscall" }, wantErr: "links a process to itself"},
		{name: "duplicate link", edit: func(t *Topology) { t.Links = append(t.Links, Link{"tcp", "syscall"}) }, wantErr: "link tcp syscall: duplicate link"},
		{name: "64 processes", edit: func(t *Topology) {
			t.Processes, t.Links = nil, nil
			for i := range MaxProcesses + 1 {
				t.Processes = append(t.Processes, Process{Name: "p" + string(rune('a'+i/26)) + string(rune('a'+i%26))})
			}
		}, wantErr: "more than 63 processes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := Default()
			tt.edit(top)
			err := top.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNextHop(t *testing.T) {
	d := Default()
	tests := []struct {
		from, to, want string
		ok             bool
	}{
		{"ip", "driver", "pf", true},
		{"driver", "ip", "pf", true},
		{"syscall", "driver", "tcp", true}, // tcp and udp tie; tcp is listed first
		{"udp", "tcp", "syscall", true},
		{"pf", "ip", "ip", true},
		{"ip", "ip", "", false},
	}
	for _, tt := range tests {
		got, ok := d.NextHop(tt.from, tt.to)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NextHop(%s, %s) = %q, %v; want %q, %v", tt.from, tt.to, got, ok, tt.want, tt.ok)
		}
	}
	lone := &Topology{Transport: Shm, Processes: []Process{{Name: "a"}, {Name: "b"}}}
	if _, ok := lone.NextHop("a", "b"); ok {
		t.Error("a path between unlinked processes")
	}
}

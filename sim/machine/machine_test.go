package machine

import (
	"strings"
	"testing"

	"github.com/newtsim/newtsim/internal/cpu"
)

func TestDetect(t *testing.T) {
	i := Detect()
	if i.GoVersion == "" || i.Kernel == "" || i.Virtualization == "" || i.IdlePolicy == "" {
		t.Errorf("Detect() left facts empty: %+v", i)
	}
	if online, err := cpu.Online(); err == nil && i.CPUs != len(online) {
		t.Errorf("Detect().CPUs = %d, want %d", i.CPUs, len(online))
	}
	s := i.String()
	if !strings.HasPrefix(s, "machine: ") {
		t.Errorf("String() = %q", s)
	}
	t.Log(s)
}

func TestInfoString(t *testing.T) {
	tests := []struct {
		name string
		in   Info
		want string
	}{
		{
			name: "full",
			in: Info{CPUModel: "AMD EPYC", CPUs: 2, OnlineCPUs: []int{0, 1}, Kernel: "6.1.0 #1 SMP",
				Virtualization: "kvm (firecracker)", TSCHz: 2.596e9, TSCInvariant: true,
				IdlePolicy: "cpuidle driver haltpoll, governor haltpoll", GoVersion: "go1.26.8", Hostname: "vm"},
			want: "machine: AMD EPYC, 2 CPUs (0-1), virtualization kvm (firecracker), Linux 6.1.0, TSC 2.596 GHz invariant, idle: cpuidle driver haltpoll, governor haltpoll, go1.26.8, host vm",
		},
		{
			name: "empty",
			want: "machine: unknown, 0 CPUs, virtualization unknown, Linux unknown, no TSC, idle: unknown, unknown, host unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Fatalf("String() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

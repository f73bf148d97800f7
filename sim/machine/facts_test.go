package machine

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
)

// fixture reads a file under testdata.
func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		file      string
		model     string
		vendor    string
		hyper     bool
		invariant bool
		nflags    int
	}{
		{file: "cpuinfo-epyc-kvm.txt", model: "AMD EPYC", vendor: "AuthenticAMD", hyper: true, invariant: true, nflags: 105},
		{file: "cpuinfo-xeon-metal.txt", model: "Intel(R) Xeon(R) Gold 6138 CPU @ 2.00GHz", vendor: "GenuineIntel", invariant: true, nflags: 75},
		{file: "cpuinfo-qemu-tsc-unstable.txt", model: "QEMU Virtual CPU version 2.5+", vendor: "GenuineIntel", hyper: true, nflags: 30},
		{file: "cpuinfo-arm64.txt", nflags: 17},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := parseCPUInfo(fixture(t, tt.file))
			if c.model != tt.model || c.vendor != tt.vendor {
				t.Errorf("model, vendor = %q, %q; want %q, %q", c.model, c.vendor, tt.model, tt.vendor)
			}
			if got := c.has("hypervisor"); got != tt.hyper {
				t.Errorf("hypervisor flag = %v, want %v", got, tt.hyper)
			}
			if got := c.has("constant_tsc") && c.has("nonstop_tsc"); got != tt.invariant {
				t.Errorf("invariant TSC = %v, want %v", got, tt.invariant)
			}
			if len(c.flags) != tt.nflags {
				t.Errorf("%d flags, want %d", len(c.flags), tt.nflags)
			}
		})
	}
}

func TestVirtualization(t *testing.T) {
	kvm := parseCPUInfo(fixture(t, "cpuinfo-epyc-kvm.txt"))
	metal := parseCPUInfo(fixture(t, "cpuinfo-xeon-metal.txt"))
	arm := parseCPUInfo(fixture(t, "cpuinfo-arm64.txt"))
	tests := []struct {
		name string
		f    virtFacts
		want string
	}{
		{name: "firecracker", f: virtFacts{cpu: kvm, signature: "KVMKVMKVM\x00\x00\x00",
			cmdline: "console=ttyS0 reboot=k -- --firecracker-init"}, want: "kvm (firecracker)"},
		{name: "qemu dmi", f: virtFacts{cpu: kvm, signature: "KVMKVMKVM\x00\x00\x00",
			dmiVendor: "QEMU\n", dmiProduct: "Standard PC (i440FX + PIIX, 1996)\n"}, want: "kvm (QEMU Standard PC (i440FX + PIIX, 1996))"},
		{name: "ec2", f: virtFacts{cpu: kvm, signature: "KVMKVMKVM\x00\x00\x00",
			dmiVendor: "Amazon EC2", dmiProduct: "c5.large"}, want: "kvm (Amazon EC2 c5.large)"},
		{name: "gce product names vendor", f: virtFacts{cpu: kvm, signature: "KVMKVMKVM\x00\x00\x00",
			dmiVendor: "Google", dmiProduct: "Google Compute Engine"}, want: "kvm (Google Compute Engine)"},
		{name: "hyper-v", f: virtFacts{cpu: kvm, signature: "Microsoft Hv",
			dmiVendor: "Microsoft Corporation", dmiProduct: "Virtual Machine"}, want: "hyper-v (Microsoft Corporation Virtual Machine)"},
		{name: "dmi placeholders", f: virtFacts{cpu: kvm, signature: "VMwareVMware",
			dmiVendor: "To be filled by O.E.M.", dmiProduct: "Default string"}, want: "vmware"},
		{name: "odd signature", f: virtFacts{cpu: kvm, signature: "NewHyperv\x00\x00\x00"}, want: `unknown hypervisor "NewHyperv"`},
		{name: "flag without signature", f: virtFacts{cpu: kvm}, want: "unknown hypervisor"},
		{name: "xen pv", f: virtFacts{cpu: arm, xenType: "xen\n"}, want: "xen"},
		{name: "bare metal", f: virtFacts{cpu: metal, dmiVendor: "Dell Inc.", dmiProduct: "PowerEdge R640"}, want: "none"},
		{name: "arm no clues", f: virtFacts{cpu: arm}, want: "unknown"},
		{name: "arm dmi only", f: virtFacts{cpu: arm, dmiVendor: "Amazon EC2", dmiProduct: "m6g.metal"}, want: "unknown (Amazon EC2 m6g.metal)"},
		{name: "no cpuinfo", f: virtFacts{}, want: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := virtualization(tt.f); got != tt.want {
				t.Fatalf("virtualization() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIdlePolicy(t *testing.T) {
	tests := []struct {
		name                      string
		driver, governor, cmdline string
		want                      string
	}{
		{name: "haltpoll guest", driver: "haltpoll\n", governor: "haltpoll\n",
			cmdline: "console=ttyS0 cpuidle_haltpoll.force=1 haltpoll.guest_halt_poll_ns=0 rdinit=/init -- --idle=x\n",
			want:    "cpuidle driver haltpoll, governor haltpoll; cmdline cpuidle_haltpoll.force=1 haltpoll.guest_halt_poll_ns=0"},
		{name: "intel metal", driver: "intel_idle", governor: "menu", cmdline: "ro quiet",
			want: "cpuidle driver intel_idle, governor menu"},
		{name: "idle poll", cmdline: "ro idle=poll intel_idle.max_cstate=0 processor.max_cstate=1",
			want: "cmdline idle=poll intel_idle.max_cstate=0 processor.max_cstate=1"},
		{name: "governor only", governor: "teo", want: "cpuidle driver unknown, governor teo"},
		{name: "nothing", cmdline: "ro quiet", want: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := idlePolicy(tt.driver, tt.governor, tt.cmdline); got != tt.want {
				t.Fatalf("idlePolicy() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFromFiles(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
		sig  string
		want Info
	}{
		{
			name: "firecracker guest",
			fsys: fstest.MapFS{
				"proc/cpuinfo":                  {Data: []byte(fixture(t, "cpuinfo-epyc-kvm.txt"))},
				"proc/cmdline":                  {Data: []byte("console=ttyS0 cpuidle_haltpoll.force=1 -- --firecracker-init\n")},
				"sys/devices/system/cpu/online": {Data: []byte("0-1\n")},
				"sys/devices/system/cpu/cpuidle/current_driver":   {Data: []byte("haltpoll\n")},
				"sys/devices/system/cpu/cpuidle/current_governor": {Data: []byte("haltpoll\n")},
			},
			sig: "KVMKVMKVM\x00\x00\x00",
			want: Info{CPUModel: "AMD EPYC", CPUs: 2, OnlineCPUs: []int{0, 1}, Kernel: Unknown,
				Virtualization: "kvm (firecracker)", TSCInvariant: true,
				IdlePolicy: "cpuidle driver haltpoll, governor haltpoll; cmdline cpuidle_haltpoll.force=1",
				Hostname:   Unknown},
		},
		{
			name: "bare metal",
			fsys: fstest.MapFS{
				"proc/cpuinfo":                  {Data: []byte(fixture(t, "cpuinfo-xeon-metal.txt"))},
				"sys/devices/system/cpu/online": {Data: []byte("0,2-3\n")},
			},
			want: Info{CPUModel: "Intel(R) Xeon(R) Gold 6138 CPU @ 2.00GHz", CPUs: 3, OnlineCPUs: []int{0, 2, 3},
				Kernel: Unknown, Virtualization: "none", TSCInvariant: true, IdlePolicy: Unknown, Hostname: Unknown},
		},
		{
			name: "nothing readable",
			fsys: fstest.MapFS{},
			want: Info{CPUModel: Unknown, Kernel: Unknown, Virtualization: Unknown, IdlePolicy: Unknown, Hostname: Unknown},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromFiles(tt.fsys, tt.sig)
			if got.CPUModel != tt.want.CPUModel || got.CPUs != tt.want.CPUs || !slices.Equal(got.OnlineCPUs, tt.want.OnlineCPUs) ||
				got.Kernel != tt.want.Kernel || got.Virtualization != tt.want.Virtualization ||
				got.TSCInvariant != tt.want.TSCInvariant || got.IdlePolicy != tt.want.IdlePolicy || got.Hostname != tt.want.Hostname {
				t.Fatalf("fromFiles() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

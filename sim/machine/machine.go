// Package machine describes the machine a measurement ran on: CPU model,
// online CPUs, kernel, virtualisation, time-stamp counter and what idle
// cores do. Every result newtsim records carries an Info beside it.
//
// It also parses the kernel's CPU lists ("0-1,4"), which the rest of
// newtsim uses wherever cores are named.
package machine

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/internal/tsc"
)

// Info is what Detect found out about the machine.
type Info struct {
	// CPUModel is /proc/cpuinfo's "model name".
	CPUModel string `json:"cpu_model"`
	// CPUs counts the online CPUs, whatever this process's affinity.
	CPUs int `json:"cpus"`
	// OnlineCPUs are the online CPUs' ids.
	OnlineCPUs []int `json:"online_cpus"`
	// Kernel is the kernel's release and version, as uname -r and -v.
	Kernel string `json:"kernel"`
	// Virtualization names the hypervisor and platform, such as
	// "kvm (firecracker)"; "none" on bare metal.
	Virtualization string `json:"virtualization"`
	// TSCHz is the time-stamp counter's measured rate; 0 without one.
	TSCHz float64 `json:"tsc_hz"`
	// TSCInvariant reports whether the counter ticks at a constant rate
	// and through idle states (flags constant_tsc and nonstop_tsc).
	TSCInvariant bool `json:"tsc_invariant"`
	// IdlePolicy says what the machine does with idle cores: the cpuidle
	// driver and governor and the idle-related kernel parameters.
	IdlePolicy string `json:"idle_policy"`
	// GoVersion is the Go release the binary was built with.
	GoVersion string `json:"go_version"`
	// Hostname is the machine's host name.
	Hostname string `json:"hostname"`
	// Commit is the newtsim commit the binary was built from (its
	// vcs.revision, "-dirty" after it where the tree had changes); empty
	// for a build without version control information.
	Commit string `json:"commit,omitempty"`
}

// Detect finds out what it can about the machine. It never fails: facts it
// cannot read are "unknown" (or zero). It takes about 200ms, the time it
// spends calibrating the time-stamp counter.
func Detect() Info {
	i := fromFiles(os.DirFS("/"), hypervisorSignature())
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		i.Kernel = strings.TrimSpace(unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Version[:]))
	}
	if h, err := os.Hostname(); err == nil {
		i.Hostname = h
	}
	if tsc.Available() {
		i.TSCHz = tsc.Calibrate(200 * time.Millisecond)
	}
	i.GoVersion = runtime.Version()
	i.Commit = commit()
	return i
}

// commit returns the binary's commit, from its build information.
func commit() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}

// fromFiles gathers the facts that files under fsys (the root of the file
// system) tell, with the hypervisor's CPUID signature. Kernel and Hostname
// are left "unknown".
func fromFiles(fsys fs.FS, signature string) Info {
	read := func(name string) string {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return ""
		}
		return string(b)
	}
	ci := parseCPUInfo(read("proc/cpuinfo"))
	cmdline := read("proc/cmdline")
	i := Info{
		CPUModel: orUnknown(ci.model),
		Kernel:   Unknown,
		Virtualization: virtualization(virtFacts{
			cpu:        ci,
			signature:  signature,
			dmiVendor:  read("sys/class/dmi/id/sys_vendor"),
			dmiProduct: read("sys/class/dmi/id/product_name"),
			xenType:    read("sys/hypervisor/type"),
			cmdline:    cmdline,
		}),
		TSCInvariant: ci.has("constant_tsc") && ci.has("nonstop_tsc"),
		IdlePolicy: idlePolicy(read("sys/devices/system/cpu/cpuidle/current_driver"),
			read("sys/devices/system/cpu/cpuidle/current_governor"), cmdline),
		Hostname: Unknown,
	}
	if cpus, err := cpu.ParseList(read(strings.TrimPrefix(cpu.OnlinePath, "/"))); err == nil {
		i.OnlineCPUs, i.CPUs = cpus, len(cpus)
	}
	return i
}

// String describes the machine in one line, for printing above a table of
// results.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "machine: %s, %d CPUs", orUnknown(i.CPUModel), i.CPUs)
	if len(i.OnlineCPUs) > 0 {
		fmt.Fprintf(&b, " (%s)", cpu.FormatList(i.OnlineCPUs))
	}
	fmt.Fprintf(&b, ", virtualization %s", orUnknown(i.Virtualization))
	release := Unknown
	if f := strings.Fields(i.Kernel); len(f) > 0 {
		release = f[0]
	}
	fmt.Fprintf(&b, ", Linux %s", release)
	if i.TSCHz > 0 {
		fmt.Fprintf(&b, ", TSC %.3f GHz", i.TSCHz/1e9)
		if i.TSCInvariant {
			b.WriteString(" invariant")
		} else {
			b.WriteString(" not invariant")
		}
	} else {
		b.WriteString(", no TSC")
	}
	fmt.Fprintf(&b, ", idle: %s, %s, host %s", orUnknown(i.IdlePolicy), orUnknown(i.GoVersion), orUnknown(i.Hostname))
	if i.Commit != "" {
		fmt.Fprintf(&b, ", newtsim %s", i.Commit)
	}
	return b.String()
}

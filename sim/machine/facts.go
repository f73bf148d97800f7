package machine

import (
	"bufio"
	"slices"
	"strings"
)

// Unknown stands for a fact that could not be read.
const Unknown = "unknown"

// cpuInfo is what Detect takes from /proc/cpuinfo: the first processor's
// entry.
type cpuInfo struct {
	model  string   // "model name"
	vendor string   // "vendor_id"
	flags  []string // "flags" (x86) or "Features" (arm64); nil when absent
}

// has reports whether the flag list contains flag.
func (c cpuInfo) has(flag string) bool { return slices.Contains(c.flags, flag) }

// parseCPUInfo reads the first processor's entry of /proc/cpuinfo.
func parseCPUInfo(text string) cpuInfo {
	var c cpuInfo
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	seen := false
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			if strings.TrimSpace(sc.Text()) == "" && seen {
				break // end of the first processor's entry
			}
			continue
		}
		seen = true
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "model name":
			c.model = val
		case "vendor_id":
			c.vendor = val
		case "flags", "Features":
			c.flags = strings.Fields(val)
			if c.flags == nil {
				c.flags = []string{}
			}
		}
	}
	return c
}

// hypervisors names the hypervisors by their CPUID vendor signatures.
var hypervisors = map[string]string{
	"KVMKVMKVM\x00\x00\x00": "kvm",
	"Linux KVM Hv":          "kvm",
	"Microsoft Hv":          "hyper-v",
	"VMwareVMware":          "vmware",
	"XenVMMXenVMM":          "xen",
	"TCGTCGTCGTCG":          "qemu-tcg",
	"bhyve bhyve ":          "bhyve",
	"ACRNACRNACRN":          "acrn",
	" lrpepyh  vr":          "parallels",
	"VBoxVBoxVBox":          "virtualbox",
	"QNXQVMBSQG":            "qnx",
	"SRESRESRESRE":          "sre",
	"EVMMEVMMEVMM":          "evmm",
	"Jailhouse\x00\x00\x00": "jailhouse",
}

// virtFacts are the clues virtualization weighs.
type virtFacts struct {
	cpu        cpuInfo
	signature  string // CPUID leaf 0x40000000 vendor signature; "" if none
	dmiVendor  string // /sys/class/dmi/id/sys_vendor; "" if unreadable
	dmiProduct string // /sys/class/dmi/id/product_name; "" if unreadable
	xenType    string // /sys/hypervisor/type; "" if unreadable
	cmdline    string // /proc/cmdline
}

// virtualization names the hypervisor the machine runs under, with the
// platform in parentheses where something readable names it: "kvm (QEMU
// Standard PC)", "kvm (firecracker)". It says "none" only when the CPU's
// flags are readable and lack the hypervisor flag, and "unknown" where the
// clues run out.
func virtualization(f virtFacts) string {
	name := hypervisors[f.signature]
	switch {
	case name != "":
	case f.signature != "":
		name = "unknown hypervisor " + quoteSignature(f.signature)
	case f.xenType != "":
		name = strings.TrimSpace(f.xenType)
	case f.cpu.has("hypervisor"):
		name = "unknown hypervisor"
	case f.cpu.flags != nil && f.cpu.vendor != "":
		// x86 lists the hypervisor flag whenever CPUID has it.
		return "none"
	default:
		name = Unknown
	}
	if p := platform(f); p != "" {
		return name + " (" + p + ")"
	}
	return name
}

// platform names the virtual platform: from the DMI vendor and product
// when readable, else "firecracker" when the kernel command line names it
// (Firecracker has no DMI).
func platform(f virtFacts) string {
	vendor, product := dmiClean(f.dmiVendor), dmiClean(f.dmiProduct)
	switch {
	case vendor != "" && product != "" && !strings.Contains(product, vendor):
		return vendor + " " + product
	case product != "":
		return product
	case vendor != "":
		return vendor
	}
	for _, w := range strings.Fields(f.cmdline) {
		if strings.Contains(strings.ToLower(w), "firecracker") {
			return "firecracker"
		}
	}
	return ""
}

// dmiClean trims a DMI string and drops the placeholders firmware leaves.
func dmiClean(s string) string {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "to be filled by o.e.m.", "default string", "system product name",
		"system manufacturer", "not specified", "none":
		return ""
	}
	return s
}

// quoteSignature writes a CPUID signature without its padding NULs.
func quoteSignature(sig string) string {
	return `"` + strings.TrimRight(sig, "\x00") + `"`
}

// idleParams are the kernel command-line parameters that decide what an
// idle core does (halt, poll first, or spin).
var idleParams = []string{"idle", "nohlt"}

// idlePrefixes are the prefixes of the parameters of the idle-related
// kernel modules.
var idlePrefixes = []string{"cpuidle.", "cpuidle_haltpoll.", "haltpoll.", "intel_idle.", "processor."}

// idlePolicy describes what the machine does with idle cores: the cpuidle
// driver and governor, and the idle-related kernel parameters. Any of the
// inputs may be "" when unreadable; "unknown" when all are.
func idlePolicy(driver, governor, cmdline string) string {
	var parts []string
	driver, governor = strings.TrimSpace(driver), strings.TrimSpace(governor)
	if driver != "" || governor != "" {
		parts = append(parts, "cpuidle driver "+orUnknown(driver)+", governor "+orUnknown(governor))
	}
	var params []string
	for _, w := range strings.Fields(cmdline) {
		if w == "--" {
			break // the rest goes to init
		}
		key, _, _ := strings.Cut(w, "=")
		if slices.Contains(idleParams, key) || hasAnyPrefix(key, idlePrefixes) {
			params = append(params, w)
		}
	}
	if len(params) > 0 {
		parts = append(parts, "cmdline "+strings.Join(params, " "))
	}
	if len(parts) == 0 {
		return Unknown
	}
	return strings.Join(parts, "; ")
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func orUnknown(s string) string {
	if s == "" {
		return Unknown
	}
	return s
}

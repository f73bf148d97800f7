package machine

// cpuid executes CPUID for leaf and subleaf.
func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// hypervisorSignature returns the hypervisor's CPUID vendor signature
// (leaf 0x40000000), such as "KVMKVMKVM", or "" when CPUID says no
// hypervisor is present (leaf 1, ECX bit 31).
func hypervisorSignature() string {
	if _, _, ecx, _ := cpuid(1, 0); ecx&(1<<31) == 0 {
		return ""
	}
	_, b, c, d := cpuid(0x40000000, 0)
	var sig [12]byte
	for i, r := range [3]uint32{b, c, d} {
		sig[4*i], sig[4*i+1], sig[4*i+2], sig[4*i+3] = byte(r), byte(r>>8), byte(r>>16), byte(r>>24)
	}
	return string(sig[:])
}

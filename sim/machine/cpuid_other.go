//go:build !amd64

package machine

// hypervisorSignature returns "": there is no CPUID to ask.
func hypervisorSignature() string { return "" }

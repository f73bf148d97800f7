package tsc

// Read returns the time-stamp counter, read with LFENCE; RDTSC.
func Read() uint64

// Available reports whether Read reads a hardware time-stamp counter.
// It does on amd64.
func Available() bool { return true }

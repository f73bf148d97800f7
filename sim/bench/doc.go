// Package bench measures newtsim: round trips over its transports beside the
// bare references they must be judged against, each in separate pinned
// processes, reported as medians over batches with the machine and the core
// plan recorded beside every figure.
//
// It is the launcher side of every benchmark: it starts the topologies and
// the Linux peer processes, waits for their result files, judges and writes
// the reports. What runs inside the measured processes (the benchmark roles
// and `newtsim bench peer`) is package probe.
package bench

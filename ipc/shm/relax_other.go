//go:build !amd64

package shm

import "runtime"

func cpuRelax() { runtime.Gosched() }

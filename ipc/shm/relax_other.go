//go:build !amd64

package shm

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

func cpuRelax() { runtime.Gosched() }

func storeRelease(addr *uint64, v uint64) { (*atomic.Uint64)(unsafe.Pointer(addr)).Store(v) }

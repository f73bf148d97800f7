package shm

// cpuRelax executes PAUSE: it tells the core this is a spin-wait loop, which
// saves power and frees the sibling hyperthread.
//
//go:noescape
func cpuRelax()

// storeRelease stores v at addr with release ordering only: earlier stores
// are visible before it, but unlike atomic.Uint64.Store (XCHG) it is no full
// fence. For words whose readers need no store-load ordering.
//
//go:noescape
func storeRelease(addr *uint64, v uint64)

package shm

// cpuRelax executes PAUSE: it tells the core this is a spin-wait loop, which
// saves power and frees the sibling hyperthread.
//
//go:noescape
func cpuRelax()

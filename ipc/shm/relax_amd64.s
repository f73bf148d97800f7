#include "textflag.h"

// func cpuRelax()
TEXT ·cpuRelax(SB),NOSPLIT,$0-0
	PAUSE
	RET

// func storeRelease(addr *uint64, v uint64)
// A plain MOV: on amd64 every store is a release store. Being a call into
// assembly, it is also a compiler barrier.
TEXT ·storeRelease(SB),NOSPLIT,$0-16
	MOVQ addr+0(FP), AX
	MOVQ v+8(FP), BX
	MOVQ BX, (AX)
	RET

package bench

import (
	"fmt"
	"time"

	"github.com/newtsim/newtsim/kernel"
)

// stackUsage reads what the simulated host's processes in st have been
// accounted, all but the ones named in skip (the sending application,
// alone on its own core).
func stackUsage(st *kernel.Status, skip ...string) []procUsage {
	return readUsage(statusProcs(st, skip...))
}

// setCost gives a bulk row of the simulated host what its stack's core
// spent per MiB moved over all its repetitions (cpu, switches, for bytes
// in all).
func (row *BulkRow) setCost(cpu time.Duration, switches uint64, bytes int64) {
	if bytes <= 0 || cpu <= 0 {
		return
	}
	mib := float64(bytes) / (1 << 20)
	row.StackCPUUSPerMiB = us(cpu) / mib
	row.SwitchesPerMiB = float64(switches) / mib
}

// setBulkFloors gives every bulk row with a cost its switch floor at the
// report's measured hop, and, where message-shm misses its target against
// Linux, a note that sets the floor against the CPU a MiB may take at the
// target on the stack's one core.
func (r *Report) setBulkFloors(target float64) {
	for i := range r.Bulk {
		r.Bulk[i].SwitchFloorUSPerMiB = r.SwitchHop.floorUS(r.Bulk[i].SwitchesPerMiB)
	}
	l, m := bulkRow(r, "linux"), bulkRow(r, "message-shm")
	if l == nil || m == nil || m.SwitchFloorUSPerMiB == nil || l.Mbits <= 0 || m.Mbits >= target*l.Mbits {
		return
	}
	mibPerS := target * l.Mbits * 1e6 / 8 / (1 << 20)
	r.Notes = append(r.Notes, fmt.Sprintf("bulk message-shm: at %.2g of Linux's %.1f Mbit/s, the stack's one core has %.1f us of CPU "+
		"a MiB; its switch floor alone is %.1f us (%.1f switches a MiB x %.1f us of CPU a switch between processes), its CPU a MiB %.1f us",
		target, l.Mbits, 1e6/mibPerS, *m.SwitchFloorUSPerMiB, m.SwitchesPerMiB, r.SwitchHop.PerSwitchNS()/1e3, m.StackCPUUSPerMiB))
}

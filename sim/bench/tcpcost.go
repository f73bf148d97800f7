package bench

import (
	"fmt"
	"slices"
	"time"

	"github.com/newtsim/newtsim/internal/procstat"
	"github.com/newtsim/newtsim/kernel"
)

// stackUsage reads what the simulated host's processes in the state
// directory have been accounted, all but the ones named in skip (the
// sending application, alone on its own core).
func stackUsage(state string, skip ...string) []procUsage {
	st, err := kernel.ReadStatus(state)
	if err != nil {
		return nil
	}
	var us []procUsage
	for _, p := range st.Processes {
		if slices.Contains(skip, p.Name) {
			continue
		}
		u, err := procstat.Read(p.Pid)
		us = append(us, procUsage{namedPID: namedPID{p.Name, p.Pid}, u: u, ok: err == nil})
	}
	return us
}

// usageSince is the CPU time and context switches the processes of after
// were accounted since before, together (usageDeltas).
func usageSince(before, after []procUsage) (cpu time.Duration, switches uint64) {
	for _, p := range usageDeltas(before, after) {
		cpu += p.d.CPU
		switches += p.d.Switches
	}
	return cpu, switches
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
	if r.SwitchHop == nil || r.SwitchHop.PerSwitchNS() <= 0 {
		return
	}
	per := r.SwitchHop.PerSwitchNS() / 1e3
	for i := range r.Bulk {
		row := &r.Bulk[i]
		if row.SwitchesPerMiB <= 0 {
			continue
		}
		v := row.SwitchesPerMiB * per
		row.SwitchFloorUSPerMiB = &v
	}
	l, m := bulkRow(r, "linux"), bulkRow(r, "message-shm")
	if l == nil || m == nil || m.SwitchFloorUSPerMiB == nil || l.Mbits <= 0 || m.Mbits >= target*l.Mbits {
		return
	}
	mibPerS := target * l.Mbits * 1e6 / 8 / (1 << 20)
	r.Notes = append(r.Notes, fmt.Sprintf("bulk message-shm: at %.2g of Linux's %.1f Mbit/s, the stack's one core has %.1f us of CPU "+
		"a MiB; its switch floor alone is %.1f us (%.1f switches a MiB x %.1f us of CPU a switch between processes), its CPU a MiB %.1f us",
		target, l.Mbits, 1e6/mibPerS, *m.SwitchFloorUSPerMiB, m.SwitchesPerMiB, per, m.StackCPUUSPerMiB))
}

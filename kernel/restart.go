package kernel

import "time"

// The restart policy, as MINIX's reincarnation server has it: a server
// that dies after running a while is started again at once; one that dies
// within QuickDeath of its start waits Core.RestartDelay, and each further
// quick death doubles the wait, up to MaxRestartDelay, so a server that
// cannot start does not spin. A run of QuickDeath or more makes the next
// restart immediate again. While the kernel stops, nothing is restarted.
const (
	// DefaultRestartDelay is Core.RestartDelay unless set otherwise: the
	// wait after the first quick death, and before retrying a failed start.
	DefaultRestartDelay = 50 * time.Millisecond
	// MaxRestartDelay bounds the delay before a restart.
	MaxRestartDelay = 5 * time.Second
	// QuickDeath is how soon after its start a server must die for its
	// next restart to wait twice as long.
	QuickDeath = time.Second
)

// restart is the restart policy's state for one slot.
type restart struct {
	started time.Time     // when its current incarnation was started
	count   int           // restarts scheduled after it died
	delay   time.Duration // the delay before its last restart; 0: at once
	due     time.Time     // when to start it again; zero: not scheduled
}

// retryDelay returns the delay before retrying r's failed start: its last
// delay, and RestartDelay after an immediate restart.
func (k *Core) retryDelay(r *restart) time.Duration {
	if r.delay == 0 {
		return k.RestartDelay
	}
	return r.delay
}

// Launched records that slot's process was started at now: how soon it dies
// after now decides the delay before its next restart.
func (k *Core) Launched(slot int, now time.Time) {
	r := &k.restarts[slot]
	r.started, r.due = now, time.Time{}
}

// Exited records that slot's process is gone at now, as Died does, and
// schedules its restart. It returns the delay before the restart, and false
// when there is none because the kernel is stopping.
func (k *Core) Exited(slot int, now time.Time) (time.Duration, bool) {
	k.Died(slot)
	if k.stopping {
		return 0, false
	}
	r := &k.restarts[slot]
	switch {
	case now.Sub(r.started) >= QuickDeath:
		r.delay = 0
	case r.delay == 0:
		r.delay = k.RestartDelay
	default:
		r.delay = min(2*r.delay, MaxRestartDelay)
	}
	r.count++
	r.due = now.Add(r.delay)
	return r.delay, true
}

// Retry schedules slot's start again after its current delay, for a start
// that failed at now.
func (k *Core) Retry(slot int, now time.Time) {
	if !k.stopping {
		r := &k.restarts[slot]
		r.due = now.Add(k.retryDelay(r))
	}
}

// Due returns the slots whose restart is due at now, in slot order, and
// takes them off the schedule: the caller starts them.
func (k *Core) Due(now time.Time) []int {
	var slots []int
	for s := range k.restarts {
		r := &k.restarts[s]
		if !r.due.IsZero() && !now.Before(r.due) {
			r.due = time.Time{}
			slots = append(slots, s)
		}
	}
	return slots
}

// NextRestart returns when the earliest scheduled restart is due, and false
// if none is scheduled.
func (k *Core) NextRestart() (time.Time, bool) {
	var next time.Time
	for _, r := range k.restarts {
		if !r.due.IsZero() && (next.IsZero() || r.due.Before(next)) {
			next = r.due
		}
	}
	return next, !next.IsZero()
}

// Restarts returns how many times slot's process has been scheduled to
// start again after it died.
func (k *Core) Restarts(slot int) int { return k.restarts[slot].count }

// Stop stops restarting: scheduled restarts are dropped and processes that
// exit from now on stay dead.
func (k *Core) Stop() {
	k.stopping = true
	for s := range k.restarts {
		k.restarts[s].due = time.Time{}
	}
}

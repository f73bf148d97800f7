//go:build !amd64

package tsc

import "time"

// start is the instant the fallback counter counts from.
var start = time.Now()

// Read returns nanoseconds since the package was initialised: there is no
// time-stamp counter to read on this architecture.
func Read() uint64 { return uint64(time.Since(start)) }

// Available reports whether Read reads a hardware time-stamp counter. It
// does not on this architecture.
func Available() bool { return false }

package loadgen

import (
	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/ipc"
)

// The client's side of a request's breakdown (docs/LATENCY.md): with
// Config.TracePeer set and the process's recorder on, the run records
//
//   - a put to the nic when a request's first byte is written, stamped
//     before the write (the nic may read the frame before the write
//     returns), named by the connection's local port, as the nic names
//     the segment it reads from its TAP device;
//   - a take from the nic when a response has been read in full, stamped
//     where the latency is (Report.Latency ends there);
//   - a sleep and a wake-up around each Poll, so that a response that came
//     while the client slept is split into the client's wake-up and its
//     own time before reading it.
//
// The recorder's process slot is trace.Outside. Off, each hook is a test
// of a bool of the runner.

// traceOn reports whether the run stamps.
func traceOn(c Config) bool { return c.TracePeer > 0 && trace.On() }

// tracePort is c's local port, which names its requests and responses.
func (r *runner) tracePort(c *conn) {
	if a, err := r.api.LocalAddr(c.fd); err == nil {
		c.port = a.Port()
	}
}

// traceSent records a request of c sent: its put, stamped at.
func (r *runner) traceSent(c *conn, at uint64) {
	trace.RecordAt(at, trace.Put, uint16(ipc.FrameRx), trace.Outside, r.cfg.TracePeer, uint32(c.port))
}

// traceDone records a response of c read in full: its take.
func (r *runner) traceDone(c *conn) {
	trace.Record(trace.Take, uint16(ipc.FrameTx), r.cfg.TracePeer, trace.Outside, uint32(c.port))
}

// traceSleep records the client going to sleep in Poll (wake false) or
// returning from it.
func traceSleep(wake bool) {
	k := trace.Sleep
	if wake {
		k = trace.Wake
	}
	trace.Record(k, 0, 0, trace.Outside, 0)
}

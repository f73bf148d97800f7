// Package loadgen is an HTTP/1.1 load generator in the manner of wrk and
// h2load, written against the socket library so that the same load runs on
// every backend. It keeps a number of connections open to one server and
// sends GET requests on them, one at a time or pipelined, for a number of
// requests or for a time, and reports throughput, a latency histogram and
// errors by kind.
//
// A run is one goroutine: an event loop over the backend's Poll with
// non-blocking sockets, as a C program on NewtOS would be, since a backend's
// calls are not safe for concurrent use.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/internal/trace"
)

// Config says what load to generate.
type Config struct {
	// API is the socket library to call. Required.
	API socket.API
	// Target is the server's IPv4 address and port. Required.
	Target netip.AddrPort
	// Host is the Host header; empty means Target written out.
	Host string
	// Path is the path to request; empty means "/".
	Path string
	// Paths, when not empty, are requested in turn in place of Path.
	Paths []string

	// Requests is how many requests to make in all; the run ends when
	// every one has completed or failed. A failed request is not tried
	// again; one is sent again only where the server closed the connection
	// before it (Connection: close) without answering it.
	// Exactly one of Requests and Duration is set.
	Requests int
	// Duration is how long to run; requests still in flight at the end
	// are neither completed nor failed.
	Duration time.Duration

	// Connections is how many connections are open at once; zero means 1.
	// A connection that closes or fails is replaced while there is work.
	Connections int
	// RequestsPerConn is how many requests a connection makes before it is
	// closed and replaced: 1 opens a connection per request, 0 keeps a
	// connection for the whole run.
	RequestsPerConn int
	// Pipeline is how many requests a connection has in flight at once;
	// zero means 1, each request sent when the response before it is read.
	Pipeline int
	// Timeout fails a request not answered within it of its first byte
	// written, and a connect not made within it, as a timeout; the
	// connection is closed (failing every request in flight on it) and
	// replaced. Zero means no timeout.
	Timeout time.Duration

	// Clock tells the time, for latencies and the duration; nil means
	// time.Now.
	Clock func() time.Time
	// Progress, where it is a terminal, gets a progress bar, redrawn at most
	// ten times a second; nil or anything else gets nothing.
	Progress io.Writer

	// TracePeer, where the process's trace recorder (internal/trace) is
	// on, is the endpoint slot of the simulated host's nic: the run then
	// stamps each request as a message to it, each response as one from
	// it, and each Poll's sleep (trace.go). Zero: no stamps.
	TracePeer int
}

// maxPipeline bounds Config.Pipeline, to keep a connection's requests in
// flight within one writev(2).
const maxPipeline = 1024

// check validates c and fills in its defaults.
func (c Config) check() (Config, error) {
	switch {
	case c.API == nil:
		return c, errors.New("loadgen: no socket API")
	case !c.Target.IsValid() || c.Target.Port() == 0:
		return c, fmt.Errorf("loadgen: invalid target %v", c.Target)
	case (c.Requests > 0) == (c.Duration > 0):
		return c, errors.New("loadgen: exactly one of Requests and Duration must be set")
	case c.Requests < 0 || c.Duration < 0:
		return c, errors.New("loadgen: negative Requests or Duration")
	case c.Connections < 0 || c.RequestsPerConn < 0 || c.Timeout < 0:
		return c, errors.New("loadgen: negative Connections, RequestsPerConn or Timeout")
	case c.Pipeline < 0 || c.Pipeline > maxPipeline:
		return c, fmt.Errorf("loadgen: Pipeline %d out of range [0, %d]", c.Pipeline, maxPipeline)
	case c.TracePeer < 0 || c.TracePeer >= trace.Outside:
		return c, fmt.Errorf("loadgen: TracePeer %d out of range [0, %d)", c.TracePeer, trace.Outside)
	case c.Path != "" && len(c.Paths) > 0:
		return c, errors.New("loadgen: both Path and Paths set")
	}
	if c.Connections == 0 {
		c.Connections = 1
	}
	if c.Pipeline == 0 {
		c.Pipeline = 1
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Host == "" {
		c.Host = c.Target.String()
	}
	if len(c.Paths) == 0 {
		c.Paths = []string{c.Path}
		if c.Path == "" {
			c.Paths = []string{"/"}
		}
	}
	return c, nil
}

// Run generates the load c describes and reports on it. It returns an error
// where the configuration is invalid, where ctx ends first (with the report
// so far), or where a call fails in a way no server could cause, such as
// running out of descriptors; a failure of the server or of the connection
// to it is counted in the report instead.
func Run(ctx context.Context, c Config) (Report, error) {
	c, err := c.check()
	if err != nil {
		return Report{}, err
	}
	reqs := make([][]byte, len(c.Paths))
	for i, p := range c.Paths {
		if reqs[i], err = buildRequest(c.Host, p); err != nil {
			return Report{}, err
		}
	}
	r := newRunner(c, reqs)
	err = r.run(ctx)
	r.closeAll()
	end := r.now()
	r.progress.finish(end, r.completed, r.failed)
	return r.report(end), err
}

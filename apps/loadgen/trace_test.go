package loadgen

import (
	"net/http"
	"testing"
	"time"

	"github.com/newtsim/newtsim/internal/trace"
)

// TestTraceStamps checks the client's stamps for a breakdown: a put to the
// nic per request and a take from it per response, each named by its
// connection's local port, in order on each connection, and sleeps paired
// with wake-ups; none while the recorder is off.
func TestTraceStamps(t *testing.T) {
	const peer, requests = 7, 40
	srv := newHTTPServer(t, http.StatusOK, nil)
	c := Config{Target: srv.addr, Requests: requests, Connections: 2, RequestsPerConn: 5, Timeout: 5 * time.Second, TracePeer: peer}

	before := trace.Copy().Recorded
	run(t, c)
	if got := trace.Copy().Recorded; got != before {
		t.Fatalf("the recorder is off, yet the run recorded %d events", got-before)
	}

	trace.Enable("client", "loadgen", trace.Outside)
	t.Cleanup(trace.Disable)
	before = trace.Copy().Recorded
	rep := run(t, c)
	s := trace.Copy()
	events := s.Events[len(s.Events)-int(s.Recorded-before):]
	if rep.Requests != requests {
		t.Fatalf("%d requests completed, want %d", rep.Requests, requests)
	}
	sent := map[uint32]int{} // requests in flight, by port
	var puts, takes int
	asleep := false
	for i, e := range events {
		switch e.Kind {
		case trace.Put:
			if e.Src != trace.Outside || e.Dst != peer || e.ID == 0 || e.ID > 65535 {
				t.Fatalf("event %d: put %+v, want from outside to %d, named by a port", i, e, peer)
			}
			sent[e.ID]++
			puts++
		case trace.Take:
			if e.Src != peer || e.Dst != trace.Outside {
				t.Fatalf("event %d: take %+v, want from %d to outside", i, e, peer)
			}
			if sent[e.ID] != 1 {
				t.Fatalf("event %d: a response on port %d with %d requests stamped in flight, want 1", i, e.ID, sent[e.ID])
			}
			sent[e.ID]--
			takes++
		case trace.Sleep, trace.Wake:
			if asleep != (e.Kind == trace.Wake) {
				t.Fatalf("event %d: %v while asleep=%v", i, e.Kind, asleep)
			}
			asleep = e.Kind == trace.Sleep
		default:
			t.Fatalf("event %d: unexpected %v", i, e.Kind)
		}
	}
	if puts != requests || takes != requests || len(sent) != requests/c.RequestsPerConn {
		t.Errorf("%d puts and %d takes on %d ports; want %d, %d on %d", puts, takes, len(sent), requests, requests, requests/c.RequestsPerConn)
	}
}

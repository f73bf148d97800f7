package httpd

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The steps that bring a test client to where a test wants it.
const (
	// partialRequest is a request header begun, not ended.
	partialRequest = "GET /hello.txt HTTP/1.1\r\nHo"
	// requestRest ends partialRequest.
	requestRest = "st: h\r\n\r\n"
	// helloRequest is a whole request.
	helloRequest = "GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n"
)

// advanceTo moves the server's clock to d after start.
func (ts *testServer) advanceTo(d time.Duration) {
	ts.clock.Advance(start.Add(d).Sub(ts.clock.Now()))
}

// still waits a few rounds of the event loop, for a test to see that
// nothing happened in them.
func still() { time.Sleep(3 * pollInterval) }

// sendPart sends part of a request and waits for the server to take it.
func (ts *testServer) sendPart(t *testing.T, c net.Conn, s string) {
	t.Helper()
	in := ts.Stats().BytesIn
	write(t, c, s)
	ts.waitFor(t, "the bytes sent", func(st Stats) bool { return st.BytesIn == in+uint64(len(s)) })
}

// isOK reads a response to helloRequest and checks it is a 200.
func isOK(t *testing.T, c net.Conn, who string) {
	t.Helper()
	if got := readN(t, c, len(helloResponse)); !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") {
		t.Fatalf("%s got %q, want a 200", who, got)
	}
}

func TestShed(t *testing.T) {
	// A client is brought, one second after the one before, to a state:
	// it has sent part of a request (partial), nothing (empty), a whole
	// request and read the response (served: idle between requests), or
	// requests whose responses it leaves unread (answering). more sends an
	// earlier client some more of its partial request, done the rest of
	// it.
	type step struct {
		do     string
		client int // for more and done
	}
	partial, empty, served, answering := step{do: "partial"}, step{do: "empty"}, step{do: "served"}, step{do: "answering"}
	more := func(i int) step { return step{"more", i} }
	done := func(i int) step { return step{"done", i} }
	tests := []struct {
		name     string
		maxConns int
		steps    []step
		// shed is the client shed for a new one, or -1 for none; refused
		// tells the new one is refused.
		shed    int
		refused bool
	}{
		{name: "limit full of partial requests", maxConns: 3,
			steps: []step{partial, partial, partial}, shed: 0},
		{name: "idle longest, not oldest", maxConns: 3,
			steps: []step{partial, partial, partial, more(0)}, shed: 1},
		{name: "a connection yet to send", maxConns: 3,
			steps: []step{partial, empty, partial, more(0)}, shed: 1},
		{name: "served client kept though idle longest", maxConns: 3,
			steps: []step{served, partial, partial}, shed: 1},
		{name: "client that completes its request kept", maxConns: 3,
			steps: []step{partial, partial, partial, done(0)}, shed: 1},
		{name: "client being answered kept", maxConns: 3,
			steps: []step{answering, partial, served}, shed: 1},
		{name: "none unfinished: refused", maxConns: 3,
			steps: []step{served, answering, served}, shed: -1, refused: true},
		{name: "below the limit", maxConns: 4,
			steps: []step{partial, partial, partial}, shed: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(c *Config) {
				c.MaxConns = tt.maxConns
				c.SendBuffer = 64 << 10 // so that answering blocks
			})
			var clients []net.Conn
			for i, st := range tt.steps {
				ts.advanceTo(time.Duration(i) * time.Second)
				switch st.do {
				case "more":
					ts.sendPart(t, clients[st.client], "st")
					continue
				case "done":
					write(t, clients[st.client], requestRest)
					isOK(t, clients[st.client], "the client that completed its request")
					continue
				}
				c := ts.dial(t)
				accepted := uint64(len(clients) + 1)
				ts.waitFor(t, "the accept", func(st Stats) bool { return st.Accepted == accepted })
				switch st.do {
				case "partial":
					ts.sendPart(t, c, partialRequest)
				case "served":
					write(t, c, helloRequest)
					isOK(t, c, "a served client")
				case "answering":
					blocked := ts.Stats().WouldBlock
					write(t, c, strings.Repeat("GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n", 3))
					ts.waitFor(t, "the write to block", func(st Stats) bool { return st.WouldBlock > blocked })
				}
				clients = append(clients, c)
			}

			c := ts.dial(t)
			if tt.refused {
				if got := readAll(t, c); got != "" {
					t.Fatalf("the new client got %q, want it refused", got)
				}
				ts.waitFor(t, "the refusal", func(st Stats) bool { return st.Refused == 1 })
			} else {
				write(t, c, helloRequest)
				isOK(t, c, "the new client")
			}
			if tt.shed >= 0 {
				if got := readAll(t, clients[tt.shed]); got != "" {
					t.Errorf("the client shed got %q, want a silent close", got)
				}
			}
			wantShed, wantOpen := uint64(0), len(clients)+1
			if tt.shed >= 0 {
				wantShed, wantOpen = 1, len(clients)
			}
			if tt.refused {
				wantOpen = len(clients)
			}
			still()
			if st := ts.Stats(); st.Shed != wantShed || st.Open != int64(wantOpen) || st.Timeouts != 0 ||
				st.Refused != uint64(btoi(tt.refused)) {
				t.Errorf("stats %+v, want %d shed, %d open, no timeouts", st, wantShed, wantOpen)
			}
			if wantShed > 0 && !strings.Contains(ts.log.String(),
				"at the limit of 3 connections: shedding the unfinished requests idle longest (1 shed so far)") {
				t.Errorf("log:\n%s", ts.log)
			}
			metric := fmt.Sprintf(`# HELP newtsim_httpd_dropped_requests_total %s
# TYPE newtsim_httpd_dropped_requests_total counter
newtsim_httpd_dropped_requests_total{reason="shed"} %d
newtsim_httpd_dropped_requests_total{reason="slow"} 0
`, droppedHelp, wantShed)
			if err := testutil.CollectAndCompare(&statsCollector{srv: ts.Server}, strings.NewReader(metric),
				"newtsim_httpd_dropped_requests_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestPressureTimeout(t *testing.T) {
	// A partial request waits among others, served and idle, and is
	// checked a while after its first byte: open under the header timeout,
	// 408 past it. The others close at closeAt, if not zero, and pressure
	// ends.
	tests := []struct {
		name    string
		others  int
		closeAt time.Duration
		// open is when the request is still waited for; timeout when it
		// is answered 408.
		open, timeout time.Duration
	}{
		{name: "below the high-water mark", others: 1, open: 9 * time.Second, timeout: 10 * time.Second},
		{name: "at the high-water mark", others: 2, open: 1900 * time.Millisecond, timeout: 2 * time.Second},
		{name: "above it", others: 3, open: 1900 * time.Millisecond, timeout: 2 * time.Second},
		{name: "pressure ends", others: 3, closeAt: time.Second, open: 9 * time.Second, timeout: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(c *Config) {
				c.MaxConns = 10
				c.PressureConns = 3
				c.PressureTimeout = 2 * time.Second
				c.IdleTimeout = time.Minute
				c.MinHeaderRate = -1
			})
			var others []net.Conn
			for range tt.others {
				c := ts.dial(t)
				write(t, c, helloRequest)
				isOK(t, c, "another client")
				others = append(others, c)
			}
			c := ts.dial(t)
			ts.sendPart(t, c, partialRequest)
			if tt.closeAt > 0 {
				ts.advanceTo(tt.closeAt)
				for _, o := range others {
					o.Close()
				}
				ts.waitFor(t, "the others' close", func(st Stats) bool { return st.Open == 1 })
			}
			ts.advanceTo(tt.open)
			still()
			if st := ts.Stats(); st.Timeouts != 0 {
				t.Fatalf("timed out before %v: stats %+v", tt.open, st)
			}
			ts.advanceTo(tt.timeout)
			if got := readAll(t, c); !strings.HasPrefix(got, "HTTP/1.1 408 Request Timeout\r\n") {
				t.Errorf("response %q, want 408", got)
			}
			if st := ts.Stats(); st.Timeouts != 1 || st.Slow != 0 || st.Shed != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestMinHeaderRate(t *testing.T) {
	// A client sends parts of a request at times after its first byte; at
	// each, the test checks the request is still waited for (or, at its
	// end, answered). With a grace of 5 s and 10 bytes a second, a
	// request of n bytes has 5 s + n/10 s.
	type part struct {
		at   time.Duration
		send string
	}
	tests := []struct {
		name    string
		minRate int
		parts   []part
		// end is when the request is answered: 408, or 200 if the parts
		// make it whole.
		end        time.Duration
		want, slow string
	}{{
		name:  "trickling",
		parts: []part{{0, partialRequest[:20]}, {6900 * time.Millisecond, ""}},
		end:   7 * time.Second, want: "HTTP/1.1 408 Request Timeout\r\n", slow: "slow",
	}, {
		name: "trickling, more",
		parts: []part{{0, partialRequest[:20]}, {6 * time.Second, partialRequest[20:] + "st: h\r\nX: "},
			{8 * time.Second, strings.Repeat("x", 9)}, {9500 * time.Millisecond, ""}},
		// 20 + 17 + 9 bytes: 9.6 s.
		end: 9600 * time.Millisecond, want: "HTTP/1.1 408 Request Timeout\r\n", slow: "slow",
	}, {
		name:  "keeping the rate",
		parts: []part{{0, partialRequest[:20]}, {6 * time.Second, partialRequest[20:] + "st: h\r\nX: " + strings.Repeat("x", 40)}},
		// 20 + 57 bytes: 12.7 s.
		end: 12 * time.Second, want: "HTTP/1.1 200 OK\r\n",
	}, {
		name:  "a long header stalls",
		parts: []part{{0, partialRequest + "st: h\r\nX: " + strings.Repeat("x", 263)}, {34900 * time.Millisecond, ""}},
		// 300 bytes: 35 s.
		end: 35 * time.Second, want: "HTTP/1.1 408 Request Timeout\r\n", slow: "slow",
	}, {
		name:    "no minimum",
		minRate: -1,
		parts:   []part{{0, partialRequest[:20]}, {59 * time.Second, ""}},
		end:     60 * time.Second, want: "HTTP/1.1 408 Request Timeout\r\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(c *Config) {
				c.Timeout = time.Minute
				c.HeaderGrace = 5 * time.Second
				c.MinHeaderRate = 10
				if tt.minRate != 0 {
					c.MinHeaderRate = tt.minRate
				}
			})
			c := ts.dial(t)
			for _, p := range tt.parts {
				ts.advanceTo(p.at)
				if p.send != "" {
					ts.sendPart(t, c, p.send)
				}
				still()
				if st := ts.Stats(); st.Timeouts != 0 {
					t.Fatalf("timed out at %v: stats %+v", p.at, st)
				}
			}
			ts.advanceTo(tt.end)
			if strings.Contains(tt.want, "200") {
				write(t, c, "\r\n\r\n")
				isOK(t, c, "the client keeping the rate")
				return
			}
			if got := readAll(t, c); !strings.HasPrefix(got, tt.want) {
				t.Errorf("response %q, want %q", got, tt.want)
			}
			if st := ts.Stats(); st.Timeouts != 1 || st.Slow != uint64(btoi(tt.slow != "")) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

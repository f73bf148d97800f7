package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/newtsim/newtsim/apps/socket"
)

const body = "hello, world\n"

// httpServer is a net/http server on 127.0.0.1 that answers every request
// with status and body, counting the connections it accepts and the paths
// it is asked for.
type httpServer struct {
	addr  netip.AddrPort
	conns atomic.Int64
	mu    sync.Mutex
	paths map[string]int
}

func newHTTPServer(t *testing.T, status int, header http.Header) *httpServer {
	t.Helper()
	s := &httpServer{paths: map[string]int{}}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.mu.Lock()
		s.paths[req.URL.Path]++
		s.mu.Unlock()
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	s.addr = netip.MustParseAddrPort(ts.Listener.Addr().String())
	return s
}

// rawServer is a TCP listener on 127.0.0.1 that gives every connection it
// accepts to serve, to misbehave as a test needs.
func rawServer(t *testing.T, serve func(net.Conn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				context.AfterFunc(doneContext(done), func() { c.Close() })
				serve(c)
			})
		}
	})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// doneContext is a context that ends when done is closed.
func doneContext(done <-chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-done
		cancel()
	}()
	return ctx
}

// readRequest reads one request head from br; it fails where the
// connection ends first.
func readRequest(br *bufio.Reader) error {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "\r\n" {
			return nil
		}
	}
}

// answer returns a server that reads each request and writes resp to it;
// with closeAfter it then closes the connection.
func answer(resp string, closeAfter bool) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for readRequest(br) == nil {
			if _, err := io.WriteString(c, resp); err != nil || closeAfter {
				return
			}
		}
	}
}

// closedPort returns a port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return a
}

// run runs c on the linux backend, failing the test where Run fails or
// takes too long.
func run(t *testing.T, c Config) Report {
	t.Helper()
	api, err := socket.Open(socket.Config{Backend: "linux"})
	if err != nil {
		t.Fatal(err)
	}
	c.API = api
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	rep, err := Run(ctx, c)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

func TestCounts(t *testing.T) {
	tests := []struct {
		name                               string
		requests, conns, perConn, pipeline int
		wantConns                          int64
	}{
		{"connection per request", 1000, 8, 1, 1, 1000},
		{"ten per connection", 1000, 8, 10, 1, 100},
		{"keep-alive", 1000, 8, 0, 1, 8},
		{"pipelined keep-alive", 1000, 4, 0, 8, 4},
		{"pipelined ten per connection", 1000, 8, 10, 4, 100},
		{"pipeline deeper than per connection", 100, 2, 3, 8, 34},
		{"fewer requests than connections", 5, 8, 0, 1, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newHTTPServer(t, http.StatusOK, nil)
			rep := run(t, Config{
				Target:          srv.addr,
				Requests:        tt.requests,
				Connections:     tt.conns,
				RequestsPerConn: tt.perConn,
				Pipeline:        tt.pipeline,
				Timeout:         5 * time.Second,
			})
			if rep.Requests != int64(tt.requests) || rep.Connections != tt.wantConns || srv.conns.Load() != tt.wantConns {
				t.Errorf("%d requests, %d connections (server saw %d); want %d, %d",
					rep.Requests, rep.Connections, srv.conns.Load(), tt.requests, tt.wantConns)
			}
			if rep.Errors != (Errors{}) || rep.StatusCodes[200] != int64(tt.requests) {
				t.Errorf("errors %+v, status codes %v; want none and %d 200s", rep.Errors, rep.StatusCodes, tt.requests)
			}
			if rep.Histogram.Count() != int64(tt.requests) || rep.Latency.Max <= 0 || rep.Latency.P50 > rep.Latency.P99 {
				t.Errorf("latency %+v of %d requests", rep.Latency, rep.Histogram.Count())
			}
			if rep.BytesRead < int64(tt.requests*len(body)) || rep.RequestsPerSec <= 0 || rep.BytesPerSec <= 0 {
				t.Errorf("%d bytes read, %.0f req/s, %.0f B/s", rep.BytesRead, rep.RequestsPerSec, rep.BytesPerSec)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	srv := newHTTPServer(t, http.StatusOK, nil)
	rep := run(t, Config{Target: srv.addr, Paths: []string{"/a", "/b", "/c"}, Requests: 30, Connections: 3, Host: "example.test"})
	if rep.Requests != 30 {
		t.Fatalf("%d requests, want 30", rep.Requests)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if want := map[string]int{"/a": 10, "/b": 10, "/c": 10}; !maps.Equal(srv.paths, want) {
		t.Errorf("server saw %v; want %v", srv.paths, want)
	}
}

// TestMisbehavingServers checks the kind of error each misbehaviour gives,
// and the counts around it.
func TestMisbehavingServers(t *testing.T) {
	const (
		okResp     = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		closeResp  = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello"
		http10Resp = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
		earlyHints = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
	)
	tests := []struct {
		name      string
		serve     func(net.Conn) // nil: nothing listens
		conns     int
		timeout   time.Duration // zero: 5s
		requests  int64         // completed
		wantErrs  Errors
		wantConns int64
		bytesRead int64 // where not zero, exactly
	}{
		{name: "refuses", serve: nil, wantErrs: Errors{Refused: 5}},
		{name: "closes early", serve: func(c net.Conn) { readRequest(bufio.NewReader(c)) },
			wantErrs: Errors{EOF: 5}, wantConns: 5},
		{name: "sends garbage", serve: answer("SSH-2.0-OpenSSH_9.6\r\n", false),
			wantErrs: Errors{Protocol: 5}, wantConns: 5},
		{name: "resets", serve: func(c net.Conn) {
			readRequest(bufio.NewReader(c))
			c.(*net.TCPConn).SetLinger(0)
		}, wantErrs: Errors{Reset: 5}, wantConns: 5},
		{name: "never answers", serve: func(c net.Conn) { io.Copy(io.Discard, c) },
			conns: 5, timeout: 100 * time.Millisecond, wantErrs: Errors{Timeout: 5}, wantConns: 5},
		{name: "truncates the body", serve: answer("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", true),
			wantErrs: Errors{EOF: 5}, wantConns: 5},
		{name: "no length on keep-alive", serve: answer("HTTP/1.1 200 OK\r\n\r\nok", false),
			wantErrs: Errors{Protocol: 5}, wantConns: 5},
		{name: "chunked", serve: answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false),
			wantErrs: Errors{Protocol: 5}, wantConns: 5},
		{name: "body to the close", serve: answer(closeResp, true),
			requests: 5, wantConns: 5, bytesRead: 5 * int64(len(closeResp))},
		{name: "HTTP/1.0 closes", serve: answer(http10Resp, true),
			requests: 5, wantConns: 5, bytesRead: 5 * int64(len(http10Resp))},
		{name: "interim response first", serve: answer(earlyHints+okResp, false),
			requests: 5, wantConns: 1, bytesRead: 5 * int64(len(earlyHints+okResp))},
		{name: "server error", serve: answer("HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", false),
			requests: 5, wantErrs: Errors{Status: 5}, wantConns: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var target netip.AddrPort
			if tt.serve == nil {
				target = closedPort(t)
			} else {
				target = rawServer(t, tt.serve)
			}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			rep := run(t, Config{Target: target, Requests: 5, Connections: max(tt.conns, 1), Timeout: timeout})
			if rep.Requests != tt.requests || rep.Errors != tt.wantErrs || rep.Connections != tt.wantConns {
				t.Errorf("%d requests, errors %+v, %d connections; want %d, %+v, %d",
					rep.Requests, rep.Errors, rep.Connections, tt.requests, tt.wantErrs, tt.wantConns)
			}
			if rep.Requests+rep.Errors.Failed() != 5 {
				t.Errorf("%d completed and %d failed of 5 requests", rep.Requests, rep.Errors.Failed())
			}
			if tt.bytesRead != 0 && rep.BytesRead != tt.bytesRead {
				t.Errorf("%d bytes read, want %d", rep.BytesRead, tt.bytesRead)
			}
		})
	}
}

// TestPipelining runs against a server that answers only once it has depth
// requests in hand, so a generator that does not pipeline times out.
func TestPipelining(t *testing.T) {
	const depth = 4
	batch := func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			for range depth {
				if readRequest(br) != nil {
					return
				}
			}
			for range depth {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		}
	}
	tests := []struct {
		pipeline  int
		requests  int
		timeout   time.Duration
		completed int64
		errs      Errors
		conns     int64
	}{
		{pipeline: depth, requests: 16, timeout: 5 * time.Second, completed: 16, conns: 1},
		{pipeline: 2 * depth, requests: 16, timeout: 5 * time.Second, completed: 16, conns: 1},
		// Each request times out alone, on a connection of its own.
		{pipeline: 1, requests: 2, timeout: 100 * time.Millisecond, errs: Errors{Timeout: 2}, conns: 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("depth ", tt.pipeline), func(t *testing.T) {
			rep := run(t, Config{Target: rawServer(t, batch), Requests: tt.requests, Pipeline: tt.pipeline, Timeout: tt.timeout})
			if rep.Requests != tt.completed || rep.Errors != tt.errs || rep.Connections != tt.conns {
				t.Errorf("%d requests, errors %+v, %d connections; want %d, %+v, %d",
					rep.Requests, rep.Errors, rep.Connections, tt.completed, tt.errs, tt.conns)
			}
		})
	}
}

// TestConnectionClose checks that requests pipelined behind a response with
// Connection: close, which the server never reads, are sent again on
// another connection.
func TestConnectionClose(t *testing.T) {
	srv := newHTTPServer(t, http.StatusOK, http.Header{"Connection": {"close"}})
	rep := run(t, Config{Target: srv.addr, Requests: 100, Connections: 2, Pipeline: 4})
	if rep.Requests != 100 || rep.Connections != 100 || rep.Errors != (Errors{}) {
		t.Errorf("%d requests on %d connections, errors %+v; want 100 on 100 and none", rep.Requests, rep.Connections, rep.Errors)
	}
}

func TestDuration(t *testing.T) {
	srv := newHTTPServer(t, http.StatusOK, nil)
	const d = 300 * time.Millisecond
	start := time.Now()
	rep := run(t, Config{Target: srv.addr, Duration: d, Connections: 4, Pipeline: 2})
	wall := time.Since(start)
	if rep.Duration < d || rep.Duration > d+200*time.Millisecond || wall > d+time.Second {
		t.Errorf("ran %v (%v by the wall clock) for a duration of %v", rep.Duration, wall, d)
	}
	if rep.Requests == 0 || rep.Errors != (Errors{}) || rep.Connections != 4 {
		t.Errorf("%d requests, errors %+v, %d connections", rep.Requests, rep.Errors, rep.Connections)
	}
}

func TestClock(t *testing.T) {
	srv := newHTTPServer(t, http.StatusOK, nil)
	frozen := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rep := run(t, Config{Target: srv.addr, Requests: 50, Connections: 2, Clock: func() time.Time { return frozen }})
	if rep.Requests != 50 || rep.Duration != 0 || rep.Latency.Max != 0 || rep.RequestsPerSec != 0 {
		t.Errorf("with a stopped clock: %d requests in %v, max latency %v, %.0f req/s; want 50 in 0s, 0, 0",
			rep.Requests, rep.Duration, rep.Latency.Max, rep.RequestsPerSec)
	}
}

func TestCancel(t *testing.T) {
	srv := newHTTPServer(t, http.StatusOK, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Config{API: socket.Linux{}, Target: srv.addr, Duration: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Run = %v after %v; want the context's error, soon", err, time.Since(start))
	}
	if rep.Requests == 0 {
		t.Error("no requests reported before the cancel")
	}
}

func TestConfigErrors(t *testing.T) {
	target := netip.MustParseAddrPort("127.0.0.1:80")
	tests := []struct {
		name string
		c    Config
	}{
		{"no API", Config{Target: target, Requests: 1}},
		{"no target", Config{API: socket.Linux{}, Requests: 1}},
		{"port 0", Config{API: socket.Linux{}, Target: netip.MustParseAddrPort("127.0.0.1:0"), Requests: 1}},
		{"neither requests nor duration", Config{API: socket.Linux{}, Target: target}},
		{"both requests and duration", Config{API: socket.Linux{}, Target: target, Requests: 1, Duration: time.Second}},
		{"negative connections", Config{API: socket.Linux{}, Target: target, Requests: 1, Connections: -1}},
		{"pipeline too deep", Config{API: socket.Linux{}, Target: target, Requests: 1, Pipeline: maxPipeline + 1}},
		{"trace peer out of range", Config{API: socket.Linux{}, Target: target, Requests: 1, TracePeer: 255}},
		{"path and paths", Config{API: socket.Linux{}, Target: target, Requests: 1, Path: "/", Paths: []string{"/"}}},
		{"relative path", Config{API: socket.Linux{}, Target: target, Requests: 1, Path: "index.html"}},
		{"space in path", Config{API: socket.Linux{}, Target: target, Requests: 1, Path: "/a b"}},
		{"CRLF in host", Config{API: socket.Linux{}, Target: target, Requests: 1, Host: "a\r\nX-Evil: 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(t.Context(), tt.c); err == nil {
				t.Fatal("Run accepted the configuration")
			}
		})
	}
}

func TestDurationRefused(t *testing.T) {
	rep := run(t, Config{Target: closedPort(t), Duration: 50 * time.Millisecond, Connections: 2})
	if rep.Requests != 0 || rep.Connections != 0 || rep.Errors.Refused == 0 || rep.Errors.Failed() != rep.Errors.Refused {
		t.Errorf("%d requests, %d connections, errors %+v; want only refusals", rep.Requests, rep.Connections, rep.Errors)
	}
}

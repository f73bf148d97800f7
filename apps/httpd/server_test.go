package httpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
)

// The test server's clock starts at start; its files were modified at
// modTime.
var (
	start   = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	modTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
)

// Fields every response of the test server carries, its clock unmoved.
const (
	date    = "Date: Fri, 01 Mar 2024 12:00:00 GMT\r\n"
	server  = "Server: newtsim-httpd\r\n"
	lastMod = "Last-Modified: Tue, 02 Jan 2024 03:04:05 GMT\r\n"
	text    = "Content-Type: text/plain; charset=utf-8\r\n"
	html    = "Content-Type: text/html; charset=utf-8\r\n"
	hello   = "hello, world\n"
	index   = "<h1>index</h1>\n"
)

// bigFile is the 512 kB file served, random bytes.
var bigFile = func() []byte {
	b := make([]byte, 512<<10)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}()

// fakeClock is a clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// syncBuffer is a log destination safe to read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type testServer struct {
	*Server
	clock *fakeClock
	log   *syncBuffer
	addr  string
}

// startServer serves a directory of test files on the linux backend until
// the test ends; configure adjusts the configuration.
func startServer(t *testing.T, configure func(*Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string][]byte{
		"hello.txt":      []byte(hello),
		"index.html":     []byte(index),
		"sub/index.html": []byte("<h1>sub</h1>\n"),
		"a b.txt":        []byte("spaced\n"),
		"big.bin":        bigFile,
	} {
		name = filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, body, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(name, modTime, modTime); err != nil {
			t.Fatal(err)
		}
	}
	ts := &testServer{clock: &fakeClock{}, log: &syncBuffer{}}
	ts.clock.Advance(time.Duration(start.UnixNano()))
	c := Config{
		API:         socket.Linux{},
		Addr:        netip.MustParseAddrPort("127.0.0.1:0"),
		Files:       os.DirFS(dir),
		Timeout:     10 * time.Second,
		IdleTimeout: 5 * time.Second,
		Clock:       ts.clock.Now,
		Log:         log.New(ts.log, "", 0),
	}
	if configure != nil {
		configure(&c)
	}
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server, ts.addr = s, s.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return ts
}

// dial connects to the server, with a deadline that ends a stuck test.
func (ts *testServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor waits until the server's stats satisfy ok.
func (ts *testServer) waitFor(t *testing.T, what string, ok func(Stats) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(ts.Stats()); {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: stats %+v", what, ts.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// readN reads n bytes.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	b := make([]byte, n)
	if k, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %q, then: %v", b[:k], err)
	}
	return string(b)
}

// readAll reads until the server closes the connection.
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %q, then: %v", b, err)
	}
	return string(b)
}

const helloResponse = "HTTP/1.1 200 OK\r\n" + text + "Content-Length: 13\r\n" + lastMod + date + server + "\r\n" + hello

func TestResponses(t *testing.T) {
	notFound := "HTTP/1.1 404 Not Found\r\n" + text + "Content-Length: 14\r\n" + date + server
	tests := []struct {
		name, req, want string
		// closes tells the response ends the connection; otherwise a
		// request that follows on the same connection is answered too.
		closes bool
	}{{
		name: "get",
		req:  "GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n",
		want: helloResponse,
	}, {
		name: "index",
		req:  "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		want: "HTTP/1.1 200 OK\r\n" + html + "Content-Length: 15\r\n" + lastMod + date + server + "\r\n" + index,
	}, {
		name: "index of a subdirectory",
		req:  "GET /sub/ HTTP/1.1\r\nHost: h\r\n\r\n",
		want: "HTTP/1.1 200 OK\r\n" + html + "Content-Length: 13\r\n" + lastMod + date + server + "\r\n<h1>sub</h1>\n",
	}, {
		name: "percent-encoded, dot segments, query",
		req:  "GET /sub/../a%20b.txt?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
		want: "HTTP/1.1 200 OK\r\n" + text + "Content-Length: 7\r\n" + lastMod + date + server + "\r\nspaced\n",
	}, {
		name: "absolute form",
		req:  "GET http://h/hello.txt HTTP/1.1\r\nHost: h\r\n\r\n",
		want: helloResponse,
	}, {
		name: "head",
		req:  "HEAD /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n",
		want: "HTTP/1.1 200 OK\r\n" + text + "Content-Length: 13\r\n" + lastMod + date + server + "\r\n",
	}, {
		name: "not modified since the modification",
		req:  "GET /hello.txt HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT\r\n\r\n",
		want: "HTTP/1.1 304 Not Modified\r\n" + lastMod + date + server + "\r\n",
	}, {
		name: "not modified since later",
		req:  "HEAD /hello.txt HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: Sunday, 07-Jan-24 00:00:00 GMT\r\n\r\n",
		want: "HTTP/1.1 304 Not Modified\r\n" + lastMod + date + server + "\r\n",
	}, {
		name: "modified since earlier",
		req:  "GET /hello.txt HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: Tue, 02 Jan 2024 03:04:04 GMT\r\n\r\n",
		want: helloResponse,
	}, {
		name: "invalid date ignored",
		req:  "GET /hello.txt HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: yesterday\r\n\r\n",
		want: helloResponse,
	}, {
		name: "not found",
		req:  "GET /nope HTTP/1.1\r\nHost: h\r\n\r\n",
		want: notFound + "\r\n404 Not Found\n",
	}, {
		name: "not found, head",
		req:  "HEAD /nope HTTP/1.1\r\nHost: h\r\n\r\n",
		want: notFound + "\r\n",
	}, {
		name: "directory without its slash",
		req:  "GET /sub HTTP/1.1\r\nHost: h\r\n\r\n",
		want: notFound + "\r\n404 Not Found\n",
	}, {
		name: "method not allowed",
		req:  "DELETE /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n",
		want: "HTTP/1.1 405 Method Not Allowed\r\n" + text + "Content-Length: 23\r\nAllow: GET, HEAD\r\n" +
			date + server + "\r\n405 Method Not Allowed\n",
	}, {
		name: "post without a body",
		req:  "POST /hello.txt HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		want: "HTTP/1.1 405 Method Not Allowed\r\n" + text + "Content-Length: 23\r\nAllow: GET, HEAD\r\n" +
			date + server + "\r\n405 Method Not Allowed\n",
	}, {
		name:   "connection close",
		req:    "GET /hello.txt HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		want:   strings.Replace(helloResponse, server, server+"Connection: close\r\n", 1),
		closes: true,
	}, {
		name:   "HTTP/1.0",
		req:    "GET /hello.txt HTTP/1.0\r\n\r\n",
		want:   strings.Replace(helloResponse, server, server+"Connection: close\r\n", 1),
		closes: true,
	}, {
		name: "HTTP/1.0 keep-alive",
		req:  "GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		want: strings.Replace(helloResponse, server, server+"Connection: keep-alive\r\n", 1),
	}, {
		name: "malformed",
		req:  "GARBAGE\r\n\r\n",
		want: "HTTP/1.1 400 Bad Request\r\n" + text + "Content-Length: 16\r\n" + date + server +
			"Connection: close\r\n\r\n400 Bad Request\n",
		closes: true,
	}, {
		name: "no host",
		req:  "GET /hello.txt HTTP/1.1\r\n\r\n",
		want: "HTTP/1.1 400 Bad Request\r\n" + text + "Content-Length: 16\r\n" + date + server +
			"Connection: close\r\n\r\n400 Bad Request\n",
		closes: true,
	}, {
		name: "bad percent-encoding",
		req:  "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
		want: "HTTP/1.1 400 Bad Request\r\n" + text + "Content-Length: 16\r\n" + date + server +
			"Connection: close\r\n\r\n400 Bad Request\n",
		closes: true,
	}, {
		name: "body",
		req:  "POST /hello.txt HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789",
		want: "HTTP/1.1 413 Request Entity Too Large\r\n" + text + "Content-Length: 29\r\n" + date + server +
			"Connection: close\r\n\r\n413 Request Entity Too Large\n",
		closes: true,
	}, {
		name: "chunked body",
		req:  "GET /hello.txt HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		want: "HTTP/1.1 413 Request Entity Too Large\r\n" + text + "Content-Length: 29\r\n" + date + server +
			"Connection: close\r\n\r\n413 Request Entity Too Large\n",
		closes: true,
	}, {
		name: "header too large, complete",
		req:  "GET /hello.txt HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("x", 9000) + "\r\n\r\n",
		want: "HTTP/1.1 431 Request Header Fields Too Large\r\n" + text + "Content-Length: 36\r\n" + date + server +
			"Connection: close\r\n\r\n431 Request Header Fields Too Large\n",
		closes: true,
	}, {
		name: "header too large, incomplete",
		req:  "GET /hello.txt HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("x", 40000),
		want: "HTTP/1.1 431 Request Header Fields Too Large\r\n" + text + "Content-Length: 36\r\n" + date + server +
			"Connection: close\r\n\r\n431 Request Header Fields Too Large\n",
		closes: true,
	}, {
		name: "version",
		req:  "GET /hello.txt HTTP/2.0\r\nHost: h\r\n\r\n",
		want: "HTTP/1.1 505 HTTP Version Not Supported\r\n" + text + "Content-Length: 31\r\n" + date + server +
			"Connection: close\r\n\r\n505 HTTP Version Not Supported\n",
		closes: true,
	}}
	ts := startServer(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t)
			write(t, c, tt.req)
			if tt.closes {
				if got := readAll(t, c); got != tt.want {
					t.Fatalf("response\n%q\nwant\n%q", got, tt.want)
				}
				return
			}
			if got := readN(t, c, len(tt.want)); got != tt.want {
				t.Fatalf("response\n%q\nwant\n%q", got, tt.want)
			}
			write(t, c, "GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n")
			if got := readN(t, c, len(helloResponse)); got != helloResponse {
				t.Fatalf("next response on the connection\n%q\nwant\n%q", got, helloResponse)
			}
		})
	}
}

func TestHTTPClient(t *testing.T) {
	ts := startServer(t, nil)
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "http://" + ts.addr
	get := func(method, path string, header http.Header) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	const n = 5
	for range n {
		resp, body := get("GET", "/", nil)
		if resp.StatusCode != 200 || string(body) != index {
			t.Fatalf("GET / = %s %q", resp.Status, body)
		}
		for k, want := range map[string]string{
			"Content-Type":   "text/html; charset=utf-8",
			"Content-Length": "15",
			"Last-Modified":  modTime.Format(http.TimeFormat),
			"Date":           start.Format(http.TimeFormat),
			"Server":         "newtsim-httpd",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
	}
	resp, body := get("HEAD", "/hello.txt", nil)
	if resp.StatusCode != 200 || resp.ContentLength != 13 || len(body) != 0 {
		t.Errorf("HEAD = %s, length %d, body %q", resp.Status, resp.ContentLength, body)
	}
	resp, _ = get("GET", "/hello.txt", http.Header{"If-Modified-Since": {modTime.Format(http.TimeFormat)}})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET If-Modified-Since = %s, want 304", resp.Status)
	}
	resp, body = get("GET", "/big.bin", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, bigFile) {
		t.Errorf("GET /big.bin = %s, %d bytes, want %d bytes equal to the file", resp.Status, len(body), len(bigFile))
	}
	resp, _ = get("GET", "/missing", nil)
	if resp.StatusCode != 404 {
		t.Errorf("GET /missing = %s, want 404", resp.Status)
	}

	st := ts.Stats()
	if st.Accepted != 1 {
		t.Errorf("%d connections for %d requests, want 1 kept alive", st.Accepted, st.Requests)
	}
	want := map[int]uint64{200: n + 2, 304: 1, 404: 1}
	for code, count := range want {
		if st.Responses[code] != count {
			t.Errorf("responses %v, want %v", st.Responses, want)
			break
		}
	}
	if st.Requests != n+4 || st.BytesOut < uint64(len(bigFile)) || st.BytesIn == 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestPipelining(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	write(t, c, "GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n"+
		"GET /nope HTTP/1.1\r\nHost: h\r\n\r\n"+
		"HEAD /big.bin HTTP/1.1\r\nHost: h\r\n\r\n"+
		"GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n"+
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	r := bufio.NewReader(c)
	for _, want := range []struct {
		method string
		status int
		body   []byte
	}{
		{"GET", 200, []byte(hello)},
		{"GET", 404, []byte("404 Not Found\n")},
		{"HEAD", 200, nil},
		{"GET", 200, bigFile},
		{"GET", 200, []byte(index)},
	} {
		resp, err := http.ReadResponse(r, &http.Request{Method: want.method})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want.status || !bytes.Equal(body, want.body) {
			t.Fatalf("response %s with %d bytes, want %d with %d", resp.Status, len(body), want.status, len(want.body))
		}
	}
	if rest := readAll(t, c); rest != "" {
		t.Errorf("after the last response: %q, want the close", rest)
	}
}

func TestPartialWrites(t *testing.T) {
	// A small send buffer makes the server's writes partial.
	ts := startServer(t, func(c *Config) { c.SendBuffer = 64 << 10 })
	c := ts.dial(t)
	const n = 3
	write(t, c, strings.Repeat("GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n", n))
	ts.waitFor(t, "a write to block", func(st Stats) bool { return st.WouldBlock > 0 })
	r := bufio.NewReader(c)
	for range n {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, bigFile) {
			t.Fatalf("%d bytes, not the file's %d", len(body), len(bigFile))
		}
	}
	if st := ts.Stats(); st.Writes < 2 {
		t.Errorf("%d writes for %d bytes through a small buffer", st.Writes, st.BytesOut)
	}
}

func TestHalfClose(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	write(t, c, "GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\nGET /hel")
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); got != helloResponse+helloResponse {
		t.Errorf("responses\n%q\nwant two of\n%q", got, helloResponse)
	}
}

func TestRequestTimeout(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	const partial = "GET /hello.txt HTTP/1.1\r\nHo"
	write(t, c, partial)
	ts.waitFor(t, "the partial request", func(st Stats) bool { return st.BytesIn == uint64(len(partial)) })
	ts.clock.Advance(9 * time.Second)
	time.Sleep(3 * pollInterval)
	if ts.Stats().Timeouts != 0 {
		t.Fatal("timed out before the timeout")
	}
	ts.clock.Advance(time.Second)
	want := "HTTP/1.1 408 Request Timeout\r\n" + text + "Content-Length: 20\r\n" +
		"Date: Fri, 01 Mar 2024 12:00:10 GMT\r\n" + server + "Connection: close\r\n\r\n408 Request Timeout\n"
	if got := readAll(t, c); got != want {
		t.Errorf("response\n%q\nwant\n%q", got, want)
	}
	if st := ts.Stats(); st.Timeouts != 1 || st.Responses[408] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	write(t, c, "GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n")
	readN(t, c, len(helloResponse))
	ts.clock.Advance(4 * time.Second)
	time.Sleep(3 * pollInterval)
	if ts.Stats().Open != 1 {
		t.Fatal("closed before the idle timeout")
	}
	ts.clock.Advance(time.Second)
	if got := readAll(t, c); got != "" {
		t.Errorf("idle connection got %q, want a silent close", got)
	}
	ts.waitFor(t, "the close", func(st Stats) bool { return st.Open == 0 && st.Timeouts == 1 })
}

func TestConnectionLimit(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxConns = 2 })
	var held []net.Conn
	for range 2 {
		c := ts.dial(t)
		write(t, c, "GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n")
		readN(t, c, len(helloResponse))
		held = append(held, c)
	}
	refused := func(n uint64) {
		t.Helper()
		c := ts.dial(t)
		if got := readAll(t, c); got != "" {
			t.Fatalf("connection over the limit got %q", got)
		}
		ts.waitFor(t, "the refusal", func(st Stats) bool { return st.Refused == n })
	}
	refused(1)
	refused(2)
	if got := strings.Count(ts.log.String(), "refusing"); got != 1 {
		t.Errorf("%d log lines on refusals within a second, want 1:\n%s", got, ts.log)
	}
	ts.clock.Advance(time.Second)
	refused(3)
	if got := strings.Count(ts.log.String(), "refusing"); got != 2 {
		t.Errorf("%d log lines on refusals a second apart, want 2:\n%s", got, ts.log)
	}
	if !strings.Contains(ts.log.String(), "at the limit of 2 connections: refusing new ones (3 refused so far)") {
		t.Errorf("log:\n%s", ts.log)
	}

	held[0].Close()
	ts.waitFor(t, "the close", func(st Stats) bool { return st.Open == 1 })
	c := ts.dial(t)
	write(t, c, "GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n")
	if got := readN(t, c, len(helloResponse)); got != strings.Replace(helloResponse, "12:00:00", "12:00:01", 1) {
		t.Errorf("under the limit again: %q", got)
	}
	if st := ts.Stats(); st.Accepted != 3 || st.Refused != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestAcceptPerRound(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.AcceptPerRound = 1 })
	var conns []net.Conn
	for range 10 {
		c := ts.dial(t)
		write(t, c, "GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n")
		conns = append(conns, c)
	}
	for _, c := range conns {
		if got := readN(t, c, len(helloResponse)); got != helloResponse {
			t.Fatalf("response %q", got)
		}
	}
}

func TestServeStops(t *testing.T) {
	s, err := New(Config{API: socket.Linux{}, Addr: netip.MustParseAddrPort("127.0.0.1:0"), Files: os.DirFS(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if got := readAll(t, c); got != "" {
		t.Errorf("got %q from a stopped server", got)
	}
	if c, err := net.Dial("tcp", s.Addr().String()); err == nil {
		c.Close()
		t.Error("a stopped server still listens")
	}
	if err := s.Serve(context.Background()); err == nil {
		t.Error("a second Serve succeeded")
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	loopback := netip.MustParseAddrPort("127.0.0.1:0")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		c    Config
		want error
	}{
		{"no API", Config{Files: os.DirFS(dir), Addr: loopback}, nil},
		{"no files", Config{API: socket.Linux{}, Addr: loopback}, nil},
		{"missing directory", Config{API: socket.Linux{}, Files: os.DirFS(filepath.Join(dir, "none")), Addr: loopback}, os.ErrNotExist},
		{"IPv6", Config{API: socket.Linux{}, Files: os.DirFS(dir), Addr: netip.MustParseAddrPort("[::1]:0")}, unix.EAFNOSUPPORT},
		{"address in use", Config{API: socket.Linux{}, Files: os.DirFS(dir),
			Addr: netip.MustParseAddrPort(busy.Addr().String())}, unix.EADDRINUSE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.c)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("New: %v, want %v", err, tt.want)
			}
		})
	}
}

// resetting is the linux backend with a listening socket the test can
// have the stack reset: its next accept closes it and fails with
// ECONNRESET, as a transport server's restart resets it.
type resetting struct {
	socket.Linux
	reset atomic.Bool
}

func (r *resetting) Accept(fd socket.FD) (socket.FD, netip.AddrPort, error) {
	if r.reset.Swap(false) {
		r.Linux.Close(fd)
		return -1, netip.AddrPort{}, unix.ECONNRESET
	}
	return r.Linux.Accept(fd)
}

// A listening socket the stack reset is opened again on the same
// address, and new connections are served.
func TestListenerReset(t *testing.T) {
	api := &resetting{}
	ts := startServer(t, func(c *Config) { c.API = api })
	api.reset.Store(true)
	c, err := net.Dial("tcp", ts.addr) // wakes the accept that finds the socket reset
	if err == nil {
		c.Close()
	}
	ts.waitFor(t, "the listening socket open again", func(st Stats) bool { return st.Relistens == 1 })
	c = ts.dial(t)
	write(t, c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if got := readAll(t, c); !strings.Contains(got, "200 OK") || !strings.HasSuffix(got, hello) {
		t.Fatalf("after the reset: %q, want the file", got)
	}
}

package fetch

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
)

// The client runs on the linux backend here, against servers of net/http
// and hand-written ones.

var linux socket.API = socket.Linux{}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		url, addr, host, path string
	}{
		{"http://198.18.0.1:8000/big.bin", "198.18.0.1:8000", "198.18.0.1:8000", "/big.bin"},
		{"http://198.18.0.1/", "198.18.0.1:80", "198.18.0.1", "/"},
		{"http://198.18.0.1", "198.18.0.1:80", "198.18.0.1", "/"},
		{"http://127.0.0.1:81/a%20b/c?x=1&y=2", "127.0.0.1:81", "127.0.0.1:81", "/a%20b/c?x=1&y=2"},
	} {
		got, err := ParseURL(c.url)
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		want := Target{Addr: netip.MustParseAddrPort(c.addr), Host: c.host, Path: c.path}
		if got != want {
			t.Errorf("%s: got %+v, want %+v", c.url, got, want)
		}
	}
	for url, why := range map[string]string{
		"https://198.18.0.1/":      "scheme",
		"ftp://198.18.0.1/":        "scheme",
		"http://example.com/":      "IPv4",
		"http://[::1]:80/":         "IPv4",
		"http://198.18.0.1:0/":     "port",
		"http://198.18.0.1:99999/": "port",
		"http://u:p@198.18.0.1/":   "user",
		"198.18.0.1/x":             "scheme",
	} {
		if _, err := ParseURL(url); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: got %v, want an error about the %s", url, err, why)
		}
	}
}

func TestRequest(t *testing.T) {
	tg, err := ParseURL("http://198.18.0.1:8000/big.bin?v=2")
	if err != nil {
		t.Fatal(err)
	}
	want := "GET /big.bin?v=2 HTTP/1.1\r\n" +
		"Host: 198.18.0.1:8000\r\n" +
		"User-Agent: newtsim-fetch/1\r\n" +
		"Accept: */*\r\n" +
		"Connection: close\r\n\r\n"
	if got := string(Request(tg)); got != want {
		t.Fatalf("request:\n%q\nwant\n%q", got, want)
	}
	// net/http reads it as the request meant.
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(want)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != "GET" || r.Host != "198.18.0.1:8000" || r.URL.Path != "/big.bin" || !r.Close {
		t.Fatalf("net/http reads %s %s host %s close %v", r.Method, r.URL, r.Host, r.Close)
	}
}

func TestParseHead(t *testing.T) {
	h, err := ParseHead([]byte("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\nX-Folded: a\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h.Proto != "HTTP/1.1" || h.Status != 200 || h.Reason != "OK" || h.ContentLength != 12 || h.Chunked ||
		h.Header.Get("content-type") != "text/plain" {
		t.Fatalf("got %+v", h)
	}
	h, err = ParseHead([]byte("HTTP/1.0 404 Not Found\n\n"))
	if err != nil || h.Status != 404 || h.Reason != "Not Found" || h.ContentLength != -1 {
		t.Fatalf("bare LF head: %+v, %v", h, err)
	}
	h, err = ParseHead([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"))
	if err != nil || !h.Chunked {
		t.Fatalf("chunked head: %+v, %v", h, err)
	}
	for head, why := range map[string]string{
		"HTTP/2 200 OK\r\n\r\n":                                                  "status line",
		"HTTP/1.1 2000 OK\r\n\r\n":                                               "status code",
		"HTTP/1.1 abc OK\r\n\r\n":                                                "status code",
		"ICY 200 OK\r\n\r\n":                                                     "status line",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n":                          "Content-Length",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n":      "Content-Length",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n":                     "Transfer-Encoding",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n":            "Transfer-Encoding",
		"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n":                               "header",
		"HTTP/1.1 200 OK\r\nContent-Length: 12345678901234567890123\r\n\r\n":     "Content-Length",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nextra": "",
	} {
		_, err := ParseHead([]byte(head))
		if why == "" {
			if err != nil {
				t.Errorf("%q: %v", head, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: got %v, want an error about the %s", head, err, why)
		}
	}
}

func TestReadHeadBounds(t *testing.T) {
	// A head in a small buffer, lines longer than it.
	long := strings.Repeat("x", 100)
	in := "HTTP/1.1 200 OK\r\nX-Long: " + long + "\r\n\r\nbody"
	br := bufio.NewReaderSize(strings.NewReader(in), 16)
	h, err := ReadHead(br)
	if err != nil || h.Header.Get("X-Long") != long {
		t.Fatalf("got %+v, %v", h, err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "body" {
		t.Fatalf("after the head: %q", rest)
	}
	// A head without its end.
	if _, err := ReadHead(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nA: b\r\n"))); err == nil ||
		!strings.Contains(err.Error(), "closed after") {
		t.Fatalf("truncated head: %v", err)
	}
	if _, err := ReadHead(bufio.NewReader(strings.NewReader(""))); err == nil || !strings.Contains(err.Error(), "without a response") {
		t.Fatalf("no head: %v", err)
	}
	// A head over the bound.
	huge := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: "+long+"\r\n", MaxHeadBytes/100) + "\r\n"
	if _, err := ReadHead(bufio.NewReader(strings.NewReader(huge))); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("huge head: %v", err)
	}
}

// linuxGet runs Get on the linux backend, into a buffer.
func linuxGet(t *testing.T, url string, timeout time.Duration) (Result, []byte, error) {
	t.Helper()
	var body bytes.Buffer
	res, err := Get(linux, url, &body, timeout)
	if res.Bytes != int64(body.Len()) {
		t.Errorf("result says %d bytes, %d written", res.Bytes, body.Len())
	}
	if res.SHA256 != hexSum(body.Bytes()) {
		t.Errorf("result's sha256 %s is not the body's", res.SHA256)
	}
	if res.ElapsedNS <= 0 {
		t.Errorf("elapsed %d ns", res.ElapsedNS)
	}
	if (err == nil) != (res.Error == "") {
		t.Errorf("error %v, result's %q", err, res.Error)
	}
	return res, body.Bytes(), err
}

func TestGetFromNetHTTP(t *testing.T) {
	big := randomBytes(3<<20+17, 1)
	// The handler runs in the server's goroutine; its findings come back
	// through atomics (the race detector sees no order in socket calls).
	var sawClose, sawAgent atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawClose.Store(r.Close)
		sawAgent.Store(r.UserAgent() == UserAgent)
		switch r.URL.Path {
		case "/big.bin":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		case "/chunked":
			for i := 0; i < 5; i++ {
				w.Write(big[i*1000 : (i+1)*1000])
				w.(http.Flusher).Flush()
			}
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	res, body, err := linuxGet(t, srv.URL+"/big.bin", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || !bytes.Equal(body, big) || res.SHA256 != hexSum(big) {
		t.Fatalf("big: status %d, %d bytes, want %d", res.Status, len(body), len(big))
	}
	if !sawClose.Load() || !sawAgent.Load() {
		t.Errorf("the server saw close %v, our agent %v", sawClose.Load(), sawAgent.Load())
	}

	res, body, err = linuxGet(t, srv.URL+"/chunked", 10*time.Second)
	if err != nil || res.Status != 200 || !bytes.Equal(body, big[:5000]) {
		t.Fatalf("chunked: %v, status %d, %d bytes", err, res.Status, len(body))
	}

	res, body, err = linuxGet(t, srv.URL+"/empty", 10*time.Second)
	if err != nil || res.Status != 204 || len(body) != 0 {
		t.Fatalf("204: %v, status %d, %d bytes", err, res.Status, len(body))
	}

	// Another status is no error of Get's: the role judges it.
	res, body, err = linuxGet(t, srv.URL+"/nothing", 10*time.Second)
	if err != nil || res.Status != 404 || !strings.Contains(string(body), "not found") {
		t.Fatalf("404: %v, status %d, body %q", err, res.Status, body)
	}
}

// rawServer answers each connection with what answer does on it.
func rawServer(t *testing.T, answer func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Read the request's head first.
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				answer(c)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestGetRawResponses(t *testing.T) {
	body := randomBytes(200<<10, 2)
	t.Run("to EOF", func(t *testing.T) {
		url := rawServer(t, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.0 200 OK\r\nServer: old\r\n\r\n")
			c.Write(body)
		})
		res, got, err := linuxGet(t, url+"/", 10*time.Second)
		if err != nil || res.Status != 200 || !bytes.Equal(got, body) {
			t.Fatalf("%v, status %d, %d bytes of %d", err, res.Status, len(got), len(body))
		}
	})
	t.Run("interim response", func(t *testing.T) {
		url := rawServer(t, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
		})
		res, got, err := linuxGet(t, url+"/", 10*time.Second)
		if err != nil || res.Status != 200 || string(got) != "hello" {
			t.Fatalf("%v, status %d, %q", err, res.Status, got)
		}
	})
	t.Run("bytes past Content-Length", func(t *testing.T) {
		url := rawServer(t, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more")
		})
		res, got, err := linuxGet(t, url+"/", 10*time.Second)
		if err != nil || res.Status != 200 || string(got) != "hello" {
			t.Fatalf("%v, status %d, %q", err, res.Status, got)
		}
	})
	t.Run("short body", func(t *testing.T) {
		url := rawServer(t, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
			c.Write(body[:600])
		})
		res, got, err := linuxGet(t, url+"/", 10*time.Second)
		if err == nil || !strings.Contains(err.Error(), "closed after 600 of the body's 1000 bytes") || len(got) != 600 || res.Status != 200 {
			t.Fatalf("%v, status %d, %d bytes", err, res.Status, len(got))
		}
	})
	t.Run("short chunked body", func(t *testing.T) {
		url := rawServer(t, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nabc")
		})
		_, _, err := linuxGet(t, url+"/", 10*time.Second)
		if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want an unexpected EOF", err)
		}
	})
	t.Run("no response", func(t *testing.T) {
		url := rawServer(t, func(c net.Conn) {})
		_, _, err := linuxGet(t, url+"/", 10*time.Second)
		if err == nil || !strings.Contains(err.Error(), "without a response") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		url := rawServer(t, func(c net.Conn) { io.WriteString(c, "SSH-2.0-OpenSSH\r\n\r\n") })
		_, _, err := linuxGet(t, url+"/", 10*time.Second)
		if err == nil || !strings.Contains(err.Error(), "malformed status line") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		url := rawServer(t, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
			<-release
		})
		start := time.Now()
		res, got, err := linuxGet(t, url+"/", 300*time.Millisecond)
		if err == nil || !errors.Is(err, ErrTimeout) || string(got) != "abc" || res.Bytes != 3 {
			t.Fatalf("got %v, %q", err, got)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("timed out after %v, want about 300ms", d)
		}
	})
}

func TestGetConnectRefused(t *testing.T) {
	// A port just closed: nothing listens there.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res, _, err := linuxGet(t, "http://"+addr+"/", 5*time.Second)
	if !errors.Is(err, unix.ECONNREFUSED) || !strings.Contains(err.Error(), "connect to "+addr) {
		t.Fatalf("got %v", err)
	}
	if res.Status != 0 || res.Bytes != 0 {
		t.Fatalf("result %+v", res)
	}
}

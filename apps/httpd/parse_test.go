package httpd

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Request
		// n is the bytes the header takes; 0 means all of in.
		n int
	}{{
		name: "get",
		in:   "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: Request{Method: "GET", Target: "/", Major: 1, Minor: 1, Host: "example.com"},
	}, {
		name: "fields kept and dropped",
		in: "GET /a/b.html?q=1 HTTP/1.1\r\nUser-Agent: test\r\nHOST: h\r\nAccept: */*\r\n" +
			"If-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT\r\nCookie: a=b; c=d\r\n\r\n",
		want: Request{Method: "GET", Target: "/a/b.html?q=1", Major: 1, Minor: 1, Host: "h",
			IfModifiedSince: "Tue, 02 Jan 2024 03:04:05 GMT"},
	}, {
		name: "optional whitespace around values",
		in:   "HEAD /x HTTP/1.1\r\nHost: \t h \t\r\nConnection:close\r\n\r\n",
		want: Request{Method: "HEAD", Target: "/x", Major: 1, Minor: 1, Host: "h", Close: true},
	}, {
		name: "empty lines before the request line",
		in:   "\r\n\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		want: Request{Method: "GET", Target: "/", Major: 1, Minor: 1, Host: "h"},
	}, {
		name: "bare LF line ends",
		in:   "GET / HTTP/1.1\nHost: h\n\n",
		want: Request{Method: "GET", Target: "/", Major: 1, Minor: 1, Host: "h"},
	}, {
		name: "pipelined: the first only",
		in:   "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
		want: Request{Method: "GET", Target: "/1", Major: 1, Minor: 1, Host: "h"},
		n:    len("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"),
	}, {
		name: "HTTP/1.0 needs no Host",
		in:   "GET / HTTP/1.0\r\n\r\n",
		want: Request{Method: "GET", Target: "/", Major: 1},
	}, {
		name: "HTTP/1.0 keep-alive",
		in:   "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
		want: Request{Method: "GET", Target: "/", Major: 1, KeepAlive: true},
	}, {
		name: "connection options",
		in:   "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade, CLOSE ,x\r\n\r\n",
		want: Request{Method: "GET", Target: "/", Major: 1, Minor: 1, Host: "h", Close: true},
	}, {
		name: "content length, body not taken",
		in:   "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
		want: Request{Method: "POST", Target: "/u", Major: 1, Minor: 1, Host: "h", ContentLength: 5},
		n:    len("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"),
	}, {
		name: "identical content lengths",
		in:   "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n",
		want: Request{Method: "POST", Target: "/u", Major: 1, Minor: 1, Host: "h", ContentLength: 7},
	}, {
		name: "chunked",
		in:   "PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
		want: Request{Method: "PUT", Target: "/u", Major: 1, Minor: 1, Host: "h", Chunked: true},
	}, {
		name: "absolute form",
		in:   "GET http://h/x?y HTTP/1.1\r\nHost: h\r\n\r\n",
		want: Request{Method: "GET", Target: "http://h/x?y", Major: 1, Minor: 1, Host: "h"},
	}, {
		name: "asterisk",
		in:   "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
		want: Request{Method: "OPTIONS", Target: "*", Major: 1, Minor: 1, Host: "h"},
	}, {
		name: "authority form",
		in:   "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
		want: Request{Method: "CONNECT", Target: "h:443", Major: 1, Minor: 1, Host: "h:443"},
	}, {
		name: "extension method, later minor version",
		in:   "BREW /pot HTTP/1.9\r\nHost: h\r\n\r\n",
		want: Request{Method: "BREW", Target: "/pot", Major: 1, Minor: 9, Host: "h"},
	}, {
		name: "empty host, obs-text value",
		in:   "GET / HTTP/1.1\r\nHost:\r\nX: caf\xc3\xa9\r\n\r\n",
		want: Request{Method: "GET", Target: "/", Major: 1, Minor: 1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := ParseRequest([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseRequest(%q) failed: %v", tt.in, err)
			}
			wantN := tt.n
			if wantN == 0 {
				wantN = len(tt.in)
			}
			if got != tt.want || n != wantN {
				t.Errorf("ParseRequest(%q) =\n%+v, %d; want\n%+v, %d", tt.in, got, n, tt.want, wantN)
			}
			// Every prefix of a header is incomplete, never wrong.
			for k := range wantN {
				if _, n, err := ParseRequest([]byte(tt.in[:k])); !errors.Is(err, ErrIncomplete) || n != 0 {
					t.Fatalf("ParseRequest(%q) = %d, %v; want 0, ErrIncomplete", tt.in[:k], n, err)
				}
			}
		})
	}
}

func TestParseRequestErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrIncomplete},
		{"empty lines", "\r\n\r\n\r", ErrIncomplete},
		{"partial request line", "GET / HTT", ErrIncomplete},
		{"no end of header", "GET / HTTP/1.1\r\nHost: h\r\n", ErrIncomplete},
		{"ends in CR", "GET / HTTP/1.1\r\nHost: h\r\n\r", ErrIncomplete},

		{"no host", "GET / HTTP/1.1\r\n\r\n", ErrMalformed},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ErrMalformed},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", ErrMalformed},
		{"no version", "GET /\r\nHost: h\r\n\r\n", ErrMalformed},
		{"trailing space", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", ErrMalformed},
		{"lower-case version", "GET / http/1.1\r\nHost: h\r\n\r\n", ErrMalformed},
		{"bad version", "GET / HTTP/1.x\r\nHost: h\r\n\r\n", ErrMalformed},
		{"long version", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", ErrMalformed},
		{"method not a token", "GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", ErrMalformed},
		{"relative target", "GET x HTTP/1.1\r\nHost: h\r\n\r\n", ErrMalformed},
		{"garbage", "GARBAGE\r\n\r\n", ErrMalformed},
		{"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", ErrMalformed},
		{"no colon", "GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n", ErrMalformed},
		{"empty name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", ErrMalformed},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", ErrMalformed},
		{"bare CR", "GET / HTTP/1.1\rHost: h\r\n\r\n", ErrMalformed},
		{"NUL in a partial line", "GET /\x00", ErrMalformed},
		{"TLS hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ErrMalformed},
		{"control in a value", "GET / HTTP/1.1\r\nHost: h\x7f\r\n\r\n", ErrMalformed},
		{"length not a number", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", ErrMalformed},
		{"negative length", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", ErrMalformed},
		{"length list", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n", ErrMalformed},
		{"empty length", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", ErrMalformed},
		{"lengths differ", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", ErrMalformed},
		{"length overflows", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", ErrMalformed},
		{"chunked not last", "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", ErrMalformed},
		{"both framings", "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", ErrMalformed},
		{"chunked in 1.0", "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", ErrMalformed},

		{"HTTP/2", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", ErrVersion},
		{"HTTP/0.9", "GET / HTTP/0.9\r\n", ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, n, err := ParseRequest([]byte(tt.in))
			if !errors.Is(err, tt.want) || n != 0 || r != (Request{}) {
				t.Errorf("ParseRequest(%q) = %+v, %d, %v; want zero, 0, %v", tt.in, r, n, err, tt.want)
			}
		})
	}
}

func TestParseRequestHuge(t *testing.T) {
	// A long header parses in one pass; the size limit is the server's.
	in := "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("a", 1<<20) + "\r\n\r\n"
	if _, n, err := ParseRequest([]byte(in)); err != nil || n != len(in) {
		t.Fatalf("ParseRequest(huge) = %d, %v", n, err)
	}
}

func TestPersistent(t *testing.T) {
	tests := []struct {
		r    Request
		want bool
	}{
		{Request{Major: 1, Minor: 1}, true},
		{Request{Major: 1, Minor: 1, Close: true}, false},
		{Request{Major: 1, Minor: 1, KeepAlive: true, Close: true}, false},
		{Request{Major: 1}, false},
		{Request{Major: 1, KeepAlive: true}, true},
		{Request{Major: 1, KeepAlive: true, Close: true}, false},
	}
	for _, tt := range tests {
		if got := tt.r.Persistent(); got != tt.want {
			t.Errorf("%+v.Persistent() = %v, want %v", tt.r, got, tt.want)
		}
	}
}

func TestFilePath(t *testing.T) {
	tests := []struct {
		target, want string
		ok           bool
	}{
		{"/", "/", true},
		{"/a.html", "/a.html", true},
		{"/a.html?x=1/2", "/a.html", true},
		{"/dir/", "/dir/", true},
		{"/dir//", "/dir/", true},
		{"/a/../b/./c", "/b/c", true},
		{"/../../etc/passwd", "/etc/passwd", true},
		{"/a%20b", "/a b", true},
		{"/a%2fb", "/a/b", true},
		{"/%zz", "", false},
		{"http://h/x/y?z", "/x/y", true},
		{"http://h", "/", true},
		{"http://h?q", "/", true},
		{"*", "", false},
		{"h:443", "", false},
	}
	for _, tt := range tests {
		got, ok := filePath(tt.target)
		if got != tt.want || ok != tt.ok {
			t.Errorf("filePath(%q) = %q, %v; want %q, %v", tt.target, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzParseRequest checks that the parser never panics and keeps its
// contract: an error consumes nothing; a request consumes a prefix that
// parses alone to the same request, and whose every prefix is incomplete.
// Its seeds are in testdata/fuzz/FuzzParseRequest.
func FuzzParseRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := ParseRequest(b)
		if err != nil {
			if n != 0 || r != (Request{}) {
				t.Fatalf("error %v with %d bytes and %+v", err, n, r)
			}
			if !errors.Is(err, ErrIncomplete) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		if r.Major != 1 || r.Method == "" || r.Target == "" || r.ContentLength < 0 {
			t.Fatalf("implausible request %+v", r)
		}
		if r2, n2, err := ParseRequest(b[:n]); err != nil || n2 != n || r2 != r {
			t.Fatalf("header alone: %+v, %d, %v; want %+v, %d", r2, n2, err, r, n)
		}
		for _, k := range []int{0, n / 2, n - 1} {
			if _, _, err := ParseRequest(b[:k]); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("prefix %q: %v, want ErrIncomplete", b[:k], err)
			}
		}
	})
}

func BenchmarkParseRequest(b *testing.B) {
	req := []byte("GET /images/logo.png?v=3 HTTP/1.1\r\n" +
		"Host: www.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
		"Accept: image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5\r\n" +
		"Accept-Language: en-US,en;q=0.5\r\n" +
		"Accept-Encoding: gzip, deflate, br\r\n" +
		"Connection: keep-alive\r\n" +
		"Referer: http://www.example.com/\r\n" +
		"If-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT\r\n" +
		"\r\n")
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseRequest(req); err != nil {
			b.Fatal(err)
		}
	}
}

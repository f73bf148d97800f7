package loadgen

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseResponse(t *testing.T) {
	const okHead = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
	tests := []struct {
		name    string
		in      string // a response head, or bytes that are none
		rest    string // what follows the head
		want    response
		wantErr error // errIncomplete, errFinal for any final error, or an error itself
	}{
		{name: "content length", in: okHead, rest: "hello", want: response{status: 200, contentLength: 5}},
		{name: "bare LF", in: "HTTP/1.1 404 Not Found\nContent-Length: 0\n\n", want: response{status: 404, contentLength: 0}},
		{name: "no reason", in: "HTTP/1.1 204\r\n\r\n", want: response{status: 204, contentLength: -1}},
		{name: "empty reason", in: "HTTP/1.1 204 \r\n\r\n", want: response{status: 204, contentLength: -1}},
		{name: "connection close", in: "HTTP/1.1 200 OK\r\nconnection: Keep-Alive, CLOSE\r\n\r\n", want: response{status: 200, contentLength: -1, close: true}},
		{name: "1.0 closes", in: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", rest: "x", want: response{status: 200, contentLength: 1, close: true}},
		{name: "1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", want: response{status: 200, contentLength: 1}},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", rest: "0\r\n\r\n", want: response{status: 200, contentLength: -1, transferEncoding: true}},
		{name: "same length twice", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", want: response{status: 200, contentLength: 2}},
		{name: "value white space", in: "HTTP/1.1 200 OK\r\nContent-Length:\t 7 \t\r\n\r\n", want: response{status: 200, contentLength: 7}},
		{name: "next response follows", in: okHead, rest: "helloHTTP/1.1 500 x\r\n\r\n", want: response{status: 200, contentLength: 5}},

		{name: "empty", in: "", wantErr: errIncomplete},
		{name: "prefix of version", in: "HTTP/", wantErr: errIncomplete},
		{name: "no blank line yet", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", wantErr: errIncomplete},
		{name: "half a CRLF", in: "HTTP/1.1 200 OK\r\n\r", wantErr: errIncomplete},

		{name: "garbage", in: "SSH-2.0-OpenSSH_9.6\r\n", wantErr: errNotHTTP},
		{name: "garbage before a blank line", in: "x", wantErr: errNotHTTP},
		{name: "HTTP/2", in: "HTTP/2 200\r\n\r\n", wantErr: errNotHTTP},
		{name: "HTTP/1.2", in: "HTTP/1.2 200 OK\r\n\r\n", wantErr: errFinal},
		{name: "short status", in: "HTTP/1.1 20\r\n\r\n", wantErr: errFinal},
		{name: "status letters", in: "HTTP/1.1 2x0 OK\r\n\r\n", wantErr: errFinal},
		{name: "status too big", in: "HTTP/1.1 600 OK\r\n\r\n", wantErr: errFinal},
		{name: "no space after status", in: "HTTP/1.1 200OK\r\n\r\n", wantErr: errFinal},
		{name: "control in reason", in: "HTTP/1.1 200 O\x00K\r\n\r\n", wantErr: errFinal},
		{name: "bad length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: errFinal},
		{name: "huge length", in: "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", wantErr: errFinal},
		{name: "conflicting lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", wantErr: errFinal},
		{name: "length and chunked", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: errFinal},
		{name: "no colon", in: "HTTP/1.1 200 OK\r\nContent-Length 5\r\n\r\n", wantErr: errFinal},
		{name: "space before colon", in: "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", wantErr: errFinal},
		{name: "folded line", in: "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", wantErr: errFinal},
		{name: "bare CR in value", in: "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", wantErr: errFinal},
		{name: "head too long", in: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxHeadLen) + "\r\n\r\n", wantErr: errHeadLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := parseResponse([]byte(tt.in + tt.rest))
			switch {
			case tt.wantErr == nil:
				if err != nil || got != tt.want || n != len(tt.in) {
					t.Fatalf("parseResponse(%q) = %+v, %d, %v; want %+v, %d, nil", tt.in+tt.rest, got, n, err, tt.want, len(tt.in))
				}
			case tt.wantErr == errFinal:
				if err == nil || errors.Is(err, errIncomplete) {
					t.Fatalf("parseResponse(%q) = %+v, %d, %v; want a final error", tt.in, got, n, err)
				}
			default:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("parseResponse(%q) error = %v; want %v", tt.in, err, tt.wantErr)
				}
			}
		})
	}
}

// errFinal stands for any error but errIncomplete in TestParseResponse.
var errFinal = errors.New("any final error")

func TestBodyLength(t *testing.T) {
	tests := []struct {
		r    response
		want int64
		err  error
	}{
		{response{status: 200, contentLength: 10}, 10, nil},
		{response{status: 200, contentLength: 0}, 0, nil},
		{response{status: 204, contentLength: -1}, 0, nil},
		{response{status: 304, contentLength: 10}, 0, nil},
		{response{status: 200, contentLength: -1, close: true}, -1, nil},
		{response{status: 200, contentLength: -1}, 0, errNoLength},
		{response{status: 200, contentLength: -1, transferEncoding: true}, 0, errChunked},
		{response{status: 200, contentLength: -1, transferEncoding: true, close: true}, -1, nil},
	}
	for _, tt := range tests {
		got, err := tt.r.bodyLength()
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("%+v.bodyLength() = %d, %v; want %d, %v", tt.r, got, err, tt.want, tt.err)
		}
	}
}

// FuzzParseResponse checks that parseResponse never panics and keeps its
// promises: a head's result does not depend on the bytes after it, a final
// error stays final whatever follows, and an incomplete head has no
// complete prefix.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
		"garbage\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := parseResponse(b)
		switch {
		case err == nil:
			if n <= 0 || n > len(b) {
				t.Fatalf("head length %d of %d bytes", n, len(b))
			}
			if r.status < 100 || r.status > 599 || r.contentLength < -1 {
				t.Fatalf("impossible head %+v", r)
			}
			if r2, n2, err2 := parseResponse(b[:n]); r2 != r || n2 != n || err2 != nil {
				t.Fatalf("head alone = %+v, %d, %v; with what follows = %+v, %d", r2, n2, err2, r, n)
			}
			more := append(bytes.Clone(b), "HTTP/1.1 500 x\r\n\r\n"...)
			if r2, n2, err2 := parseResponse(more); r2 != r || n2 != n || err2 != nil {
				t.Fatalf("head with more after = %+v, %d, %v; want %+v, %d", r2, n2, err2, r, n)
			}
			r.bodyLength()
		case errors.Is(err, errIncomplete):
			if n != 0 {
				t.Fatalf("incomplete head with length %d", n)
			}
			for _, k := range []int{0, len(b) / 2, max(len(b)-1, 0)} {
				if _, _, err := parseResponse(b[:k]); !errors.Is(err, errIncomplete) {
					t.Fatalf("prefix of %d bytes of an incomplete head: %v", k, err)
				}
			}
		default:
			if n != 0 {
				t.Fatalf("error %v with length %d", err, n)
			}
			more := append(bytes.Clone(b), "\r\n\r\n"...)
			if _, _, err2 := parseResponse(more); err2 == nil || errors.Is(err2, errIncomplete) {
				t.Fatalf("error %v became %v with more bytes", err, err2)
			}
		}
	})
}

func BenchmarkParseResponse(b *testing.B) {
	resp := []byte("HTTP/1.1 200 OK\r\n" +
		"Server: nginx/1.24.0\r\n" +
		"Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n" +
		"Content-Length: 612\r\n" +
		"Last-Modified: Tue, 11 Apr 2023 01:45:34 GMT\r\n" +
		"Connection: keep-alive\r\n" +
		"ETag: \"64343bce-264\"\r\n" +
		"Accept-Ranges: bytes\r\n\r\n")
	b.SetBytes(int64(len(resp)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseResponse(resp); err != nil {
			b.Fatal(err)
		}
	}
}

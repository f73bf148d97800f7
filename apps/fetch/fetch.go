// Package fetch is a small HTTP/1.1 client written only against the socket
// library (socket.API), so the same code runs on every backend: one GET
// with Connection: close, its body copied out as it arrives. As a role
// (`fetch`) it runs in an application process of the simulated host, on
// the message backend, downloads one URL to a file and writes what
// happened (status, bytes, SHA-256, time taken) as JSON.
//
// The client takes http URLs whose host is an IPv4 address (there is no
// resolver on the simulated host). It reads the body to its Content-Length,
// through the chunked coding, or to the end of the connection when the
// response gives neither; 1xx interim responses are skipped, and 204 and
// 304 have no body. Not built: https, redirects, content codings,
// keep-alive.
package fetch

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"net/netip"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
)

// MaxHeadBytes bounds a response's head, status line included.
const MaxHeadBytes = 64 << 10

// readSize is how much a read asks the socket for at once.
const readSize = 64 << 10

// UserAgent is the User-Agent the client sends.
const UserAgent = "newtsim-fetch/1"

// Target is where a URL points: the address to connect to, and the Host
// field and request target to send.
type Target struct {
	Addr netip.AddrPort
	Host string // as in the URL: the port only when the URL gives one
	Path string // the request target: path and query, "/" at least
}

// ParseURL parses an http URL whose host is an IPv4 address.
func ParseURL(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("fetch: %w", err)
	}
	if u.Scheme != "http" {
		return Target{}, fmt.Errorf("fetch: URL %q: scheme %q is not built (want http)", raw, u.Scheme)
	}
	if u.User != nil {
		return Target{}, fmt.Errorf("fetch: URL %q: user information is not built", raw)
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil || !ip.Is4() {
		return Target{}, fmt.Errorf("fetch: URL %q: host %q is not an IPv4 address (there is no resolver)", raw, u.Hostname())
	}
	port := uint16(80)
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return Target{}, fmt.Errorf("fetch: URL %q: bad port %q", raw, p)
		}
		port = uint16(n)
	}
	path := u.RequestURI()
	if path == "" || path[0] != '/' {
		path = "/" + strings.TrimPrefix(path, "/")
	}
	return Target{Addr: netip.AddrPortFrom(ip, port), Host: u.Host, Path: path}, nil
}

// Request returns the bytes of a GET request for t, asking the server to
// close the connection after its response.
func Request(t Target) []byte {
	return []byte("GET " + t.Path + " HTTP/1.1\r\n" +
		"Host: " + t.Host + "\r\n" +
		"User-Agent: " + UserAgent + "\r\n" +
		"Accept: */*\r\n" +
		"Connection: close\r\n\r\n")
}

// Head is a response's status line and header.
type Head struct {
	Proto  string // "HTTP/1.1"
	Status int
	Reason string
	Header textproto.MIMEHeader
	// ContentLength is the body's length from Content-Length, or -1 when
	// the response gives none.
	ContentLength int64
	// Chunked is whether the body comes in the chunked coding.
	Chunked bool
}

// ReadHead reads a response's head from br: the status line, the header
// fields and the empty line ending them, at most MaxHeadBytes in all.
func ReadHead(br *bufio.Reader) (Head, error) {
	var raw []byte
	lineStart := true // whether the next read begins a line
	for {
		line, err := br.ReadSlice('\n')
		raw = append(raw, line...)
		if len(raw) > MaxHeadBytes {
			return Head{}, fmt.Errorf("fetch: response head over %d bytes", MaxHeadBytes)
		}
		switch {
		case err == bufio.ErrBufferFull:
			lineStart = false
			continue
		case err == io.EOF && len(raw) == 0:
			return Head{}, errors.New("fetch: the server closed the connection without a response")
		case err == io.EOF:
			return Head{}, fmt.Errorf("fetch: the connection closed after %d bytes of the response head", len(raw))
		case err != nil:
			return Head{}, err
		}
		if lineStart && len(raw) > len(line) && (string(line) == "\r\n" || string(line) == "\n") {
			return ParseHead(raw)
		}
		lineStart = true
	}
}

// ParseHead parses a whole response head, its ending empty line included.
func ParseHead(raw []byte) (Head, error) {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	line, err := tp.ReadLine()
	if err != nil {
		return Head{}, fmt.Errorf("fetch: status line: %w", err)
	}
	proto, rest, ok := strings.Cut(line, " ")
	if !ok || (proto != "HTTP/1.1" && proto != "HTTP/1.0") {
		return Head{}, fmt.Errorf("fetch: malformed status line %q", line)
	}
	code, reason, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || status < 100 {
		return Head{}, fmt.Errorf("fetch: malformed status code in %q", line)
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return Head{}, fmt.Errorf("fetch: header: %w", err)
	}
	h := Head{Proto: proto, Status: status, Reason: reason, Header: hdr, ContentLength: -1}
	if te := hdr.Values("Transfer-Encoding"); len(te) > 0 {
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return Head{}, fmt.Errorf("fetch: Transfer-Encoding %q is not built (only chunked)", strings.Join(te, ", "))
		}
		h.Chunked = true
		return h, nil // Content-Length, if any, is ignored (RFC 9112, 6.3)
	}
	if cl := hdr.Values("Content-Length"); len(cl) > 0 {
		for _, v := range cl {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 0 || (h.ContentLength >= 0 && n != h.ContentLength) {
				return Head{}, fmt.Errorf("fetch: bad Content-Length %q", strings.Join(cl, ", "))
			}
			h.ContentLength = n
		}
	}
	return h, nil
}

// hasBody reports whether a response to a GET with this status has a body.
func hasBody(status int) bool {
	return status >= 200 && status != 204 && status != 304
}

// CopyBody copies the body of a response with head h from br to w: to its
// Content-Length, through the chunked coding, or to the end of the
// stream. It returns how many body bytes it wrote.
func CopyBody(h Head, br *bufio.Reader, w io.Writer) (int64, error) {
	if !hasBody(h.Status) {
		return 0, nil
	}
	switch {
	case h.Chunked:
		n, err := io.Copy(w, httputil.NewChunkedReader(br))
		if err != nil {
			return n, fmt.Errorf("fetch: chunked body, after %d bytes: %w", n, unexpected(err))
		}
		return n, nil
	case h.ContentLength >= 0:
		n, err := io.Copy(w, io.LimitReader(br, h.ContentLength))
		if err != nil {
			return n, fmt.Errorf("fetch: body, after %d of %d bytes: %w", n, h.ContentLength, err)
		}
		if n < h.ContentLength {
			return n, fmt.Errorf("fetch: the connection closed after %d of the body's %d bytes", n, h.ContentLength)
		}
		return n, nil
	default:
		n, err := io.Copy(w, br)
		if err != nil {
			return n, fmt.Errorf("fetch: body, after %d bytes: %w", n, err)
		}
		return n, nil
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Result is what one Get did.
type Result struct {
	URL    string `json:"url"`
	Status int    `json:"status"`
	// Bytes counts the body bytes written; SHA256 is their digest, in hex.
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// ElapsedNS is the time from the connect to the body's end, or to the
	// failure.
	ElapsedNS int64 `json:"elapsed_ns"`
	// Error is why the request failed; empty when it did not.
	Error string `json:"error,omitempty"`
}

// ErrTimeout is what a Get that ran out of time fails with.
var ErrTimeout = errors.New("timed out")

// Get sends one GET for rawURL on a new stream socket of api, with
// Connection: close, and copies the response's body to w. The whole
// exchange must end within timeout. The result says what arrived, also
// when Get fails; a status other than 2xx is not an error here.
func Get(api socket.API, rawURL string, w io.Writer, timeout time.Duration) (Result, error) {
	res := Result{URL: rawURL}
	sum := sha256.New()
	start := time.Now()
	err := get(api, rawURL, io.MultiWriter(w, sum), start.Add(timeout), &res)
	res.ElapsedNS = int64(time.Since(start))
	res.SHA256 = hex.EncodeToString(sum.Sum(nil))
	if err != nil {
		res.Error = err.Error()
	}
	return res, err
}

func get(api socket.API, rawURL string, w io.Writer, deadline time.Time, res *Result) error {
	t, err := ParseURL(rawURL)
	if err != nil {
		return err
	}
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return fmt.Errorf("fetch: socket: %w", err)
	}
	defer api.Close(fd)
	c := &sock{api: api, fd: fd, deadline: deadline}
	if err := c.connect(t.Addr); err != nil {
		return fmt.Errorf("fetch: connect to %s: %w", t.Addr, err)
	}
	if err := c.writeAll(Request(t)); err != nil {
		return fmt.Errorf("fetch: send the request to %s: %w", t.Addr, err)
	}
	br := bufio.NewReaderSize(c, readSize)
	var h Head
	for {
		if h, err = ReadHead(br); err != nil {
			return err
		}
		if h.Status >= 200 || h.Status == 101 {
			break
		}
	}
	res.Status = h.Status
	n, err := CopyBody(h, br, w)
	res.Bytes = n
	return err
}

// sock is a non-blocking stream socket of a backend whose reads, writes and
// connect wait in Poll, up to a deadline.
type sock struct {
	api      socket.API
	fd       socket.FD
	deadline time.Time
}

// wait polls the socket for events until the deadline and returns the
// events that came.
func (s *sock) wait(events int16, what string) (int16, error) {
	left := time.Until(s.deadline)
	if left <= 0 {
		return 0, fmt.Errorf("%w %s", ErrTimeout, what)
	}
	pfd := []socket.PollFD{{FD: s.fd, Events: events}}
	if _, err := s.api.Poll(pfd, left); err != nil {
		return 0, fmt.Errorf("poll: %w", err)
	}
	if pfd[0].Revents&socket.POLLNVAL != 0 {
		return 0, unix.EBADF
	}
	return pfd[0].Revents, nil
}

// connect connects the socket, non-blocking, and waits for the outcome.
func (s *sock) connect(to netip.AddrPort) error {
	if err := s.api.SetNonblock(s.fd, true); err != nil {
		return err
	}
	err := s.api.Connect(s.fd, to)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINPROGRESS) {
		return err
	}
	for {
		ev, err := s.wait(socket.POLLOUT, "connecting")
		if err != nil {
			return err
		}
		if ev&(socket.POLLOUT|socket.POLLERR|socket.POLLHUP) == 0 {
			continue
		}
		v, err := s.api.GetsockoptInt(s.fd, socket.SOL_SOCKET, socket.SO_ERROR)
		if err != nil {
			return fmt.Errorf("SO_ERROR: %w", err)
		}
		if v != 0 {
			return unix.Errno(v)
		}
		return nil
	}
}

func (s *sock) writeAll(b []byte) error {
	for len(b) > 0 {
		n, err := s.api.Send(s.fd, b, 0)
		switch {
		case errors.Is(err, unix.EAGAIN) || (err == nil && n == 0):
			if _, err := s.wait(socket.POLLOUT, "sending"); err != nil {
				return err
			}
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return err
		default:
			b = b[n:]
		}
	}
	return nil
}

// Read reads what the socket holds, waiting for some until the deadline;
// it returns io.EOF at the end of the stream.
func (s *sock) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if time.Now().After(s.deadline) {
		return 0, fmt.Errorf("%w receiving", ErrTimeout)
	}
	for {
		n, err := s.api.Recv(s.fd, b, 0)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EAGAIN):
			if _, err := s.wait(socket.POLLIN, "receiving"); err != nil {
				return 0, err
			}
		case errors.Is(err, unix.EINTR):
		default:
			return 0, fmt.Errorf("recv: %w", err)
		}
	}
}

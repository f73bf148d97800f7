package httpd

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/newtsim/newtsim/apps/httpsyntax"
)

// Errors of ParseRequest. A malformed request is answered 400 and an
// unsupported version 505; both end the connection, since the framing of
// what follows is lost.
var (
	// ErrIncomplete reports that the bytes hold no complete request header
	// yet and nothing wrong so far: read more and parse again.
	ErrIncomplete = errors.New("httpd: incomplete request header")
	// ErrMalformed reports a request header that is not HTTP/1.x.
	ErrMalformed = errors.New("httpd: malformed request")
	// ErrVersion reports a well-formed request line of an HTTP version
	// other than 1.x.
	ErrVersion = errors.New("httpd: unsupported HTTP version")
)

// Request is a parsed HTTP/1.x request header: the request line and the
// fields the server acts on. Other fields are checked for syntax and
// dropped.
type Request struct {
	// Method is the request method, case-sensitive ("GET", "HEAD", ...).
	Method string
	// Target is the request-target as sent: an origin-form path with an
	// optional query, an absolute URI, "*" or an authority (CONNECT).
	Target string
	// Major and Minor are the HTTP version; Major is always 1.
	Major, Minor int
	// Host is the Host field's value; HTTP/1.1 requires exactly one.
	Host string
	// Close and KeepAlive report the "close" and "keep-alive" options of
	// the Connection field.
	Close, KeepAlive bool
	// ContentLength is the Content-Length field's value, 0 when absent.
	ContentLength int64
	// Chunked reports a body in the chunked transfer coding.
	Chunked bool
	// IfModifiedSince is the If-Modified-Since field's value, unparsed.
	IfModifiedSince string
}

// Persistent reports whether the connection stays open after the response:
// by default from HTTP/1.1 on unless the client sent Connection: close, and
// for HTTP/1.0 only when it sent Connection: keep-alive.
func (r *Request) Persistent() bool {
	if r.Close {
		return false
	}
	return r.Minor >= 1 || r.KeepAlive
}

// HasBody reports whether a body follows the header.
func (r *Request) HasBody() bool { return r.ContentLength > 0 || r.Chunked }

// maxContentLength bounds Content-Length so that parsing it never
// overflows an int64.
const maxContentLength = 1<<62 - 1

// ParseRequest parses the request header at the start of b. Empty lines
// before the request line are skipped, as RFC 9112 asks, and a bare LF ends
// a line as CRLF does. On success it returns the request and the bytes the
// header took (empty lines included); the body, if any, starts there. While
// b holds only a valid prefix of a header it returns ErrIncomplete; a
// header found wrong returns an error wrapping ErrMalformed or ErrVersion,
// as soon as the first wrong line is complete. The consumed count is 0
// whenever the error is not nil. ParseRequest keeps no reference to b.
func ParseRequest(b []byte) (Request, int, error) {
	var r Request
	i := 0
	for i < len(b) {
		if b[i] == '\n' {
			i++
		} else if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			i += 2
		} else {
			break
		}
	}
	line, i, err := nextLine(b, i)
	if err != nil {
		return Request{}, 0, err
	}
	if err := r.parseRequestLine(line); err != nil {
		return Request{}, 0, err
	}
	hosts, lengths, te := 0, 0, false
	for {
		line, i, err = nextLine(b, i)
		if err != nil {
			return Request{}, 0, err
		}
		if len(line) == 0 {
			break
		}
		name, value, err := splitField(line)
		if err != nil {
			return Request{}, 0, err
		}
		switch {
		case httpsyntax.EqualFold(name, "host"):
			hosts++
			r.Host = string(value)
		case httpsyntax.EqualFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || lengths > 0 && n != r.ContentLength {
				return Request{}, 0, fmt.Errorf("%w: Content-Length %q", ErrMalformed, value)
			}
			lengths++
			r.ContentLength = n
		case httpsyntax.EqualFold(name, "transfer-encoding"):
			// The last coding must be chunked (RFC 9112 §6.3).
			if !httpsyntax.EqualFold(lastElement(value), "chunked") {
				return Request{}, 0, fmt.Errorf("%w: Transfer-Encoding %q", ErrMalformed, value)
			}
			te = true
			r.Chunked = true
		case httpsyntax.EqualFold(name, "connection"):
			for rest := value; len(rest) > 0; {
				var opt []byte
				opt, rest = nextElement(rest)
				switch {
				case httpsyntax.EqualFold(opt, "close"):
					r.Close = true
				case httpsyntax.EqualFold(opt, "keep-alive"):
					r.KeepAlive = true
				}
			}
		case httpsyntax.EqualFold(name, "if-modified-since"):
			r.IfModifiedSince = string(value)
		}
	}
	switch {
	case hosts > 1:
		return Request{}, 0, fmt.Errorf("%w: %d Host fields", ErrMalformed, hosts)
	case hosts == 0 && r.Minor >= 1:
		return Request{}, 0, fmt.Errorf("%w: HTTP/1.1 request without Host", ErrMalformed)
	case te && lengths > 0:
		// Both framings at once is how requests are smuggled.
		return Request{}, 0, fmt.Errorf("%w: both Transfer-Encoding and Content-Length", ErrMalformed)
	case te && r.Minor == 0:
		return Request{}, 0, fmt.Errorf("%w: Transfer-Encoding in an HTTP/1.0 request", ErrMalformed)
	}
	return r, i, nil
}

// nextLine returns the line starting at b[i], without its CRLF or LF, and
// the index after its end. It fails with ErrIncomplete where no line end
// follows yet, and with ErrMalformed where the line, even a partial one,
// holds a control character other than HTAB, such as a bare CR.
func nextLine(b []byte, i int) (line []byte, next int, err error) {
	for j := i; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '\n':
			return b[i:j], j + 1, nil
		case c == '\r':
			if j+1 == len(b) {
				return nil, 0, ErrIncomplete
			}
			if b[j+1] != '\n' {
				return nil, 0, fmt.Errorf("%w: bare CR", ErrMalformed)
			}
			return b[i:j], j + 2, nil
		case c < ' ' && c != '\t' || c == 0x7f:
			return nil, 0, fmt.Errorf("%w: control character %#02x", ErrMalformed, c)
		}
	}
	return nil, 0, ErrIncomplete
}

// parseRequestLine parses "method SP request-target SP HTTP-version".
func (r *Request) parseRequestLine(line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return fmt.Errorf("%w: request line %q", ErrMalformed, line)
	}
	method, rest := line[:sp1], line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return fmt.Errorf("%w: request line %q", ErrMalformed, line)
	}
	target, version := rest[:sp2], rest[sp2+1:]
	if !httpsyntax.IsToken(method) {
		return fmt.Errorf("%w: method %q", ErrMalformed, method)
	}
	if !validTarget(method, target) {
		return fmt.Errorf("%w: request target %q", ErrMalformed, target)
	}
	if len(version) != len("HTTP/1.1") || string(version[:5]) != "HTTP/" ||
		!isDigit(version[5]) || version[6] != '.' || !isDigit(version[7]) {
		return fmt.Errorf("%w: version %q", ErrMalformed, version)
	}
	r.Major, r.Minor = int(version[5]-'0'), int(version[7]-'0')
	if r.Major != 1 {
		return fmt.Errorf("%w: %s", ErrVersion, version)
	}
	r.Method = internMethod(method)
	r.Target = string(target)
	return nil
}

// validTarget checks the request-target's form (RFC 9112 §3.2): a target
// has no spaces or controls (nextLine and the split saw to that) and is an
// origin-form path, an absolute URI, "*", or for CONNECT an authority.
func validTarget(method, t []byte) bool {
	switch {
	case len(t) == 0:
		return false
	case t[0] == '/':
		return true
	case len(t) == 1 && t[0] == '*':
		return true
	case string(method) == "CONNECT":
		return true
	}
	return hasSchemePrefix(t)
}

// hasSchemePrefix reports whether t starts with "scheme://".
func hasSchemePrefix(t []byte) bool {
	for i, c := range t {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (isDigit(c) || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return len(t) > i+2 && t[i+1] == '/' && t[i+2] == '/'
		default:
			return false
		}
	}
	return false
}

// internMethod returns the method as a string, without allocating for the
// registered methods.
func internMethod(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "OPTIONS":
		return "OPTIONS"
	case "PATCH":
		return "PATCH"
	case "TRACE":
		return "TRACE"
	case "CONNECT":
		return "CONNECT"
	}
	return string(m)
}

// splitField splits "name: value" into the name and the value without
// surrounding whitespace. Whitespace before the colon and obsolete line
// folding are rejected, as RFC 9112 §5 asks of servers.
func splitField(line []byte) (name, value []byte, err error) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !httpsyntax.IsToken(line[:colon]) {
		return nil, nil, fmt.Errorf("%w: header field %q", ErrMalformed, line)
	}
	return line[:colon], httpsyntax.TrimOWS(line[colon+1:]), nil
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
		if n > maxContentLength {
			return 0, false
		}
	}
	return n, true
}

// nextElement returns the first element of a comma-separated list, without
// surrounding whitespace, and the rest of the list.
func nextElement(list []byte) (elem, rest []byte) {
	if i := bytes.IndexByte(list, ','); i >= 0 {
		return httpsyntax.TrimOWS(list[:i]), list[i+1:]
	}
	return httpsyntax.TrimOWS(list), nil
}

// lastElement returns the last element of a comma-separated list.
func lastElement(list []byte) []byte {
	return httpsyntax.TrimOWS(list[bytes.LastIndexByte(list, ',')+1:])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

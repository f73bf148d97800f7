package loadgen

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/newtsim/newtsim/apps/httpsyntax"
)

// maxHeadLen bounds a response head (status line and header fields); a
// longer one is a protocol error rather than a reason to buffer without end.
const maxHeadLen = 64 << 10

var (
	// errIncomplete reports that the bytes so far begin a response head
	// but do not hold all of it.
	errIncomplete = errors.New("incomplete response head")
	errNotHTTP    = errors.New("not an HTTP/1.x response")
	errHeadLen    = fmt.Errorf("response head longer than %d bytes", maxHeadLen)
	errNoLength   = errors.New("response on a kept-alive connection has no Content-Length")
	errChunked    = errors.New("response on a kept-alive connection has a Transfer-Encoding (chunked bodies are not supported)")
)

// response is the head of an HTTP/1.x response, as far as a client that
// discards bodies needs it.
type response struct {
	status int
	// contentLength is the Content-Length, or -1 where there is none.
	contentLength int64
	// close says the server closes the connection after this response:
	// Connection: close, or HTTP/1.0 without Connection: keep-alive.
	close bool
	// transferEncoding says a Transfer-Encoding field is present.
	transferEncoding bool
}

// parseResponse parses the response head at the start of b: the status line
// and the header fields up to and including the blank line that ends them.
// It returns the head and its length in bytes. Where b is a proper prefix of
// a head it returns errIncomplete, and more bytes may complete it; any other
// error is final, whatever bytes follow. Bytes after the head (the body, or
// further responses) are not looked at, so the result for a complete head
// does not depend on them.
//
// parseResponse does not allocate, except to describe an error.
func parseResponse(b []byte) (response, int, error) {
	const proto = "HTTP/1."
	// Reject garbage as soon as it arrives rather than when a blank line
	// happens to follow it.
	if k := min(len(b), len(proto)); string(b[:k]) != proto[:k] {
		return response{}, 0, errNotHTTP
	}
	n := headLen(b[:min(len(b), maxHeadLen)])
	if n < 0 {
		if len(b) >= maxHeadLen {
			return response{}, 0, errHeadLen
		}
		return response{}, 0, errIncomplete
	}
	r, err := parseHead(b[:n])
	if err != nil {
		return response{}, 0, err
	}
	return r, n, nil
}

// headLen returns the length of the head at the start of b, up to the end of
// its first empty line (CRLF or a bare LF), or -1 where b holds none.
func headLen(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
}

// parseHead parses a whole head, h ending with its blank line.
func parseHead(h []byte) (response, error) {
	line, rest := cutLine(h)
	status, http10, err := parseStatusLine(line)
	if err != nil {
		return response{}, err
	}
	r := response{status: status, contentLength: -1}
	var closeToken, keepAlive bool
	for {
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break
		}
		name, value, err := parseField(line)
		if err != nil {
			return response{}, err
		}
		switch {
		case httpsyntax.EqualFold(name, "content-length"):
			n, err := parseContentLength(value)
			if err != nil {
				return response{}, err
			}
			if r.contentLength >= 0 && n != r.contentLength {
				return response{}, fmt.Errorf("conflicting Content-Length fields %d and %d", r.contentLength, n)
			}
			r.contentLength = n
		case httpsyntax.EqualFold(name, "connection"):
			for len(value) > 0 {
				var tok []byte
				if i := bytes.IndexByte(value, ','); i >= 0 {
					tok, value = value[:i], value[i+1:]
				} else {
					tok, value = value, nil
				}
				tok = httpsyntax.TrimOWS(tok)
				closeToken = closeToken || httpsyntax.EqualFold(tok, "close")
				keepAlive = keepAlive || httpsyntax.EqualFold(tok, "keep-alive")
			}
		case httpsyntax.EqualFold(name, "transfer-encoding"):
			r.transferEncoding = true
		}
	}
	if r.transferEncoding && r.contentLength >= 0 {
		// RFC 9112, section 6.3: a client ought to treat this as an error.
		return response{}, errors.New("response has both Transfer-Encoding and Content-Length")
	}
	r.close = closeToken || http10 && !keepAlive
	return r, nil
}

// parseStatusLine parses "HTTP/1.x NNN reason" and says whether the version
// is 1.0.
func parseStatusLine(line []byte) (status int, http10 bool, err error) {
	// "HTTP/1.1 200" is the shortest; the reason phrase may be empty.
	if len(line) < 12 || string(line[:7]) != "HTTP/1." ||
		line[7] != '0' && line[7] != '1' || line[8] != ' ' ||
		len(line) > 12 && line[12] != ' ' {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, false, fmt.Errorf("malformed status code in %q", line)
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 || status > 599 {
		return 0, false, fmt.Errorf("status code %d out of range", status)
	}
	for _, c := range line[12:] {
		if isCTL(c) {
			return 0, false, fmt.Errorf("control byte %#x in status line", c)
		}
	}
	return status, line[7] == '0', nil
}

// parseField splits "Name: value" and checks both parts. A line that begins
// with white space (obsolete line folding) fails, as a name must be a token.
func parseField(line []byte) (name, value []byte, err error) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, fmt.Errorf("malformed header field %q", line)
	}
	name, value = line[:i], httpsyntax.TrimOWS(line[i+1:])
	for _, c := range name {
		if !httpsyntax.IsTokenByte(c) {
			return nil, nil, fmt.Errorf("malformed header field name %q", name)
		}
	}
	for _, c := range value {
		if isCTL(c) {
			return nil, nil, fmt.Errorf("control byte %#x in header field %q", c, name)
		}
	}
	return name, value, nil
}

// parseContentLength parses a Content-Length value: decimal digits, few
// enough not to overflow.
func parseContentLength(v []byte) (int64, error) {
	if len(v) == 0 || len(v) > 18 {
		return 0, fmt.Errorf("invalid Content-Length %q", v)
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid Content-Length %q", v)
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// bodyLength returns how many bytes of body follow the head r, or -1 where
// the body runs to the end of the connection.
func (r response) bodyLength() (int64, error) {
	switch {
	case r.status < 200 || r.status == 204 || r.status == 304:
		return 0, nil
	case r.transferEncoding && r.close:
		// The server's close ends the body; its framing need not be read.
		return -1, nil
	case r.transferEncoding:
		return 0, errChunked
	case r.contentLength >= 0:
		return r.contentLength, nil
	case r.close:
		return -1, nil
	default:
		return 0, errNoLength
	}
}

// cutLine returns the line at the start of b, without its LF or CRLF, and
// what follows it.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// isCTL reports whether c is a control byte other than a tab.
func isCTL(c byte) bool { return c < ' ' && c != '\t' || c == 0x7f }

package httpd

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// serverField is the Server field of every response.
const serverField = "Server: newtsim-httpd\r\n"

// respond queues the response to a well-formed request.
func (s *Server) respond(c *conn, req *Request, now time.Time) {
	head := req.Method == http.MethodHead
	switch {
	case req.HasBody():
		// The body is not read, so the connection's framing is lost.
		s.queueError(c, http.StatusRequestEntityTooLarge, head, now)
		return
	case req.Method != http.MethodGet && !head:
		e := errorResponses[http.StatusMethodNotAllowed]
		s.queueResponse(c, http.StatusMethodNotAllowed, req, e.fields, e.body, head, now)
		return
	}
	p, ok := filePath(req.Target)
	if !ok {
		s.queueError(c, http.StatusBadRequest, head, now)
		return
	}
	f := s.files[p]
	switch {
	case f == nil:
		e := errorResponses[http.StatusNotFound]
		s.queueResponse(c, http.StatusNotFound, req, e.fields, e.body, head, now)
	case notModified(f, req.IfModifiedSince):
		s.queueResponse(c, http.StatusNotModified, req, f.lastModified, nil, true, now)
	default:
		s.queueResponse(c, http.StatusOK, req, f.fields, f.body, head, now)
	}
}

// notModified reports whether a file has not changed since an
// If-Modified-Since value; an invalid date is ignored, as RFC 9110 asks.
func notModified(f *file, ims string) bool {
	if ims == "" {
		return false
	}
	t, err := http.ParseTime(ims)
	return err == nil && !f.modTime.After(t)
}

// queueError queues an error response after which the connection ends:
// the request, if there was one, is not in hand.
func (s *Server) queueError(c *conn, status int, head bool, now time.Time) {
	c.closeAfter = true
	e := errorResponses[status]
	s.queueResponse(c, status, nil, e.fields, e.body, head, now)
}

// errorResponse is the fields and body of an error response; the body is
// the status line as text.
type errorResponse struct{ fields, body []byte }

// errorResponses holds the error responses the server sends, by status.
var errorResponses = func() map[int]errorResponse {
	m := map[int]errorResponse{}
	for _, status := range []int{
		http.StatusBadRequest,
		http.StatusNotFound,
		http.StatusMethodNotAllowed,
		http.StatusRequestTimeout,
		http.StatusRequestEntityTooLarge,
		http.StatusRequestHeaderFieldsTooLarge,
		http.StatusHTTPVersionNotSupported,
	} {
		body := fmt.Appendf(nil, "%d %s\n", status, http.StatusText(status))
		fields := fmt.Appendf(nil, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n", len(body))
		if status == http.StatusMethodNotAllowed {
			fields = append(fields, "Allow: GET, HEAD\r\n"...)
		}
		m[status] = errorResponse{fields, body}
	}
	return m
}()

// queueResponse appends a response to the connection's queue: the status
// line, fields, the Date, Server and Connection fields, and body unless
// head. req is nil where no request was parsed. The response ends the
// connection if the request does not keep it.
func (s *Server) queueResponse(c *conn, status int, req *Request, fields, body []byte, head bool, now time.Time) {
	if req != nil && !req.Persistent() {
		c.closeAfter = true
	}
	b := append(c.hdr, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\n"...)
	b = append(b, fields...)
	b = append(b, s.date(now)...)
	b = append(b, serverField...)
	switch {
	case c.closeAfter:
		b = append(b, "Connection: close\r\n"...)
	case req != nil && req.Minor == 0:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	c.hdr = b
	if head {
		body = nil
	}
	c.queue = append(c.queue, queued{hdrEnd: len(c.hdr), body: body})
	s.ctr.count(status)
}

// date returns the Date field for now, formatted once a second.
func (s *Server) date(now time.Time) []byte {
	if sec := now.Unix(); sec != s.dateSec {
		s.dateSec = sec
		s.dateLine = append(s.dateLine[:0], "Date: "...)
		s.dateLine = now.UTC().AppendFormat(s.dateLine, http.TimeFormat)
		s.dateLine = append(s.dateLine, "\r\n"...)
	}
	return s.dateLine
}

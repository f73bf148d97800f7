// Package httpd is a static file server in the manner of lighttpd, written
// only against the socket library (socket.API), so the same program runs
// on every backend. It serves the files of a directory, read into memory
// once at start, over HTTP/1.1 with keep-alive and pipelining.
//
// A Server is one goroutine: an event loop over Poll, a non-blocking
// listening socket from which it accepts a bounded number of connections
// per round, and a state machine per non-blocking connection (reading a
// request, writing responses, lingering before the close). Each response
// goes out, header and body together, in one Writev while the socket takes
// it; the rest of a partial write goes on when the socket is writable
// again, and the responses to pipelined requests go out together, in
// order.
//
// The server answers GET and HEAD with 200 or, for an If-Modified-Since
// not older than the file, 304; a path ending in "/" names its
// directory's index.html. Otherwise it answers 404 (no such file), 405
// (another method), 400 (a malformed request), 408 (a request that takes
// longer than Config.Timeout to arrive, or arrives below
// Config.MinHeaderRate after Config.HeaderGrace), 413 (a request with a body),
// 431 (a header over Config.MaxHeaderBytes) or 505 (not HTTP/1.x); all
// but 404 and 405 end the connection. Requests with a body are not
// accepted at all: a Content-Length above zero or a chunked body is
// answered 413 without reading the body.
//
// So that slow clients cannot lock others out, from Config.PressureConns
// open connections the header timeout drops to Config.PressureTimeout,
// and at Config.MaxConns a new connection is accepted by closing
// (shedding) the one idle longest among those whose request header has
// not arrived whole; connections idle between requests and those being
// answered are kept. With none to shed, new connections are accepted and
// closed at once. Both come with a log line at most once a second.
// docs/HTTPD.md says why it is built so.
//
// Not built: range requests, ETag and If-None-Match, content codings,
// directory listings and the redirect from a directory's path without its
// "/", and a bound on the requests per connection.
package httpd

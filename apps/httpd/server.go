package httpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
)

// Defaults of the Config fields left zero.
const (
	DefaultMaxConns       = 1024
	DefaultAcceptPerRound = 100 // as lighttpd
	DefaultBacklog        = 1024
	DefaultMaxHeaderBytes = 8 << 10 // as lighttpd
	DefaultTimeout        = 60 * time.Second
	DefaultIdleTimeout    = 5 * time.Second
	// DefaultPressureTimeout is the header timeout under pressure, as
	// short as the idle timeout.
	DefaultPressureTimeout = 5 * time.Second
	// DefaultHeaderGrace and DefaultMinHeaderRate give a request header
	// 10 s, and 1 s more for each 500 bytes of it received (as Apache's
	// mod_reqtimeout gives 20 s, and 1 s more for each 500 bytes).
	DefaultHeaderGrace   = 10 * time.Second
	DefaultMinHeaderRate = 500
)

const (
	// pollInterval bounds a Poll, so that Serve sees its context end and
	// timeouts pass.
	pollInterval = 20 * time.Millisecond
	// lingerTimeout bounds how long a connection that is done waits for the
	// client to close its side.
	lingerTimeout = 2 * time.Second
	// acceptPause is how long accepting pauses after accept fails.
	acceptPause = 100 * time.Millisecond
	// minReadSize is the least a connection reads at once.
	minReadSize = 16 << 10
	// maxFree bounds the closed connections kept for reuse.
	maxFree = 64
	// maxBatch bounds the pipelined responses that go out in one Writev.
	maxBatch = 32
)

// Config configures a Server. API and Files are required.
type Config struct {
	// API is the socket library's backend. The server is its only user
	// while it serves: backends are not safe for concurrent use.
	API socket.API
	// Addr is the address to listen on; port 0 picks a free port (see
	// Server.Addr).
	Addr netip.AddrPort
	// Files holds the files to serve, read once by New: os.DirFS(dir)
	// serves a directory. A file's path in Files is its URL path, and an
	// index.html is also served for its directory's path ending in "/".
	Files fs.FS
	// MaxConns bounds the connections open at once. At the limit, a new
	// connection is accepted by shedding the connection idle longest
	// among those whose request header has not arrived whole: a partial
	// request, or a new connection yet to send one. Connections idle
	// between requests, and those being answered, are never shed; with
	// none to shed, the new connection is closed at once (refused).
	// Default DefaultMaxConns.
	MaxConns int
	// PressureConns is the number of open connections from which the
	// server is under pressure: the header timeout is then
	// PressureTimeout, until fewer are open again. Default 7/8 of
	// MaxConns; above MaxConns, the server is never under pressure.
	PressureConns int
	// PressureTimeout is the header timeout under pressure: how long a
	// request may take to arrive, from its first byte, while
	// PressureConns connections or more are open. Default
	// DefaultPressureTimeout.
	PressureTimeout time.Duration
	// HeaderGrace and MinHeaderRate bound how slowly a request may
	// arrive: a request header has HeaderGrace from its first byte, and
	// one second more for each MinHeaderRate bytes of it received, before
	// it is answered 408 (and the connection closed) as too slow; so a
	// client past the grace must keep sending MinHeaderRate bytes a
	// second. Timeout (PressureTimeout under pressure) bounds it still.
	// Defaults DefaultHeaderGrace and DefaultMinHeaderRate (bytes per
	// second); a negative MinHeaderRate turns the bound off.
	HeaderGrace   time.Duration
	MinHeaderRate int
	// AcceptPerRound bounds the connections accepted in one round of the
	// event loop, so that open connections are served between bursts.
	// Default DefaultAcceptPerRound.
	AcceptPerRound int
	// Backlog is the listen backlog. Default DefaultBacklog.
	Backlog int
	// SendBuffer, if not zero, is the SO_SNDBUF of each connection: how
	// much of a response the socket takes before a write is partial.
	SendBuffer int
	// MaxHeaderBytes bounds a request header, request line included;
	// beyond it the request is answered 431. Default
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Timeout is how long a request may take to arrive, from its first
	// byte, before it is answered 408 and the connection closed; it also
	// bounds how long a client may leave a response unread. Default
	// DefaultTimeout.
	Timeout time.Duration
	// IdleTimeout is how long a connection may wait for its next request
	// (or its first) before it is closed, silently. Default
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Clock tells the time, for timeouts and the Date field. Default
	// time.Now.
	Clock func() time.Time
	// Log receives the server's few log lines. Default: none.
	Log *log.Logger
}

// Server is a static file server. Serve runs it; Addr and Stats may be
// called from any goroutine.
type Server struct {
	api            socket.API
	ln             socket.FD // -1 while the listening socket is to be opened again
	addr           netip.AddrPort
	backlog        int
	files          map[string]*file
	maxConns       int
	acceptPerRound int
	maxHeader      int
	sendBuffer     int
	readSize       int
	timeout        time.Duration
	idleTimeout    time.Duration
	// pressureConns and pressureTimeout are Config's; minHeaderRate is 0
	// where there is no minimum.
	pressureConns   int
	pressureTimeout time.Duration
	headerGrace     time.Duration
	minHeaderRate   int
	clock           func() time.Time
	log             *log.Logger

	conns   []*conn // open, in the order of pfds[1:]
	open    int     // conns not closed
	free    []*conn // closed, for reuse with their buffers
	pfds    []socket.PollFD
	scratch []byte // where lingering connections' input goes

	dateSec  int64
	dateLine []byte // "Date: ...\r\n" for the second dateSec

	lastRefusedLog time.Time
	lastShedLog    time.Time
	lastAcceptLog  time.Time
	// acceptAfter pauses accepting after a failure such as running out of
	// descriptors, which leaves the listening socket ready: the
	// connections wait in the backlog rather than the loop spinning.
	acceptAfter time.Time
	closed      bool

	ctr counters
}

// New reads the files, then opens a non-blocking socket listening on
// c.Addr. The server owns the socket until Serve returns or Close is
// called.
func New(c Config) (*Server, error) {
	if c.API == nil {
		return nil, errors.New("httpd: Config.API is nil")
	}
	if c.Files == nil {
		return nil, errors.New("httpd: Config.Files is nil")
	}
	s := &Server{
		api:             c.API,
		ln:              -1,
		maxConns:        orDefault(c.MaxConns, DefaultMaxConns),
		acceptPerRound:  orDefault(c.AcceptPerRound, DefaultAcceptPerRound),
		maxHeader:       orDefault(c.MaxHeaderBytes, DefaultMaxHeaderBytes),
		sendBuffer:      c.SendBuffer,
		timeout:         orDefault(c.Timeout, DefaultTimeout),
		idleTimeout:     orDefault(c.IdleTimeout, DefaultIdleTimeout),
		pressureTimeout: orDefault(c.PressureTimeout, DefaultPressureTimeout),
		headerGrace:     orDefault(c.HeaderGrace, DefaultHeaderGrace),
		minHeaderRate:   orDefault(c.MinHeaderRate, DefaultMinHeaderRate),
		clock:           c.Clock,
		log:             c.Log,
		dateSec:         -1,
	}
	s.pressureConns = orDefault(c.PressureConns, s.maxConns-s.maxConns/8)
	if c.MinHeaderRate < 0 {
		s.minHeaderRate = 0
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = log.New(io.Discard, "", 0)
	}
	// The read buffer holds a header one byte over the limit, to tell it
	// from one at the limit.
	s.readSize = max(s.maxHeader+1, minReadSize)
	s.scratch = make([]byte, minReadSize)
	files, n, total, err := loadFiles(c.Files)
	if err != nil {
		return nil, err
	}
	s.files = files
	s.backlog = orDefault(c.Backlog, DefaultBacklog)
	if err := s.listen(c.Addr, s.backlog); err != nil {
		return nil, err
	}
	s.log.Printf("httpd: %d files (%d bytes) on http://%s", n, total, s.addr)
	return s, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// listen opens, binds and listens on the server's socket.
func (s *Server) listen(addr netip.AddrPort, backlog int) error {
	fd, err := s.api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return fmt.Errorf("httpd: socket: %w", err)
	}
	err = s.api.SetsockoptInt(fd, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	if err != nil {
		err = fmt.Errorf("httpd: SO_REUSEADDR: %w", err)
	} else if err = s.api.Bind(fd, addr); err != nil {
		err = fmt.Errorf("httpd: bind %s: %w", addr, err)
	} else if err = s.api.Listen(fd, backlog); err != nil {
		err = fmt.Errorf("httpd: listen on %s: %w", addr, err)
	} else if err = s.api.SetNonblock(fd, true); err != nil {
		err = fmt.Errorf("httpd: listening socket non-blocking: %w", err)
	} else if s.addr, err = s.api.LocalAddr(fd); err != nil {
		err = fmt.Errorf("httpd: listening address: %w", err)
	}
	if err != nil {
		s.api.Close(fd)
		return err
	}
	s.ln = fd
	return nil
}

// relisten opens the listening socket again, on the address it had, after
// the stack reset it: its transport server restarted, or syscall with the
// descriptors (docs/RECOVERY.md). The connections open are the stack's to
// reset; new ones are served as soon as the socket is back. A stack still
// restarting refuses: accepting pauses, then tries again.
func (s *Server) relisten(now time.Time, why error) {
	if s.ln >= 0 {
		s.api.Close(s.ln)
		s.ln = -1
		s.log.Printf("httpd: listening socket: %v: opening it again", why)
	}
	if err := s.listen(s.addr, s.backlog); err != nil {
		s.acceptAfter = now.Add(acceptPause)
		if now.Sub(s.lastAcceptLog) >= time.Second {
			s.lastAcceptLog = now
			s.log.Printf("%v (trying again in %v)", err, acceptPause)
		}
		return
	}
	s.ctr.relistens.Add(1)
}

// listenerGone reports whether err from accept says the listening socket
// itself is gone, reset with its transport.
func listenerGone(err error) bool {
	return errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EBADF) || errors.Is(err, unix.ENOTSOCK)
}

// Addr returns the address the server listens on, its port chosen.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Serve runs the event loop until ctx is done, then closes the listening
// socket and every connection and returns nil. It returns an error, having
// closed them too, if polling or the listening socket fails. Serve may be
// called once.
func (s *Server) Serve(ctx context.Context) error {
	if s.closed {
		return errors.New("httpd: Serve on a closed server")
	}
	defer s.Close()
	for ctx.Err() == nil {
		if err := s.round(); err != nil {
			return err
		}
	}
	return nil
}

// round is one turn of the event loop: poll, serve the ready connections,
// accept new ones, end those past their timeouts.
func (s *Server) round() error {
	var lnEvents int16 = socket.POLLIN
	if s.clock().Before(s.acceptAfter) {
		lnEvents = 0
	} else if s.ln < 0 {
		s.relisten(s.clock(), nil)
	}
	s.pfds = append(s.pfds[:0], socket.PollFD{FD: s.ln, Events: lnEvents})
	for _, c := range s.conns {
		s.pfds = append(s.pfds, socket.PollFD{FD: c.fd, Events: c.events()})
	}
	n, err := s.api.Poll(s.pfds, pollInterval)
	if err != nil {
		return fmt.Errorf("httpd: poll: %w", err)
	}
	now := s.clock()
	if n > 0 {
		for i, c := range s.conns {
			if ev := s.pfds[i+1].Revents; ev != 0 {
				s.handle(c, ev, now)
			}
		}
		switch ev := s.pfds[0].Revents; {
		case s.ln < 0:
		case ev&socket.POLLNVAL != 0:
			s.relisten(now, unix.EBADF)
		case ev != 0 && !now.Before(s.acceptAfter):
			s.accept(now)
		}
	}
	s.expire(now)
	s.reap()
	return nil
}

// accept takes up to acceptPerRound connections from the listening socket.
// At maxConns, each sheds an unfinished request to make room, or, with
// none to shed, is closed at once.
func (s *Server) accept(now time.Time) {
	for range s.acceptPerRound {
		fd, peer, err := s.api.Accept(s.ln)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.ECONNABORTED), errors.Is(err, unix.EINTR):
			continue
		case listenerGone(err):
			s.relisten(now, err)
			return
		case err != nil:
			// Out of descriptors or memory, most likely: the connection
			// waits in the backlog a while.
			s.acceptAfter = now.Add(acceptPause)
			if now.Sub(s.lastAcceptLog) >= time.Second {
				s.lastAcceptLog = now
				s.log.Printf("httpd: accept: %v (pausing %v)", err, acceptPause)
			}
			return
		}
		if s.open >= s.maxConns && !s.shed(now) {
			s.api.Close(fd)
			// The count is published after the log line it names (only
			// this loop writes it), so whoever sees it sees the line.
			refused := s.ctr.refused.Load() + 1
			if now.Sub(s.lastRefusedLog) >= time.Second {
				s.lastRefusedLog = now
				s.log.Printf("httpd: at the limit of %d connections: refusing new ones (%d refused so far)",
					s.maxConns, refused)
			}
			s.ctr.refused.Store(refused)
			continue
		}
		if err := s.api.SetNonblock(fd, true); err != nil {
			s.log.Printf("httpd: connection from %s: non-blocking: %v", peer, err)
			s.api.Close(fd)
			continue
		}
		if s.sendBuffer > 0 {
			if err := s.api.SetsockoptInt(fd, socket.SOL_SOCKET, socket.SO_SNDBUF, s.sendBuffer); err != nil {
				s.log.Printf("httpd: connection from %s: SO_SNDBUF: %v", peer, err)
				s.api.Close(fd)
				continue
			}
		}
		// Responses go out whole, so Nagle's algorithm only delays them.
		// A backend without the option loses nothing but that.
		_ = s.api.SetsockoptInt(fd, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
		s.conns = append(s.conns, s.newConn(fd, peer, now))
		s.open++
		s.ctr.accepted.Add(1)
		s.ctr.open.Add(1)
	}
}

// shed closes the connection idle longest among those whose request
// header is unfinished, to make room for a new one, and reports whether
// there was one. Of those idle as long, the one accepted first goes.
func (s *Server) shed(now time.Time) bool {
	var victim *conn
	for _, c := range s.conns {
		if c.unfinished() && (victim == nil || c.lastIn.Before(victim.lastIn)) {
			victim = c
		}
	}
	if victim == nil {
		return false
	}
	s.close(victim)
	shed := s.ctr.shed.Add(1)
	if now.Sub(s.lastShedLog) >= time.Second {
		s.lastShedLog = now
		s.log.Printf("httpd: at the limit of %d connections: shedding the unfinished requests idle longest (%d shed so far)",
			s.maxConns, shed)
	}
	return true
}

// expire ends the connections whose wait has lasted too long: a request
// that does not arrive whole in time, or arrives too slowly, gets 408; an
// idle connection, a response left unread and a lingering close just end.
func (s *Server) expire(now time.Time) {
	headerTimeout := s.timeout
	if s.open >= s.pressureConns {
		headerTimeout = min(headerTimeout, s.pressureTimeout)
	}
	for _, c := range s.conns {
		waited := now.Sub(c.since)
		switch c.state {
		case stateRead:
			if c.off < len(c.in) {
				slow := s.tooSlow(len(c.in)-c.off, waited)
				if waited >= headerTimeout || slow {
					s.ctr.timeouts.Add(1)
					if slow && waited < headerTimeout {
						s.ctr.slow.Add(1)
					}
					s.queueError(c, http.StatusRequestTimeout, false, now)
					s.startWrite(c, now)
				}
			} else if waited >= s.idleTimeout {
				s.ctr.timeouts.Add(1)
				s.close(c)
			}
		case stateWrite:
			if waited >= s.timeout {
				s.ctr.timeouts.Add(1)
				s.close(c)
			}
		case stateLinger:
			if waited >= lingerTimeout {
				s.close(c)
			}
		}
	}
}

// tooSlow reports whether a request header of which n bytes have come in
// the time waited since its first byte arrives more slowly than the
// minimum rate allows.
func (s *Server) tooSlow(n int, waited time.Duration) bool {
	if s.minHeaderRate == 0 {
		return false
	}
	return waited >= s.headerGrace+time.Duration(n)*time.Second/time.Duration(s.minHeaderRate)
}

// reap drops the closed connections from conns, keeping the order, and
// keeps them for reuse.
func (s *Server) reap() {
	open := s.conns[:0]
	for _, c := range s.conns {
		if c.state != stateClosed {
			open = append(open, c)
		} else if len(s.free) < maxFree {
			s.free = append(s.free, c)
		}
	}
	clear(s.conns[len(open):])
	s.conns = open
}

// Close closes the listening socket and every connection. Serve calls it
// as it returns; call it only for a server never served.
func (s *Server) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	for _, c := range s.conns {
		if c.state != stateClosed {
			s.close(c)
		}
	}
	s.reap()
	if s.ln < 0 {
		return nil
	}
	if err := s.api.Close(s.ln); err != nil {
		return fmt.Errorf("httpd: closing the listening socket: %w", err)
	}
	return nil
}

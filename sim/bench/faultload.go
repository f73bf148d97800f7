package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The load of bench faults: HTTP/1.1 requests for a small file, issued
// back to back by a few workers in the launcher process, each on a socket
// made in the run's namespace, every request's outcome timestamped. Some
// workers keep a connection alive across requests, the others open a new
// connection for each request; any failure closes the connection, and the
// worker pauses faultRetryPause before its next request.

// outcome is how a request ended.
type outcome uint8

// Outcomes of a request. The first is success; the others are failures,
// by what failed.
const (
	outOK       outcome = iota
	outConnect          // the connection could not be opened (not refused)
	outRefused          // the connection was refused (RST to the SYN)
	outReset            // ECONNRESET or EPIPE on an established connection
	outEOF              // the connection ended before the whole response
	outTimeout          // no whole response within the request timeout
	outStatus           // a response that was not 200 with the whole file
	outProtocol         // a response that could not be parsed
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "connect", "refused", "reset", "eof", "timeout", "status", "protocol"}

func (o outcome) String() string { return outcomeNames[o] }

// lost reports whether an established connection died with o: reset by
// the peer, ended in the middle of a response, or silent past the timeout.
func (o outcome) lost() bool { return o == outReset || o == outEOF || o == outTimeout }

// reqRecord is one request's account. Times are offsets from the load's
// start.
type reqRecord struct {
	start, end time.Duration
	// established: the request was sent on an open connection (a failed
	// connect is not).
	established bool
	keepalive   bool // by a worker that keeps its connection
	out         outcome
}

// classify names the failure err is, on an established connection or
// while connecting.
func classify(err error, established bool) outcome {
	switch {
	case err == nil:
		return outOK
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return outTimeout
	case !established && errors.Is(err, syscall.ECONNREFUSED):
		return outRefused
	case !established:
		return outConnect
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return outReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return outEOF
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return outTimeout
	}
	return outProtocol
}

// faultRetryPause is how long a worker waits after a failed request, so
// that a refused connection is not retried in a tight loop.
const faultRetryPause = 10 * time.Millisecond

// loadConfig configures the load.
type loadConfig struct {
	NS        string // the namespace's path, such as /var/run/netns/NAME
	Target    string // host:port
	Path      string // the file requested
	Size      int    // its size: a response must carry exactly this
	Keepalive int    // workers keeping their connection
	Fresh     int    // workers opening a connection per request
	Timeout   time.Duration
}

// faultLoad is a running load.
type faultLoad struct {
	c      loadConfig
	base   time.Time
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	netns  *os.File // the target namespace
	home   *os.File // the launcher's own namespace

	mu   sync.Mutex
	recs []reqRecord

	// since is the offset after which a success counts towards firstOK
	// (math.MaxInt64 until set); firstOK is the end offset of the first
	// such success, 0 while there is none.
	since   atomic.Int64
	firstOK atomic.Int64
	okCount atomic.Int64
}

// startLoad starts the workers.
func startLoad(c loadConfig) (*faultLoad, error) {
	target, err := os.Open(c.NS)
	if err != nil {
		return nil, fmt.Errorf("bench faults: the client's namespace: %w", err)
	}
	home, err := os.Open("/proc/self/ns/net")
	if err != nil {
		target.Close()
		return nil, fmt.Errorf("bench faults: own namespace: %w", err)
	}
	l := &faultLoad{c: c, base: time.Now(), netns: target, home: home}
	l.since.Store(1<<63 - 1)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	for i := 0; i < c.Keepalive+c.Fresh; i++ {
		l.wg.Add(1)
		go l.worker(i < c.Keepalive)
	}
	return l, nil
}

// now is the offset of the present moment.
func (l *faultLoad) now() time.Duration { return time.Since(l.base) }

// countFrom makes successes of requests started at or after off count
// towards firstSuccess.
func (l *faultLoad) countFrom(off time.Duration) {
	l.firstOK.Store(0)
	l.since.Store(int64(off))
}

// firstSuccess returns the end offset of the first success of a request
// started at or after the offset countFrom was given.
func (l *faultLoad) firstSuccess() (time.Duration, bool) {
	v := l.firstOK.Load()
	return time.Duration(v), v != 0
}

// stop stops the workers and returns every request's record, in no
// particular order. Requests cut short by the stop are not recorded.
func (l *faultLoad) stop() []reqRecord {
	l.cancel()
	l.wg.Wait()
	l.netns.Close()
	l.home.Close()
	return l.recs
}

func (l *faultLoad) record(r reqRecord) {
	if l.ctx.Err() != nil {
		return // cut short by the stop, or ended after it
	}
	if r.out == outOK {
		l.okCount.Add(1)
		if int64(r.start) >= l.since.Load() {
			for {
				cur := l.firstOK.Load()
				if cur != 0 && cur <= int64(r.end) || l.firstOK.CompareAndSwap(cur, int64(r.end)) {
					break
				}
			}
		}
	}
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
}

// worker issues requests until the load stops.
func (l *faultLoad) worker(keepalive bool) {
	defer l.wg.Done()
	var c net.Conn
	var br *bufio.Reader
	closeConn := func() {
		if c != nil {
			c.Close()
			c, br = nil, nil
		}
	}
	defer closeConn()
	req := []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: newtsim-bench-faults\r\n\r\n", l.c.Path, l.c.Target))
	for l.ctx.Err() == nil {
		r := reqRecord{start: l.now(), keepalive: keepalive}
		deadline := time.Now().Add(l.c.Timeout)
		var err error
		if c == nil {
			c, err = l.dial(deadline)
			if err != nil {
				c = nil
			} else {
				br = bufio.NewReader(c)
			}
		}
		if err == nil {
			r.established = true
			err = l.exchange(c, br, req, deadline)
		}
		r.end = l.now()
		r.out = classify(err, r.established)
		var bad *badResponse
		if errors.As(err, &bad) {
			r.out = outStatus
		}
		l.record(r)
		if err != nil || !keepalive {
			closeConn()
		}
		if err != nil {
			select {
			case <-l.ctx.Done():
			case <-time.After(faultRetryPause):
			}
		}
	}
}

// badResponse is a response that parsed but is not the file.
type badResponse struct{ status, n int }

func (e *badResponse) Error() string {
	return fmt.Sprintf("status %d with %d bytes", e.status, e.n)
}

// exchange sends one request on c and reads its whole response.
func (l *faultLoad) exchange(c net.Conn, br *bufio.Reader, req []byte, deadline time.Time) error {
	stop := context.AfterFunc(l.ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := c.Write(req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || n != int64(l.c.Size) {
		return &badResponse{resp.StatusCode, int(n)}
	}
	return nil
}

// dial opens a connection to the target from the namespace. A socket
// belongs to the namespace it was made in, so the dial runs on a thread of
// its own that enters the namespace first and goes home afterwards; a
// thread that cannot go home stays locked and ends with its goroutine,
// never to serve another in the wrong namespace.
func (l *faultLoad) dial(deadline time.Time) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(l.netns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, fmt.Errorf("enter the client's namespace: %w", err)}
			return
		}
		d := net.Dialer{Deadline: deadline}
		c, err := d.DialContext(l.ctx, "tcp4", l.c.Target)
		if herr := unix.Setns(int(l.home.Fd()), unix.CLONE_NEWNET); herr != nil {
			if c != nil {
				c.Close()
			}
			done <- result{nil, fmt.Errorf("leave the client's namespace: %w", herr)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}

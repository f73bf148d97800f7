package fetch

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
)

// As a role (`fetch`) the client runs once in an application process of
// the simulated host, on the message backend, then serves until shut down:
//
//	process get role fetch args --url http://198.18.0.1:8000/big.bin --out /tmp/big.bin --result /tmp/big.json
//	link get syscall

type role struct {
	url, out, result string
	timeout          time.Duration
	retryRefused     time.Duration
}

// Role starts the fetch role: downloads one URL over the socket API.
func Role(s *sys.Server) (sys.Handler, error) {
	r := &role{}
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	fs.StringVar(&r.url, "url", "", "the http URL to GET (the host an IPv4 address)")
	fs.StringVar(&r.out, "out", "", "where to write the body (written to OUT.tmp, renamed when complete)")
	fs.StringVar(&r.result, "result", "", "where to write the result as JSON: url, status, bytes, sha256, elapsed_ns, error")
	fs.DurationVar(&r.timeout, "timeout", 60*time.Second, "how long the whole exchange may take")
	fs.DurationVar(&r.retryRefused, "retry-refused", 0, "how long to try again, every 100ms, while the connection is refused (as curl's --retry-connrefused; 0: once)")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	if r.url == "" || r.out == "" || r.result == "" {
		return nil, errors.New("fetch: --url, --out and --result are required")
	}
	if _, err := ParseURL(r.url); err != nil {
		return nil, err
	}
	return r, nil
}

// Handle is never reached before Run has fetched; then nothing is asked of
// the role.
func (r *role) Handle(*sys.Server, *ipc.Message) error { return nil }

// Run fetches the URL once, writes the body and the result, then serves
// until shut down: a failed fetch is reported in the result, not by the
// process ending (which would start it again).
func (r *role) Run(s *sys.Server) error {
	res := r.fetch(s)
	if res.Error != "" {
		s.Log.Printf("fetch %s: %s", r.url, res.Error)
	} else {
		s.Log.Printf("fetch %s: status %d, %d bytes in %v, sha256 %s", r.url, res.Status, res.Bytes, time.Duration(res.ElapsedNS), res.SHA256)
	}
	if err := sys.WriteResult(r.result, res); err != nil {
		return err
	}
	return s.Serve(r)
}

func (r *role) fetch(s *sys.Server) Result {
	api, err := socket.Open(socket.Config{Backend: "message", Conn: s})
	if err != nil {
		return Result{URL: r.url, Error: err.Error()}
	}
	giveUp := time.Now().Add(r.retryRefused)
	for tries := 1; ; tries++ {
		res, err := r.fetchOnce(api)
		if errors.Is(err, unix.ECONNREFUSED) && time.Now().Before(giveUp) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if tries > 1 {
			s.Log.Printf("fetch %s: %d tries, the first %d refused", r.url, tries, tries-1)
		}
		return res
	}
}

// fetchOnce gets the URL into OUT.tmp and, if it all came with a 2xx
// status, renames it OUT.
func (r *role) fetchOnce(api socket.API) (Result, error) {
	tmp := r.out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		err = fmt.Errorf("fetch: %w", err)
		return Result{URL: r.url, Error: err.Error()}, err
	}
	res, err := Get(api, r.url, f, r.timeout)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("fetch: %w", cerr)
	}
	if err == nil && (res.Status < 200 || res.Status > 299) {
		err = fmt.Errorf("fetch: %s answered status %d", r.url, res.Status)
	}
	if err == nil {
		if err = os.Rename(tmp, r.out); err != nil {
			err = fmt.Errorf("fetch: %w", err)
		}
	}
	if err != nil {
		os.Remove(tmp)
		res.Error = err.Error()
	}
	return res, err
}

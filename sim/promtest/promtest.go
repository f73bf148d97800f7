// Package promtest runs a real Prometheus server for end-to-end tests: it
// scrapes the targets listed in a file-based service discovery file (see
// package internal/prom) every second, and the test queries it over the
// HTTP API, through the API client of client_golang.
//
// Prometheus must be installed (Debian package "prometheus", binary
// /usr/bin/prometheus). When it is not, Start fails with an error wrapping
// ErrNotInstalled that says what to install; tests must fail then, not
// skip, so that a missing dependency never passes for a passing test.
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// JobName is the name of the only scrape job; every series carries
// job="newtsim".
const JobName = "newtsim"

// DebianPackage is the Debian package that provides the prometheus binary.
const DebianPackage = "prometheus"

// ErrNotInstalled says the prometheus binary was not found.
var ErrNotInstalled = errors.New("promtest: prometheus is not installed")

// binaryPaths are where Start looks for prometheus after $PATH.
var binaryPaths = []string{"/usr/bin/prometheus"}

// Timing of the server Start runs.
const (
	scrapeInterval = time.Second
	readyTimeout   = 60 * time.Second // when ctx has no earlier deadline
	pollInterval   = 100 * time.Millisecond
)

// Server is a running Prometheus server.
type Server struct {
	// URL is the server's base URL, such as http://127.0.0.1:40123.
	URL string

	cmd     *exec.Cmd
	dir     string // temporary: config, data, log
	logPath string
	exited  chan struct{} // closed when the process has exited
	client  *http.Client  // for /-/ready, which the API does not cover
	api     v1.API

	stopOnce sync.Once
	stopErr  error
}

// findBinary returns the path of the prometheus binary.
func findBinary() (string, error) {
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p, nil
	}
	for _, p := range binaryPaths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: no prometheus binary in $PATH or at %s; install the Debian package %q (apt-get install %s)",
		ErrNotInstalled, strings.Join(binaryPaths, ", "), DebianPackage, DebianPackage)
}

// Start runs Prometheus with one scrape job, "newtsim", whose targets come
// from targetsFile (a file_sd JSON file, re-read every second; it may not
// exist yet) and are scraped every second. The server listens on a free
// port on 127.0.0.1 and keeps its data in a temporary directory. Start
// returns once /-/ready answers, or fails when ctx is done, when Prometheus
// exits, or after a minute. Call Stop when done.
//
// Prometheus hands newly discovered targets to its scrapers at most every
// 5 seconds, so a target written to the file is first scraped some 5 to 7
// seconds later: give WaitUp at least 10 seconds.
func Start(ctx context.Context, targetsFile string) (*Server, error) {
	abs, err := filepath.Abs(targetsFile)
	if err != nil {
		return nil, fmt.Errorf("promtest: targets file: %w", err)
	}
	return StartConfig(ctx, config(abs), nil)
}

// StartConfig runs Prometheus as Start does, on the configuration cfg (a
// prometheus.yml) instead of Start's own, with files (such as rule files,
// by name) written beside it, where cfg's relative paths find them.
func StartConfig(ctx context.Context, cfg []byte, files map[string][]byte) (*Server, error) {
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "newtsim-prometheus-*")
	if err != nil {
		return nil, fmt.Errorf("promtest: %w", err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	files = maps.Clone(files)
	if files == nil {
		files = map[string][]byte{}
	}
	files["prometheus.yml"] = cfg
	for name, b := range files {
		if name != filepath.Base(name) {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("promtest: file %q: want a name without a folder", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("promtest: write %s: %w", name, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	// The free port is found by binding and releasing it, so another
	// process may take it before Prometheus binds; then try another.
	for attempt := 1; ; attempt++ {
		s, err := launch(ctx, bin, dir, cfgPath)
		if err == nil {
			return s, nil
		}
		if attempt == 3 || !errors.Is(err, errAddrInUse) {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// config returns the Prometheus configuration. It is JSON, which YAML
// parsers read as YAML, so that no path needs YAML quoting.
func config(targetsFile string) []byte {
	iv := scrapeInterval.String()
	cfg := map[string]any{
		"global": map[string]any{
			"scrape_interval":     iv,
			"scrape_timeout":      iv,
			"evaluation_interval": iv,
		},
		"scrape_configs": []any{map[string]any{
			"job_name": JobName,
			"file_sd_configs": []any{map[string]any{
				"files":            []string{targetsFile},
				"refresh_interval": iv,
			}},
		}},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic(err) // only strings and maps
	}
	return append(b, '\n')
}

var errAddrInUse = errors.New("address already in use")

// launch starts one Prometheus process on a free port and waits until it
// is ready.
func launch(ctx context.Context, bin, dir, cfgPath string) (*Server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	url, client := "http://"+addr, &http.Client{Timeout: 10 * time.Second}
	a, err := newAPI(url, client)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("promtest: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Prometheus must not outlive a test binary that dies without Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("promtest: start %s: %w", bin, err)
	}
	s := &Server{
		URL:     url,
		cmd:     cmd,
		dir:     dir,
		logPath: logPath,
		exited:  make(chan struct{}),
		client:  client,
		api:     a,
	}
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// freeAddr returns 127.0.0.1:PORT for a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("promtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitReady polls /-/ready until it answers 200.
func (s *Server) waitReady(ctx context.Context) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/-/ready", nil)
		if err != nil {
			return fmt.Errorf("promtest: %w", err)
		}
		if resp, err := s.client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			log := s.logTail()
			err := fmt.Errorf("promtest: prometheus exited before it was ready (%v); its log ends:\n%s", s.cmd.ProcessState, log)
			if strings.Contains(log, "address already in use") {
				err = fmt.Errorf("%w: %w", errAddrInUse, err)
			}
			return err
		case <-ctx.Done():
			return fmt.Errorf("promtest: prometheus at %s not ready: %w; its log ends:\n%s", s.URL, ctx.Err(), s.logTail())
		case <-tick.C:
		}
	}
}

// logTail returns the end of Prometheus's log.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// kill ends the process and waits for it.
func (s *Server) kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// Stop kills Prometheus and removes its temporary directory. Calling it
// again does nothing.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.kill()
		if err := os.RemoveAll(s.dir); err != nil {
			s.stopErr = fmt.Errorf("promtest: stop: %w", err)
		}
	})
	return s.stopErr
}

// Sample is one element of an instant vector: a series' labels (with
// __name__ when the series has one) and its value.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// String formats s as PromQL prints it: name{label="value",...} value.
func (s Sample) String() string {
	var b strings.Builder
	b.WriteString(s.Labels["__name__"])
	b.WriteString(formatLabels(s.Labels))
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(s.Value, 'g', -1, 64))
	return b.String()
}

// formatLabels formats labels other than __name__ as {a="1",b="2"}.
func formatLabels(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		if n != "__name__" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + strconv.Quote(labels[n])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// newAPI returns a client of the Prometheus HTTP API at url.
func newAPI(url string, c *http.Client) (v1.API, error) {
	client, err := api.NewClient(api.Config{Address: url, Client: c})
	if err != nil {
		return nil, fmt.Errorf("promtest: API client for %s: %w", url, err)
	}
	return v1.NewAPI(client), nil
}

// apiError adds to err what the API client keeps aside: the body of an
// answer whose HTTP status it does not decode (a 503, say).
func apiError(err error) error {
	var e *v1.Error
	if errors.As(err, &e) && e.Detail != "" {
		return fmt.Errorf("%w: %.200s", err, e.Detail)
	}
	return err
}

// Query evaluates the PromQL expression q at the current time
// (/api/v1/query) and returns the resulting instant vector. A scalar
// result is returned as one sample without labels; a range vector or a
// string is an error.
func (s *Server) Query(ctx context.Context, q string) ([]Sample, error) {
	v, _, _, err := s.api.Query(ctx, q, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("promtest: query %q: %w", q, apiError(err))
	}
	samples, err := samplesOf(v)
	if err != nil {
		return nil, fmt.Errorf("promtest: query %q: %w", q, err)
	}
	return samples, nil
}

// samplesOf returns the samples of an instant vector or a scalar.
func samplesOf(v model.Value) ([]Sample, error) {
	switch v := v.(type) {
	case model.Vector:
		samples := make([]Sample, len(v))
		for i, smp := range v {
			samples[i] = Sample{Labels: labelsOf(model.LabelSet(smp.Metric)), Value: float64(smp.Value)}
		}
		return samples, nil
	case *model.Scalar:
		return []Sample{{Labels: map[string]string{}, Value: float64(v.Value)}}, nil
	case nil:
		return nil, errors.New("no result")
	default:
		return nil, fmt.Errorf("result type %q, want an instant vector", v.Type())
	}
}

// labelsOf returns a label set as a plain map.
func labelsOf(ls model.LabelSet) map[string]string {
	m := make(map[string]string, len(ls))
	for n, v := range ls {
		m[string(n)] = string(v)
	}
	return m
}

// WaitUp polls the up metric until exactly want targets report up == 1,
// for at most timeout (or until ctx is done). It returns the last samples
// of up it saw, and when it gives up an error that names every target not
// up, with the scrape error Prometheus reports for it.
func (s *Server) WaitUp(ctx context.Context, want int, timeout time.Duration) ([]Sample, error) {
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last []Sample
	var lastErr error
	for {
		samples, err := s.Query(waitCtx, "up")
		if err == nil {
			last, lastErr = samples, nil
			if len(samples) == want && countUp(samples) == want {
				return samples, nil
			}
		} else if waitCtx.Err() == nil {
			lastErr = err
		}
		select {
		case <-waitCtx.Done():
			return last, s.upError(ctx, want, last, lastErr)
		case <-tick.C:
		}
	}
}

func countUp(samples []Sample) int {
	n := 0
	for _, s := range samples {
		if s.Value == 1 {
			n++
		}
	}
	return n
}

// upError explains why WaitUp gave up.
func (s *Server) upError(ctx context.Context, want int, last []Sample, lastErr error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "promtest: %d of %d targets up", countUp(last), want)
	if len(last) != want {
		fmt.Fprintf(&b, " (%d targets known)", len(last))
	}
	// Ask why, with a fresh deadline: ctx may have expired.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var down []string
	if targets, err := s.api.Targets(tctx); err == nil {
		for _, t := range targets.Active {
			if t.Health == v1.HealthGood {
				continue
			}
			labels := labelsOf(t.Labels)
			d := fmt.Sprintf("%s%s is %s", labels["instance"], formatLabels(withoutKeys(labels, "instance", "job")), t.Health)
			if t.LastError != "" {
				d += ": " + t.LastError
			}
			down = append(down, d)
		}
	} else {
		for _, smp := range last {
			if smp.Value != 1 {
				down = append(down, fmt.Sprintf("%s%s is down", smp.Labels["instance"], formatLabels(withoutKeys(smp.Labels, "__name__", "instance", "job"))))
			}
		}
	}
	if len(down) > 0 {
		fmt.Fprintf(&b, "; not up: %s", strings.Join(down, "; "))
	}
	if lastErr != nil {
		fmt.Fprintf(&b, "; last query failed: %v", lastErr)
	}
	return errors.New(b.String())
}

// withoutKeys returns a copy of m without the given keys.
func withoutKeys(m map[string]string, keys ...string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	for _, k := range keys {
		delete(c, k)
	}
	return c
}

// WaitSeries polls the PromQL expression q until it gives at least one
// sample, for at most timeout (or until ctx is done), and returns the
// samples: for a series that a rule records, or that appears only after a
// few scrapes.
func (s *Server) WaitSeries(ctx context.Context, q string, timeout time.Duration) ([]Sample, error) {
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		samples, err := s.Query(waitCtx, q)
		if err == nil && len(samples) > 0 {
			return samples, nil
		}
		if err != nil && waitCtx.Err() == nil {
			lastErr = err
		}
		select {
		case <-waitCtx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("promtest: no series for %s after %v; last query failed: %w", q, timeout, lastErr)
			}
			return nil, fmt.Errorf("promtest: no series for %s after %v", q, timeout)
		case <-tick.C:
		}
	}
}

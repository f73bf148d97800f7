package promtest

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/newtsim/newtsim/internal/prom"
)

// serveRegistry serves a registry with one gauge, newtsim_test_value, set
// to v, and returns its host:port.
func serveRegistry(t *testing.T, v float64) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "newtsim_test_value", Help: "A value the test checks."})
	g.Set(v)
	reg.MustRegister(g)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// deadAddr returns a 127.0.0.1 address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// start writes targets to a file and starts Prometheus on it; a missing
// Prometheus fails the test.
func start(t *testing.T, targets []prom.Target) *Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "targets.json")
	if err := prom.WriteTargets(path, targets); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestWaitUpAndQuery(t *testing.T) {
	t.Parallel()
	a, b := serveRegistry(t, 42), serveRegistry(t, 43)
	s := start(t, []prom.Target{
		{Addr: a, Labels: map[string]string{"server": "a"}},
		{Addr: b, Labels: map[string]string{"server": "b"}},
	})
	ctx := context.Background()
	samples, err := s.WaitUp(ctx, 2, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	wantInstance := map[string]string{"a": a, "b": b}
	for _, smp := range samples {
		srv := smp.Labels["server"]
		if smp.Value != 1 || smp.Labels["__name__"] != "up" || smp.Labels["job"] != JobName || smp.Labels["instance"] != wantInstance[srv] {
			t.Errorf("sample %v, want up 1 for job %s and server a or b at its address", smp, JobName)
		}
		delete(wantInstance, srv)
	}
	if len(wantInstance) != 0 {
		t.Errorf("no up sample for servers %v", wantInstance)
	}

	tests := []struct {
		name    string
		query   string
		want    map[string]float64 // by server label; "" for no label
		wantErr string
	}{
		{"gauge", "newtsim_test_value", map[string]float64{"a": 42, "b": 43}, ""},
		{"filtered", `newtsim_test_value{server="b"}`, map[string]float64{"b": 43}, ""},
		{"aggregated", "sum(newtsim_test_value)", map[string]float64{"": 85}, ""},
		{"scalar", "1+1", map[string]float64{"": 2}, ""},
		{"no match", "newtsim_no_such_metric", map[string]float64{}, ""},
		{"syntax error", "sum(", nil, "bad_data"},
		{"range vector", "up[1m]", nil, "want an instant vector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Query(ctx, tt.query)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Query(%q) error %v, want one mentioning %q", tt.query, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			byServer := map[string]float64{}
			for _, smp := range got {
				byServer[smp.Labels["server"]] = smp.Value
			}
			if len(got) != len(tt.want) || len(byServer) != len(tt.want) {
				t.Fatalf("Query(%q) = %v, want %v", tt.query, got, tt.want)
			}
			for srv, v := range tt.want {
				if byServer[srv] != v {
					t.Errorf("Query(%q) = %v, want %v", tt.query, got, tt.want)
				}
			}
		})
	}
}

func TestWaitUpNamesDownTarget(t *testing.T) {
	t.Parallel()
	a, dead := serveRegistry(t, 1), deadAddr(t)
	s := start(t, []prom.Target{
		{Addr: a, Labels: map[string]string{"server": "a"}},
		{Addr: dead, Labels: map[string]string{"server": "b"}},
	})
	// Wait until Prometheus has scraped both targets once, so that up
	// has a sample for each, then give WaitUp a short time.
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		samples, err := s.Query(ctx, "up")
		if err != nil {
			t.Fatal(err)
		}
		if len(samples) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("up never had 2 samples: %v", samples)
		}
	}
	samples, err := s.WaitUp(ctx, 2, 2*time.Second)
	if err == nil {
		t.Fatalf("WaitUp succeeded with %s down: %v", dead, samples)
	}
	t.Logf("WaitUp: %v", err)
	for _, want := range []string{"1 of 2 targets up", dead, `server="b"`, "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), a) {
		t.Errorf("error %q names the target that is up", err)
	}
	up := map[string]float64{}
	for _, smp := range samples {
		up[smp.Labels["server"]] = smp.Value
	}
	if len(samples) != 2 || up["a"] != 1 || up["b"] != 0 {
		t.Errorf("last samples %v, want a up and b down", samples)
	}
}

func TestStopRemovesEverything(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	if _, err := os.Stat(s.dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary directory %s still there: %v", s.dir, err)
	}
	if _, err := http.Get(s.URL + "/-/ready"); err == nil {
		t.Errorf("Prometheus still answers at %s after Stop", s.URL)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStartWithoutPrometheus(t *testing.T) {
	// Not parallel: it changes $PATH and binaryPaths.
	t.Setenv("PATH", t.TempDir())
	old := binaryPaths
	binaryPaths = []string{filepath.Join(t.TempDir(), "prometheus")}
	defer func() { binaryPaths = old }()

	s, err := Start(context.Background(), filepath.Join(t.TempDir(), "targets.json"))
	if err == nil {
		s.Stop()
		t.Fatal("Start succeeded without a prometheus binary")
	}
	if !errors.Is(err, ErrNotInstalled) {
		t.Errorf("error %v does not wrap ErrNotInstalled", err)
	}
	for _, want := range []string{binaryPaths[0], `Debian package "prometheus"`, "apt-get install prometheus"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestStartFailsWhenPrometheusExits(t *testing.T) {
	// A "prometheus" that exits at once must fail Start with its output.
	dir := t.TempDir()
	fake := filepath.Join(dir, "prometheus")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'fake prometheus: bad flag' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, filepath.Join(dir, "targets.json"))
	if err == nil {
		s.Stop()
		t.Fatal("Start succeeded with a prometheus that exits")
	}
	for _, want := range []string{"exited before it was ready", "fake prometheus: bad flag"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// fakeAPI returns a Server whose API is a fake answering every query
// with status and body.
func fakeAPI(t *testing.T, check func(r *http.Request), status int, body string) *Server {
	t.Helper()
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		check(r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(fake.Close)
	a, err := newAPI(fake.URL, fake.Client())
	if err != nil {
		t.Fatal(err)
	}
	return &Server{URL: fake.URL, client: fake.Client(), api: a}
}

func TestQueryDecodes(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    []Sample
		wantErr string
	}{
		{"vector", `{"resultType":"vector","result":[{"metric":{"__name__":"up","server":"a"},"value":[1.5,"1"]}]}`,
			[]Sample{{Labels: map[string]string{"__name__": "up", "server": "a"}, Value: 1}}, ""},
		{"empty vector", `{"resultType":"vector","result":[]}`, []Sample{}, ""},
		{"no labels", `{"resultType":"vector","result":[{"metric":{},"value":[1,"-2.5"]}]}`,
			[]Sample{{Labels: map[string]string{}, Value: -2.5}}, ""},
		{"infinity", `{"resultType":"vector","result":[{"metric":{},"value":[1,"+Inf"]}]}`,
			[]Sample{{Labels: map[string]string{}, Value: math.Inf(1)}}, ""},
		{"scalar", `{"resultType":"scalar","result":[1,"7"]}`, []Sample{{Labels: map[string]string{}, Value: 7}}, ""},
		{"matrix", `{"resultType":"matrix","result":[]}`, nil, "want an instant vector"},
		{"string", `{"resultType":"string","result":[1,"x"]}`, nil, `unexpected value type "string"`},
		{"bad value", `{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}`, nil, "invalid syntax"},
		{"not json", `{`, nil, "bad_response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fakeAPI(t, func(*http.Request) {}, http.StatusOK, `{"status":"success","data":`+tt.data+`}`)
			got, err := s.Query(context.Background(), "up")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Query error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].String() != tt.want[i].String() {
					t.Errorf("sample %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestQueryAPIError(t *testing.T) {
	s := fakeAPI(t, func(r *http.Request) {
		if r.URL.Path != "/api/v1/query" || r.FormValue("query") != `up{server="a"}` {
			t.Errorf("request %s %s, form %v", r.Method, r.URL, r.Form)
		}
	}, http.StatusServiceUnavailable, `{"status":"error","errorType":"unavailable","error":"too busy"}`)
	_, err := s.Query(context.Background(), `up{server="a"}`)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "unavailable") || !strings.Contains(err.Error(), "too busy") {
		t.Errorf("Query error %v, want the HTTP status and Prometheus's error", err)
	}
}

func TestSampleString(t *testing.T) {
	s := Sample{Labels: map[string]string{"__name__": "up", "server": "b", "instance": "h:1"}, Value: 0}
	if got, want := s.String(), `up{instance="h:1",server="b"} 0`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func TestConfigIsValidJSONWithPath(t *testing.T) {
	c := string(config(`/tmp/a "quoted" dir/targets.json`))
	for _, want := range []string{`"job_name": "newtsim"`, `"refresh_interval": "1s"`, `"scrape_interval": "1s"`, `"/tmp/a \"quoted\" dir/targets.json"`} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %s:\n%s", want, c)
		}
	}
}

// exampleDir is the example configuration, from this package's folder.
var exampleDir = filepath.Join("..", "..", ExampleDir)

// TestExampleChecks runs promtool on the example configuration: the
// configuration and its rules are valid, and the rules compute what
// rules_test.yml says they do. A missing promtool fails the test.
func TestExampleChecks(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "rules.yml"},
		{"test", "rules", "rules_test.yml"},
	} {
		if out, err := Promtool(exampleDir, args...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
}

// TestExampleRecords loads the example configuration into a real
// Prometheus scraping a target that counts messages, and reads back a
// series its rules record.
func TestExampleRecords(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "newtsim_ipc_messages_received_total", Help: "Messages."},
		[]string{"transport", "peer"})
	reg.MustRegister(c)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				c.WithLabelValues("shm", "pf").Inc()
			}
		}
	}()
	path := filepath.Join(t.TempDir(), "targets.json")
	if err := prom.WriteTargets(path, []prom.Target{{Addr: srv.Listener.Addr().String(),
		Labels: map[string]string{"newtsim_process": "ip", "newtsim_run": "r1"}}}); err != nil {
		t.Fatal(err)
	}
	cfg, files, err := Example(exampleDir, path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := StartConfig(ctx, cfg, files)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	const q = `newtsim_process:newtsim_ipc_messages_received:rate1m{newtsim_process="ip",newtsim_run="r1"}`
	got, err := s.WaitSeries(ctx, q, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Value <= 0 {
		t.Fatalf("%s = %v, want one positive rate", q, got)
	}
}

func TestExampleRewrites(t *testing.T) {
	cfg, files, err := Example(exampleDir, "/tmp/x/targets.json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg), ExampleTargets) || !strings.Contains(string(cfg), "/tmp/x/targets.json") ||
		strings.Contains(string(cfg), "interval: 5s") {
		t.Errorf("config not rewritten:\n%s", cfg)
	}
	if len(files["rules.yml"]) == 0 {
		t.Errorf("no rules.yml in %v", files)
	}
	if _, _, err := Example(t.TempDir(), "t.json"); err == nil {
		t.Error("Example of an empty folder: no error")
	}
}

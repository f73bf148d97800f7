package prom_test

import (
	"bytes"
	"context"
	"flag"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/newtsim/newtsim/internal/prom"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// exposition parses testdata/exposition.txt.
func exposition(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open("testdata/exposition.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fams, err := prom.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func TestValue(t *testing.T) {
	fams := exposition(t)
	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
		wantOK bool
	}{
		{"gauge without labels", "go_goroutines", nil, 9, true},
		{"one series of a gauge", "newtsim_tcp_connections", map[string]string{"state": "LISTEN"}, 1, true},
		{"a series whose value is 0", "newtsim_tcp_connections", map[string]string{"state": "TIME-WAIT"}, 0, true},
		{"every series summed", "newtsim_tcp_connections", nil, 3, true},
		{"counter by label", "newtsim_tcp_dropped_total", map[string]string{"reason": "no-socket"}, 4, true},
		{"two labels of three", "newtsim_pf_rule_hits_total", map[string]string{"rule": "0", "action": "drop"}, 5, true},
		{"exponent", "newtsim_pf_rule_hits_total", map[string]string{"rule": "1"}, 1.5e6, true},
		{"series sharing a label summed", "newtsim_pf_rule_hits_total", map[string]string{"action": "pass"}, 1.5e6 + 7, true},
		{"const label", "newtsim_ipc_messages_sent_total", map[string]string{"transport": "shm"}, 42, true},
		{"untyped", "newtsim_untyped_thing", nil, 42, true},
		{"infinity", "newtsim_odd_values_total", nil, math.Inf(1), true},
		// Missing, every way: one answer, (0, false).
		{"no such metric", "newtsim_no_such_total", nil, 0, false},
		{"no series with the label value", "newtsim_tcp_dropped_total", map[string]string{"reason": "no-such"}, 0, false},
		{"a label the metric lacks", "go_goroutines", map[string]string{"state": "LISTEN"}, 0, false},
		{"one label matches, the other not", "newtsim_pf_rule_hits_total", map[string]string{"rule": "0", "action": "pass"}, 0, false},
		{"histogram", "newtsim_tcp_rtt_seconds", nil, 0, false},
		{"a histogram's series name", "newtsim_tcp_rtt_seconds_count", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := prom.Value(fams, tt.metric, tt.labels)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Value(%s, %v) = %v, %v; want %v, %v", tt.metric, tt.labels, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestWriteTextGolden(t *testing.T) {
	fams := exposition(t)
	tests := []struct {
		golden   string
		prefixes []string
	}{
		{"testdata/all.golden", nil},
		{"testdata/tcp-and-pf.golden", []string{"newtsim_tcp_", "newtsim_pf_"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := prom.WriteText(&b, fams, tt.prefixes...); err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(tt.golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tt.golden)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Errorf("WriteText(%v) =\n%s\nwant (%s)\n%s", tt.prefixes, b.String(), tt.golden, want)
			}
			// What WriteText writes parses back to the same values.
			back, err := prom.Parse(&b)
			if err != nil {
				t.Fatal(err)
			}
			for name := range back {
				if !strings.HasPrefix(name, "newtsim_tcp_rtt") {
					a, _ := prom.Value(fams, name, nil)
					z, _ := prom.Value(back, name, nil)
					if a != z {
						t.Errorf("%s: %v written, %v read back", name, a, z)
					}
				}
			}
		})
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	tests := []struct{ name, text string }{
		{"no value", "newtsim_x_total\n"},
		{"value not a number", "newtsim_x_total abc\n"},
		{"unclosed labels", `newtsim_x_total{a="1" 3` + "\n"},
		{"two types", "# TYPE newtsim_x counter\n# TYPE newtsim_x gauge\nnewtsim_x 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if fams, err := prom.Parse(strings.NewReader(tt.text)); err == nil {
				t.Errorf("Parse(%q) = %v, want an error", tt.text, fams)
			}
		})
	}
}

func TestScrape(t *testing.T) {
	reg := prom.NewRegistry("tcp", "tcp")
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "newtsim_test_total", Help: "A counter the test reads."}, []string{"kind"})
	c.WithLabelValues("a").Add(3)
	reg.MustRegister(c)
	s, err := prom.Serve(reg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fams, err := prom.Scrape(ctx, prom.LocalURL(s.Port))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := prom.Value(fams, "newtsim_test_total", map[string]string{"kind": "a"}); v != 3 || !ok {
		t.Errorf("newtsim_test_total{kind=a} = %v, %v; want 3, true", v, ok)
	}
	if v, ok := prom.Value(fams, "newtsim_process_info", map[string]string{"process": "tcp", "role": "tcp"}); v != 1 || !ok {
		t.Errorf("newtsim_process_info = %v, %v; want 1, true", v, ok)
	}
}

func TestScrapeFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("newtsim_x_total{ 3\n"))
	}))
	defer garbage.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hang.Close()

	tests := []struct {
		name, url, wantErr string
		timeout            time.Duration
	}{
		{"nothing listens", prom.LocalURL(deadPort), "connection refused", time.Second},
		{"status 404", notFound.URL + "/metrics", "404", time.Second},
		{"not the text format", garbage.URL + "/metrics", "parse metrics", time.Second},
		{"no answer in time", hang.URL + "/metrics", "deadline exceeded", 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			fams, err := prom.Scrape(ctx, tt.url)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.url) {
				t.Errorf("Scrape(%s) = %v, %v; want an error naming the URL and mentioning %q", tt.url, fams, err, tt.wantErr)
			}
		})
	}
}

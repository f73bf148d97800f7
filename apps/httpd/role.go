package httpd

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/apps/ready"
	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
)

// As a role (`httpd`) the server runs in an application process of the
// simulated host, on the socket library's message backend by default:
//
//	process web role httpd args --addr 0.0.0.0:80 --dir /srv/www
//	link web syscall
//
// `--backend exposed` runs the same program on exposed socket buffers
// (docs/EXPOSED.md), which talk to the tcp server straight, so the process
// needs a link to tcp as well:
//
//	process web role httpd args --backend exposed --addr 0.0.0.0:80 --dir /srv/www
//	link web syscall
//	link web tcp

// role is the httpd role's handler; its work is Run.
type role struct {
	c       Config
	backend string
	ready   string
}

// Role starts the httpd role: the web server as an application of the simulated host.
func Role(s *sys.Server) (sys.Handler, error) {
	fs := flag.NewFlagSet("httpd", flag.ContinueOnError)
	backend := fs.String("backend", "message", "the socket library's backend: message, message-direct or exposed (the last two need a link to tcp)")
	addr := fs.String("addr", "0.0.0.0:80", "the address to listen on")
	dir := fs.String("dir", "", "the directory to serve (required; read into memory at start)")
	maxConns := fs.Int("max-conns", DefaultMaxConns, "the most connections open at once")
	backlog := fs.Int("backlog", DefaultBacklog, "the listen backlog")
	sendBuf := fs.Int("send-buffer", 0, "SO_SNDBUF of each connection (0: the stack's default)")
	timeout := fs.Duration("timeout", DefaultTimeout, "how long a request may take to arrive, or a response be left unread")
	idle := fs.Duration("idle-timeout", DefaultIdleTimeout, "how long a connection may wait for its next request")
	pressureConns := fs.Int("pressure-conns", 0, "the open connections from which the server is under pressure and the header timeout is --pressure-timeout (0: 7/8 of --max-conns)")
	pressureTimeout := fs.Duration("pressure-timeout", DefaultPressureTimeout, "how long a request may take to arrive under pressure")
	grace := fs.Duration("header-grace", DefaultHeaderGrace, "how long a request may take to arrive before --min-header-rate applies")
	minRate := fs.Int("min-header-rate", DefaultMinHeaderRate, "bytes per second a request must arrive at, after --header-grace (negative: no minimum)")
	readyFile := fs.String("ready", "", "a file to write the port to once listening, for a client that waits on it (package ready)")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	if *dir == "" {
		return nil, fmt.Errorf("httpd: --dir is required")
	}
	if st, err := os.Stat(*dir); err != nil {
		return nil, fmt.Errorf("httpd: --dir: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("httpd: --dir %s is not a directory", *dir)
	}
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil {
		return nil, fmt.Errorf("httpd: --addr: %w", err)
	}
	switch *backend {
	case "message", "message-direct", "exposed":
	default:
		return nil, fmt.Errorf("httpd: --backend %q: want message, message-direct or exposed", *backend)
	}
	return &role{backend: *backend, ready: *readyFile, c: Config{
		Addr:            ap,
		Files:           os.DirFS(*dir),
		MaxConns:        *maxConns,
		PressureConns:   *pressureConns,
		PressureTimeout: *pressureTimeout,
		HeaderGrace:     *grace,
		MinHeaderRate:   *minRate,
		Backlog:         *backlog,
		SendBuffer:      *sendBuf,
		Timeout:         *timeout,
		IdleTimeout:     *idle,
		Log:             s.Log,
	}}, nil
}

// Handle is never reached: the application's loop is Run.
func (r *role) Handle(*sys.Server, *ipc.Message) error { return nil }

// Run serves the directory over the backend chosen until the process is
// shut down.
func (r *role) Run(s *sys.Server) error {
	api, err := socket.Open(socket.Config{Backend: r.backend, Conn: s})
	if err != nil {
		return err
	}
	c := r.c
	c.API = api
	srv, err := New(c)
	if err != nil {
		return err
	}
	s.Registry.MustRegister(&statsCollector{srv: srv})
	if r.ready != "" {
		if err := ready.Write(r.ready, srv.Addr().Port()); err != nil {
			return fmt.Errorf("httpd: %w", err)
		}
	}
	return srv.Serve(context.Background())
}

// droppedHelp is the help of newtsim_httpd_dropped_requests_total.
const droppedHelp = "Connections ended with their request unfinished, by reason: shed at the connection limit " +
	"to admit a new one (shed), or answered 408 for a request arriving below the minimum rate (slow; also in timeouts_total)."

// statsCollector exports a server's Stats as newtsim_httpd_* metrics.
type statsCollector struct{ srv *Server }

var (
	descAccepted = prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "httpd", "accepted_connections_total"),
		"Connections accepted and served.", nil, nil)
	descRefused = prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "httpd", "refused_connections_total"),
		"Connections closed at once at the connection limit, with none to shed.", nil, nil)
	descDropped = prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "httpd", "dropped_requests_total"),
		droppedHelp,
		[]string{"reason"}, nil)
	descOpen = prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "httpd", "open_connections"),
		"Connections open now.", nil, nil)
	descRequests = prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "httpd", "requests_total"),
		"Well-formed requests parsed.", nil, nil)
	descResponses = prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "httpd", "responses_total"),
		"Responses queued, by status code.", []string{"code"}, nil)
	descTimeouts = prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "httpd", "timeouts_total"),
		"Connections ended by a timeout.", nil, nil)
	descBytes = prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "httpd", "bytes_total"),
		"Bytes received and sent.", []string{"direction"}, nil)
)

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAccepted, descRefused, descDropped, descOpen, descRequests, descResponses, descTimeouts, descBytes} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descAccepted, st.Accepted)
	counter(descRefused, st.Refused)
	counter(descDropped, st.Shed, "shed")
	counter(descDropped, st.Slow, "slow")
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(st.Open))
	counter(descRequests, st.Requests)
	for code, n := range st.Responses {
		counter(descResponses, n, strconv.Itoa(code))
	}
	counter(descTimeouts, st.Timeouts)
	counter(descBytes, st.BytesIn, "in")
	counter(descBytes, st.BytesOut, "out")
}

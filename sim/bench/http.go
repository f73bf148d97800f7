package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/newtsim/newtsim/apps/loadgen"
	"github.com/newtsim/newtsim/internal/atomicfile"
	"github.com/newtsim/newtsim/internal/procstat"
	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/sim/chart"
	"github.com/newtsim/newtsim/sim/machine"
	"github.com/newtsim/newtsim/sim/topology"
)

// The evaluation of the NewtOS talk ("On Sockets and System Calls", TRIOS 2014): a static web server under
// an HTTP load, on the multiserver stack with the message and exposed
// backends and on Linux, the load coming from outside. `newtsim bench
// http` measures one cell of the matrix, `newtsim bench paper` all of it.
//
// The client stands in for the talk's client machines: the loadgen
// package on Linux's sockets, in a network namespace of its own. It
// reaches the simulated host's httpd over the run's TAP (Linux there is
// 198.18.0.1, the host 198.18.0.2), and httpd-linux and lighttpd over a
// veth pair between two namespaces made for the benchmark (198.18.1.1 and
// 198.18.1.2). Nothing leaves the machine, and no address outside
// 198.18.0.0/15 is used.

// HTTPWorkload is a workload of the matrix: one file, requested over and
// over by every connection, a number of requests per connection.
type HTTPWorkload struct {
	Name            string `json:"name"`
	File            string `json:"file"` // its name in the served directory
	Size            int    `json:"size"` // bytes
	RequestsPerConn int    `json:"requests_per_conn"`
}

// Path is the workload's URL path.
func (w HTTPWorkload) Path() string { return "/" + w.File }

// HTTPWorkloads are the matrix's workloads, in order.
var HTTPWorkloads = []HTTPWorkload{
	{"20B-1rpc", "20B.txt", 20, 1},
	{"20B-10rpc", "20B.txt", 20, 10},
	{"11kB-10rpc", "11kB.bin", 11 << 10, 10},
	{"512kB-1rpc", "512kB.bin", 512 << 10, 1},
}

// Kinds of server side.
const (
	sideHost     = "host"     // httpd on the simulated host, behind the TAP
	sideLinux    = "linux"    // httpd on Linux's sockets, a process of its own
	sideLighttpd = "lighttpd" // Debian's lighttpd
	sideMonolith = "monolith" // httpd on the engines linked in one process (sim/host), behind a TAP
)

// HTTPServer is a server of the matrix.
type HTTPServer struct {
	Name      string             `json:"name"`
	Kind      string             `json:"kind"`
	Backend   string             `json:"backend,omitempty"`   // the socket library's, for httpd
	Transport topology.Transport `json:"transport,omitempty"` // the simulated host's
	What      string             `json:"what"`
}

// HTTPServers are the matrix's servers, in order.
var HTTPServers = []HTTPServer{
	{Name: "httpd-linux", Kind: sideLinux, Backend: "linux",
		What: "the httpd program on Linux's sockets, a process of its own in a namespace, reached over a veth pair"},
	{Name: "httpd-message-shm", Kind: sideHost, Backend: "message", Transport: topology.Shm,
		What: "httpd on the simulated host, message backend (every call a message to syscall, then tcp), user-space channels"},
	{Name: "httpd-message-kernel", Kind: sideHost, Backend: "message", Transport: topology.Kernel,
		What: "the same over kernel messages: every message goes through the kernel process"},
	{Name: "httpd-exposed", Kind: sideHost, Backend: "exposed", Transport: topology.Shm,
		What: "httpd on the simulated host, exposed socket buffers (docs/EXPOSED.md), user-space channels"},
	{Name: "httpd-monolith", Kind: sideMonolith,
		What: "httpd on a monolithic host: the simulated host's ip and tcp engines linked with httpd in one process (sim/host), " +
			"every socket call a function call, behind a TAP device in the client's namespace as the simulated host's nic is"},
	{Name: "lighttpd", Kind: sideLighttpd,
		What: "Debian's lighttpd, one worker process, a minimal configuration serving the same files, reached over the veth pair"},
}

// HTTPRow is one cell of the matrix.
type HTTPRow struct {
	Workload string  `json:"workload"`
	Server   string  `json:"server"`
	ReqPerS  float64 `json:"req_per_s"`
	MeanUS   float64 `json:"mean_us"`
	P50US    float64 `json:"p50_us"`
	P99US    float64 `json:"p99_us"`
	// Retransmits is the segments the server side's tcp engine sent
	// again over the cell, warm-up included, read from its metrics
	// (newtsim_tcp_retransmitted_segments_total) before and after: the
	// simulated host's tcp server, or httpd-monolith's host. Nil (null)
	// for Linux's servers, whose stack newtsim does not count.
	Retransmits *int64 `json:"retransmits"`
	// Errors counts the requests that failed (connect, refused, reset,
	// timeout, protocol, end of file) and the responses that were not 2xx
	// or 3xx.
	Errors int64 `json:"errors"`
	// LinuxSyscallsPerRequest is the system calls the server process made
	// over the measured run (every thread, counted by the kernel), over
	// the requests completed; for the simulated host, the httpd
	// application's process.
	LinuxSyscallsPerRequest float64 `json:"linux_syscalls_per_request"`
	// ServerCPUUSPerRequest is the time the server side's processes ran
	// on a CPU over the measured run (every thread, as Linux accounts it:
	// internal/procstat), over the requests completed: for the simulated
	// host its kernel, servers and httpd, else the one server process.
	// Linux's own work for their packets counts where it ran: in their
	// system calls, or in a softirq charged to whatever it interrupted
	// (the client, on the other CPU, for much of its receive path).
	ServerCPUUSPerRequest float64 `json:"server_cpu_us_per_request"`
	// SwitchesPerRequest is their context switches over the same run and
	// requests: what a wake-up costs most where processes share a core.
	SwitchesPerRequest float64 `json:"context_switches_per_request"`
	// SwitchFloorUS is, for the simulated host, its context switches per
	// request times the hop between processes measured in the same run
	// (HTTPReport.SwitchHop): the CPU per request its split into
	// processes costs on this machine before any of them works. Nil for
	// the other servers.
	SwitchFloorUS *float64 `json:"switch_floor_us,omitempty"`
	// Processes splits both by process where the server side has more
	// than one, in the order of the run's status (the kernel first).
	Processes []ProcessCost `json:"processes,omitempty"`
	CorePlan  string        `json:"core_plan"`
	// NotInstalled names the program the server runs, missing from the
	// machine: the cell was not measured.
	NotInstalled string `json:"not_installed,omitempty"`
	// Of --repeat N (MergeHTTP): every repetition's figures, the least
	// and greatest req/s, and a 95% interval of its median where N allows.
	ReqPerSSamples []float64 `json:"req_per_s_samples,omitempty"`
	MinReqPerS     float64   `json:"min_req_per_s,omitempty"`
	MaxReqPerS     float64   `json:"max_req_per_s,omitempty"`
	ReqPerSCI95    []float64 `json:"req_per_s_ci95,omitempty"`
	P50USSamples   []float64 `json:"p50_us_samples,omitempty"`
	P99USSamples   []float64 `json:"p99_us_samples,omitempty"`
}

// ProcessCost is one server-side process's share of a cell's CPU time
// and context switches, per request.
type ProcessCost struct {
	Name               string  `json:"name"`
	CPUUSPerRequest    float64 `json:"cpu_us_per_request"`
	SwitchesPerRequest float64 `json:"context_switches_per_request"`
}

// HTTPCell is a cell's full account: the client's report, as wrk would
// print it, and what else was seen.
type HTTPCell struct {
	Row      HTTPRow
	URL      string
	Report   loadgen.Report
	Warmup   loadgen.Report
	Syscalls uint64
	Threads  int // of the server process, counted
	// clientTrace is the client's trace recorder's events of the
	// measured run, for the breakdown; nil when not traced.
	clientTrace *trace.Snapshot
	// server is what the server side's processes were accounted over the
	// measured run: their CPU, and their wait for one (idleNote).
	server procstat.Usage
	// clientDrops is what the remote client host's engines dropped over
	// the cell (warm-up included), by reason; nil for other clients.
	clientDrops map[string]float64
}

// HTTPReport is what `newtsim bench http` and `newtsim bench paper` write.
type HTTPReport struct {
	Bench       string         `json:"bench"`
	Command     string         `json:"command"`
	Time        time.Time      `json:"time"`
	Machine     machine.Info   `json:"machine"`
	CorePlan    string         `json:"core_plan"`
	Client      string         `json:"client"`
	Connections int            `json:"connections"`
	DurationS   float64        `json:"duration_s"` // measured, per cell
	WarmupS     float64        `json:"warmup_s"`   // before each cell, not measured
	TimeoutS    float64        `json:"timeout_s"`  // a request not answered within it fails
	Workloads   []HTTPWorkload `json:"workloads"`
	Servers     []HTTPServer   `json:"servers"`
	Rows        []HTTPRow      `json:"rows"`
	Checks      []Check        `json:"checks"`
	Notes       []string       `json:"notes,omitempty"`
	// Cells hold the client's reports, for printing.
	Cells []HTTPCell `json:"-"`
	// Breakdown is the first cell's breakdown by hop, Breakdowns every
	// traced cell's (--breakdown; breakdown.go).
	Breakdown  *CellBreakdown  `json:"breakdown,omitempty"`
	Breakdowns []CellBreakdown `json:"breakdowns,omitempty"`
	// SwitchHop is a hop between processes, and between threads, on the
	// server side's core, measured before the matrix when it has a cell
	// of the simulated host (switchcost.go).
	SwitchHop *SwitchHop `json:"switch_hop,omitempty"`
}

// HTTPOptions configure bench http and bench paper. Zero fields take
// defaults.
type HTTPOptions struct {
	CPUs []int // nil: every online CPU; the first is the client's
	// Workloads and Servers name the cells to measure, every workload on
	// every server; nil: all (Short: see Paper).
	Workloads, Servers []string
	Connections        int           // 0: DefaultHTTPConnections
	Duration           time.Duration // measured, per cell; 0: DefaultHTTPDuration
	Warmup             time.Duration // before each cell; 0: a sixth of Duration, at most 1 s
	Timeout            time.Duration // 0: 2 s, as wrk
	// Short measures a short matrix (see Paper).
	Short bool
	// Client is where the load comes from: ClientNamespace (default) or
	// ClientRemoteHost.
	Client   string
	Progress io.Writer // a bar on a terminal, else a line per cell; nil for none
	// Log receives every process's log; nil: a file in the temporary
	// directory, removed when the benchmark succeeds and named in its
	// error otherwise.
	Log     *os.File
	Command string
	// Breakdown traces the simulated host's servers and breaks each cell's
	// requests down by hop (breakdown.go).
	Breakdown bool
	// NoTSO turns TCP segmentation offload on the TAP off, for the
	// multiserver hosts and httpd-monolith alike (launch.Options.NoTSO),
	// to measure the path without it.
	NoTSO bool
}

// Client placements.
const (
	// ClientNamespace is the loadgen code on Linux's sockets in a network
	// namespace, over the run's TAP to the simulated host and over a veth
	// pair to the Linux servers.
	ClientNamespace = "namespace"
	// ClientRemoteHost is a second simulated host, the monolithic stack in
	// one process (the clienthost role), on the far end of a `wire` from
	// the simulated host's nic: the talk's client machine. Linux's servers
	// cannot be reached that way; their cells keep the namespace client.
	ClientRemoteHost = "remote-host"
)

// Defaults of bench http and bench paper.
const (
	DefaultHTTPConnections = 10
	DefaultHTTPDuration    = 3 * time.Second
	ShortHTTPDuration      = time.Second
)

// ShortHTTPWorkloads are the workloads of the short matrix.
var ShortHTTPWorkloads = []string{"20B-1rpc", "20B-10rpc"}

func (o *HTTPOptions) defaults() error {
	if o.Connections == 0 {
		o.Connections = DefaultHTTPConnections
	}
	if o.Duration == 0 {
		o.Duration = DefaultHTTPDuration
		if o.Short {
			o.Duration = ShortHTTPDuration
		}
	}
	if o.Warmup == 0 {
		o.Warmup = min(o.Duration/6, time.Second)
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Workloads == nil && o.Short {
		o.Workloads = ShortHTTPWorkloads
	}
	switch o.Client {
	case "":
		o.Client = ClientNamespace
	case ClientNamespace, ClientRemoteHost:
	default:
		return fmt.Errorf("bench http: no client placement %q (have %s, %s)", o.Client, ClientNamespace, ClientRemoteHost)
	}
	if o.Connections < 0 || o.Duration < 0 || o.Warmup < 0 || o.Timeout < 0 {
		return fmt.Errorf("bench http: negative connections, duration, warm-up or timeout")
	}
	return nil
}

// pick returns the named workloads and servers, in the matrix's order.
func (o HTTPOptions) pick() ([]HTTPWorkload, []HTTPServer, error) {
	var ws []HTTPWorkload
	var ss []HTTPServer
	for _, n := range o.Workloads {
		if !slices.ContainsFunc(HTTPWorkloads, func(w HTTPWorkload) bool { return w.Name == n }) {
			return nil, nil, fmt.Errorf("bench http: no workload %q (have %s)", n, strings.Join(WorkloadNames(), ", "))
		}
	}
	for _, n := range o.Servers {
		if !slices.ContainsFunc(HTTPServers, func(s HTTPServer) bool { return s.Name == n }) {
			return nil, nil, fmt.Errorf("bench http: no server %q (have %s)", n, strings.Join(ServerNames(), ", "))
		}
	}
	for _, w := range HTTPWorkloads {
		if o.Workloads == nil || slices.Contains(o.Workloads, w.Name) {
			ws = append(ws, w)
		}
	}
	for _, s := range HTTPServers {
		if o.Servers == nil || slices.Contains(o.Servers, s.Name) {
			ss = append(ss, s)
		}
	}
	if len(ws) == 0 || len(ss) == 0 {
		return nil, nil, fmt.Errorf("bench http: no cell to measure")
	}
	return ws, ss, nil
}

// WorkloadNames are the names of HTTPWorkloads.
func WorkloadNames() []string {
	var ns []string
	for _, w := range HTTPWorkloads {
		ns = append(ns, w.Name)
	}
	return ns
}

// ServerNames are the names of HTTPServers.
func ServerNames() []string {
	var ns []string
	for _, s := range HTTPServers {
		ns = append(ns, s.Name)
	}
	return ns
}

// Paper runs `newtsim bench paper`: every workload on every server (or
// those o names). With o.Short it measures the short matrix instead, for
// a summary such as `newtsim run` prints: the workloads
// ShortHTTPWorkloads, unless o names others, on every server, ShortHTTPDuration
// a cell unless o.Duration says otherwise.
func Paper(ctx context.Context, o HTTPOptions) (*HTTPReport, error) {
	rep, err := HTTP(ctx, o)
	if rep != nil {
		rep.Bench = "paper"
	}
	return rep, err
}

// writeHTTPFiles writes the workloads' files into dir: the 20-byte file
// is text, the others bytes from a fixed seed.
func writeHTTPFiles(dir string) error {
	rng := rand.NewChaCha8([32]byte{'n', 'e', 'w', 't', 's', 'i', 'm', 'h', 't', 't', 'p'})
	done := map[string]bool{}
	for _, w := range HTTPWorkloads {
		if done[w.File] {
			continue
		}
		done[w.File] = true
		b := make([]byte, w.Size)
		if strings.HasSuffix(w.File, ".txt") {
			for i := range b {
				b[i] = 'a' + byte(i%26)
			}
			b[len(b)-1] = '\n'
		} else {
			rng.Read(b)
		}
		if err := os.WriteFile(filepath.Join(dir, w.File), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (r *HTTPReport) row(workload, server string) *HTTPRow {
	for i := range r.Rows {
		if r.Rows[i].Workload == workload && r.Rows[i].Server == server {
			return &r.Rows[i]
		}
	}
	return nil
}

// judge records the targets: on 20B-10rpc, httpd-exposed serves at least
// twice the requests per second of httpd-message-shm and makes at most
// 0.05 system calls per request, and httpd-monolith at least half of
// httpd-linux's; no cell's server side retransmits a segment; every cell
// served requests and is free of errors; and each breakdown's hops add up to the measured mean
// within 10%.
func (r *HTTPReport) judge() {
	x, m := r.row("20B-10rpc", "httpd-exposed"), r.row("20B-10rpc", "httpd-message-shm")
	if x != nil && m != nil {
		v := 0.0
		if m.ReqPerS > 0 {
			v = x.ReqPerS / m.ReqPerS
		}
		r.Checks = append(r.Checks, Check{Name: "20B-10rpc: httpd-exposed req/s / httpd-message-shm req/s", Value: v,
			Target: ">= 2", Met: x.ReqPerS >= 2*m.ReqPerS && m.ReqPerS > 0})
	}
	if x != nil {
		r.Checks = append(r.Checks, Check{Name: "20B-10rpc: httpd-exposed Linux system calls per request",
			Value: x.LinuxSyscallsPerRequest, Target: "<= 0.05", Met: x.LinuxSyscallsPerRequest <= 0.05})
	}
	r.lighttpdChecks()
	if mono, lin := r.row("20B-10rpc", "httpd-monolith"), r.row("20B-10rpc", "httpd-linux"); mono != nil && lin != nil {
		v := 0.0
		if lin.ReqPerS > 0 {
			v = mono.ReqPerS / lin.ReqPerS
		}
		r.Checks = append(r.Checks, Check{Name: "20B-10rpc: httpd-monolith req/s / httpd-linux req/s", Value: v,
			Target: ">= 0.5", Met: v >= 0.5})
	}
	var errs, rts int64
	counted := false
	for _, row := range r.Rows {
		errs += row.Errors
		if row.Retransmits != nil {
			rts += *row.Retransmits
			counted = true
		}
	}
	if counted {
		r.Checks = append(r.Checks, Check{Name: "retransmitted segments, the server sides newtsim counts, all cells",
			Value: float64(rts), Target: "== 0", Met: rts == 0})
	}
	// A cell that served nothing may count no error (every request of
	// a starved server side still in flight when the cell ends).
	empty := 0
	for _, row := range r.Rows {
		if row.NotInstalled == "" && row.ReqPerS <= 0 {
			empty++
		}
	}
	r.Checks = append(r.Checks, Check{Name: "cells that served no request", Value: float64(empty), Target: "== 0", Met: empty == 0})
	r.Checks = append(r.Checks, Check{Name: "errors, all cells", Value: float64(errs), Target: "== 0", Met: errs == 0})
	r.Checks = append(r.Checks, breakdownChecks(r.Breakdowns)...)
}

// Table prints the report as Markdown: the matrix as rows, a table of
// requests per second by workload and server, the checks and the notes.
func (r *HTTPReport) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# newtsim bench %s\n\n", r.Bench)
	fmt.Fprintf(&b, "- command: `%s`\n- when: %s\n- %s\n- core plan: %s\n- client: %s\n",
		r.Command, r.Time.Format(time.RFC3339), r.Machine.String(), r.CorePlan, r.Client)
	fmt.Fprintf(&b, "- load: %d connections, %.3g s measured a cell after %.3g s of warm-up, a request failed after %.3g s\n\n",
		r.Connections, r.DurationS, r.WarmupS, r.TimeoutS)
	b.WriteString("| workload | server | req/s | mean us | p50 us | p99 us | errors | retransmits | Linux syscalls per request | server CPU us per request | context switches per request |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range r.Rows {
		if row.NotInstalled != "" {
			fmt.Fprintf(&b, "| %s | %s | not installed (%s) | | | | | | | | |\n", row.Workload, row.Server, row.NotInstalled)
			continue
		}
		rt := "-"
		if row.Retransmits != nil {
			rt = fmt.Sprint(*row.Retransmits)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.0f | %.0f | %d | %s | %.3f | %.1f | %.2f |\n", row.Workload, row.Server, row.reqCell(),
			row.MeanUS, row.P50US, row.P99US, row.Errors, rt, row.LinuxSyscallsPerRequest, row.ServerCPUUSPerRequest, row.SwitchesPerRequest)
	}
	b.WriteString(r.costTable())
	b.WriteString(r.switchTable())
	var servers []string
	for _, s := range r.Servers {
		servers = append(servers, s.Name)
	}
	if len(r.Workloads) > 1 || len(servers) > 1 {
		fmt.Fprintf(&b, "\nrequests per second:\n\n| workload | %s |\n|---|%s\n", strings.Join(servers, " | "),
			strings.Repeat("---:|", len(servers)))
		for _, w := range r.Workloads {
			fmt.Fprintf(&b, "| %s |", w.Name)
			for _, s := range servers {
				if row := r.row(w.Name, s); row != nil && row.NotInstalled != "" {
					b.WriteString(" not installed |")
				} else if row != nil {
					fmt.Fprintf(&b, " %.0f |", row.ReqPerS)
				} else {
					b.WriteString(" - |")
				}
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n")
	for _, w := range r.Workloads {
		per := "requests"
		if w.RequestsPerConn == 1 {
			per = "request"
		}
		fmt.Fprintf(&b, "- %s: GET %s (%d bytes), %d %s per connection\n", w.Name, w.Path(), w.Size, w.RequestsPerConn, per)
	}
	for _, s := range r.Servers {
		fmt.Fprintf(&b, "- %s: %s\n", s.Name, s.What)
	}
	// The core plans, each with the servers measured under it.
	var plans []string
	under := map[string][]string{}
	for _, row := range r.Rows {
		if row.NotInstalled != "" {
			continue
		}
		if _, ok := under[row.CorePlan]; !ok {
			plans = append(plans, row.CorePlan)
		}
		if !slices.Contains(under[row.CorePlan], row.Server) {
			under[row.CorePlan] = append(under[row.CorePlan], row.Server)
		}
	}
	for _, p := range plans {
		fmt.Fprintf(&b, "- core plan of %s: %s\n", strings.Join(under[p], ", "), p)
	}
	b.WriteString("\n")
	writeChecks(&b, "check ", "note: ", r.Checks, r.Notes)
	return b.String() + breakdownMarkdown(r.Breakdowns)
}

// costTable prints, for the cells whose server side has several
// processes, each process's CPU time per request and its context
// switches per request: where the server side's time goes.
func (r *HTTPReport) costTable() string {
	var names []string
	for _, row := range r.Rows {
		for _, p := range row.Processes {
			if !slices.Contains(names, p.Name) {
				names = append(names, p.Name)
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nwhere the server side's CPU goes: each process's CPU us per request (context switches per request), over the measured run:\n\n| workload | server | %s |\n|---|---|%s\n",
		strings.Join(names, " | "), strings.Repeat("---:|", len(names)))
	for _, row := range r.Rows {
		if len(row.Processes) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s |", row.Workload, row.Server)
		for _, n := range names {
			i := slices.IndexFunc(row.Processes, func(p ProcessCost) bool { return p.Name == n })
			if i < 0 {
				b.WriteString(" - |")
				continue
			}
			p := row.Processes[i]
			fmt.Fprintf(&b, " %.1f (%.2f) |", p.CPUUSPerRequest, p.SwitchesPerRequest)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// WriteJSON writes the report to path.
func (r *HTTPReport) WriteJSON(path string) error { return atomicfile.WriteJSON(path, r) }

// WriteSVG draws requests per second as grouped bars, a group per
// workload and a colour per server, on a logarithmic axis where the
// figures spread over more than a factor of 20.
func (r *HTTPReport) WriteSVG(path string) error {
	c := chart.Chart{Title: "HTTP requests per second", Unit: "req/s", Caption: Caption(r.Machine, r.Command)}
	lo, hi := 0.0, 0.0
	for _, row := range r.Rows {
		if row.ReqPerS > 0 && (lo == 0 || row.ReqPerS < lo) {
			lo = row.ReqPerS
		}
		hi = max(hi, row.ReqPerS)
	}
	if lo > 0 && hi/lo > 20 {
		c.Log = true
		c.Title += " (log scale)"
	}
	for _, s := range r.Servers {
		c.Series = append(c.Series, s.Name)
	}
	for _, w := range r.Workloads {
		g := chart.Group{Label: w.Name}
		for _, s := range r.Servers {
			v, lo, hi := 0.0, 0.0, 0.0
			if row := r.row(w.Name, s.Name); row != nil {
				v = row.ReqPerS
				if len(row.ReqPerSSamples) > 1 && row.MinReqPerS > 0 {
					lo, hi = row.MinReqPerS, row.MaxReqPerS
				}
			}
			g.Lo, g.Hi = append(g.Lo, lo), append(g.Hi, hi)
			if c.Log && v <= 0 {
				v = 0.1 // a failed cell: the bottom of the axis
			}
			g.Values = append(g.Values, v)
		}
		c.Groups = append(c.Groups, g)
	}
	return c.WriteFile(path)
}

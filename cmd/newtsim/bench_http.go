package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/sim/bench"
	"github.com/newtsim/newtsim/sim/bench/probe"
)

// httpFlags are the flags bench http and bench paper share.
type httpFlags struct {
	jsonOut, mdOut, svgOut, cpus, log string
	repeat                            int
	o                                 bench.HTTPOptions
}

func (f *httpFlags) add(cmd *cobra.Command, duration time.Duration) {
	fl := cmd.Flags()
	reportFlags(fl, &f.jsonOut, &f.mdOut)
	fl.StringVar(&f.svgOut, "svg", "", "draw requests per second as grouped bars (a group per workload) in this SVG file")
	fl.StringVar(&f.cpus, "cpus", "", "CPUs to use, the first the client's (default: every online CPU)")
	fl.BoolVar(&f.o.Breakdown, "breakdown", false, "trace the simulated host's servers and break each cell's requests down by hop (docs/LATENCY.md)")
	fl.StringVar(&f.log, "log", "", "write every process's log to this file (default: a temporary file, kept only when the benchmark fails)")
	fl.IntVar(&f.o.Connections, "connections", bench.DefaultHTTPConnections, "connections the client keeps open, the same for every cell")
	fl.DurationVar(&f.o.Duration, "duration", duration, "how long each cell is measured")
	fl.DurationVar(&f.o.Warmup, "warmup", 0, "load before each cell, not measured (default: a sixth of --duration, at most 1s)")
	fl.DurationVar(&f.o.Timeout, "timeout", 2*time.Second, "a request not answered within this fails, as wrk's --timeout")
	fl.IntVar(&f.repeat, "repeat", 1, "measure the whole matrix this many times over and report each cell's median, "+
		"its least and greatest, every repetition's figure, and from 6 a 95% interval (newtsim compare reads them)")
	fl.BoolVar(&f.o.NoTSO, "no-tso", false, "TCP segmentation offload on the TAP off, for the simulated hosts and httpd-monolith (docs/PACKET_PATH.md)")
	fl.StringVar(&f.o.Client, "client", bench.ClientNamespace, "where the load comes from: "+bench.ClientNamespace+
		" (Linux's sockets in a network namespace) or "+bench.ClientRemoteHost+
		" (a second simulated host, the monolithic stack, on a wire from the simulated host's nic; Linux's servers keep the namespace)")
}

// run runs the benchmark with the options set, prints its cells (when
// cells is not nil) and its table, and writes the files asked for.
func (f *httpFlags) run(cmd *cobra.Command, measure func(context.Context, bench.HTTPOptions) (*bench.HTTPReport, error),
	cells func(io.Writer, *bench.HTTPReport)) error {
	ctx, stop, cs, command, err := benchStart(f.cpus)
	if err != nil {
		return err
	}
	defer stop()
	if f.o.Connections <= 0 || f.o.Duration <= 0 || f.o.Warmup < 0 || f.o.Timeout <= 0 || f.repeat <= 0 {
		return fmt.Errorf("--connections, --duration, --timeout and --repeat must be positive, --warmup not negative")
	}
	if f.log != "" {
		lf, err := os.Create(f.log)
		if err != nil {
			return err
		}
		defer lf.Close()
		f.o.Log = lf
	}
	out := cmd.OutOrStdout()
	f.o.CPUs, f.o.Progress, f.o.Command = cs, out, command
	var reps []*bench.HTTPReport
	for i := range f.repeat {
		if f.repeat > 1 {
			fmt.Fprintf(out, "repetition %d of %d\n", i+1, f.repeat)
		}
		r, err := measure(ctx, f.o)
		if err != nil {
			return err
		}
		reps = append(reps, r)
	}
	rep, err := bench.MergeHTTP(reps)
	if err != nil {
		return err
	}
	if cells != nil {
		cells(out, rep)
	}
	return showReport(cmd, rep, f.jsonOut, f.mdOut, f.svgOut)
}

// newBenchHTTPCommand is `newtsim bench http`: one cell of the paper's
// matrix (or the few --workloads and --servers name), printed as wrk
// prints a run.
func newBenchHTTPCommand() *cobra.Command {
	var f httpFlags
	var workload, server string
	var workloads, servers []string
	cmd := &cobra.Command{
		Use:   "http",
		Short: "One cell of the HTTP evaluation: a workload on a server, loaded from a client in a network namespace, as wrk would",
		Long: "Loads one server with one workload from a client on Linux's sockets in a network namespace and prints what wrk\n" +
			"would: requests per second, latency percentiles, transfer rate and errors, with the server's system calls per\n" +
			"request counted by the kernel. --workloads and --servers measure every workload named on every server named,\n" +
			"side by side in one run.\n\nWorkloads: " + strings.Join(bench.WorkloadNames(), ", ") +
			"\nServers: " + strings.Join(bench.ServerNames(), ", "),
		Example: `  sudo newtsim bench http
  sudo newtsim bench http --workload 20B-1rpc --server httpd-linux --duration 5s
  sudo newtsim bench http --workloads 20B-10rpc --servers httpd-linux,httpd-monolith,httpd-exposed --json http.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if f.o.Workloads, err = oneOrMany(cmd, "workload", workload, workloads); err != nil {
				return err
			}
			if f.o.Servers, err = oneOrMany(cmd, "server", server, servers); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "bench http: %s on %s, %d connections, %v\n", strings.Join(f.o.Workloads, ", "),
				strings.Join(f.o.Servers, ", "), f.o.Connections, f.o.Duration)
			return f.run(cmd, bench.HTTP, printHTTPCells)
		},
	}
	f.add(cmd, bench.DefaultHTTPDuration)
	cmd.Flags().StringVar(&workload, "workload", "20B-10rpc", "the workload: "+strings.Join(bench.WorkloadNames(), ", "))
	cmd.Flags().StringVar(&server, "server", "httpd-exposed", "the server: "+strings.Join(bench.ServerNames(), ", "))
	cmd.Flags().StringSliceVar(&workloads, "workloads", nil, "these workloads instead of --workload's one")
	cmd.Flags().StringSliceVar(&servers, "servers", nil, "these servers instead of --server's one")
	return cmd
}

// oneOrMany is what bench http measures of a kind (workload, server): the
// names the plural flag gives, else the singular flag's one; naming both
// is refused.
func oneOrMany(cmd *cobra.Command, flag, one string, many []string) ([]string, error) {
	if len(many) == 0 {
		return []string{one}, nil
	}
	if cmd.Flags().Changed(flag) {
		return nil, fmt.Errorf("--%s and --%ss: name one or the other", flag, flag)
	}
	return many, nil
}

// printHTTPCells prints each cell as wrk does.
func printHTTPCells(out io.Writer, rep *bench.HTTPReport) {
	for _, c := range rep.Cells {
		per := requestsPerConn(rep, c.Row.Workload)
		reqs := "requests"
		if per == 1 {
			reqs = "request"
		}
		fmt.Fprintf(out, "\nRunning %.3gs test @ %s (%s on %s)\n  %d connections, %d %s per connection\n",
			rep.DurationS, c.URL, c.Row.Workload, c.Row.Server, rep.Connections, per, reqs)
		fmt.Fprint(out, c.Report.String())
		fmt.Fprintf(out, "Server system calls: %d in %d threads, %.3f per request\n", c.Syscalls, c.Threads, c.Row.LinuxSyscallsPerRequest)
	}
}

func requestsPerConn(rep *bench.HTTPReport, workload string) int {
	for _, w := range rep.Workloads {
		if w.Name == workload {
			return w.RequestsPerConn
		}
	}
	return 0
}

// newBenchPaperCommand is `newtsim bench paper`: the whole matrix.
func newBenchPaperCommand() *cobra.Command {
	var f httpFlags
	var workloads, servers []string
	var short bool
	cmd := &cobra.Command{
		Use:   "paper",
		Short: "The NewtOS talk's evaluation: every HTTP workload on every server (httpd on Linux, message and exposed backends, monolithic host; lighttpd)",
		Long: "Runs every cell of the HTTP matrix, a workload on a server each, with a progress bar, and writes the table,\n" +
			"the JSON and a grouped bar chart.\n\nWorkloads: " + strings.Join(bench.WorkloadNames(), ", ") +
			"\nServers: " + strings.Join(bench.ServerNames(), ", "),
		Example: `  sudo newtsim bench paper --short
  sudo newtsim bench paper --json results/http.json --md results/http.md --svg results/http.svg
  sudo newtsim bench paper --short --repeat 5 --json http.json   # medians, spreads and error bars
  sudo newtsim bench paper --client remote-host --servers httpd-linux,httpd-exposed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.o.Workloads, f.o.Servers, f.o.Short = workloads, servers, short
			if short && !cmd.Flags().Changed("duration") {
				f.o.Duration = bench.ShortHTTPDuration
			}
			fmt.Fprintln(cmd.OutOrStdout(), "bench paper: measuring the HTTP matrix")
			return f.run(cmd, bench.Paper, nil)
		},
	}
	f.add(cmd, bench.DefaultHTTPDuration)
	cmd.Flags().StringSliceVar(&workloads, "workloads", nil, "only these workloads (default: all)")
	cmd.Flags().StringSliceVar(&servers, "servers", nil, "only these servers (default: all)")
	cmd.Flags().BoolVar(&short, "short", false, "the short matrix: workloads "+strings.Join(bench.ShortHTTPWorkloads, " and ")+
		", 1s a cell")
	return cmd
}

// newBenchHTTPPeerCommand is the hidden `newtsim bench http-peer`: the
// client and httpd-linux of bench http, each started in a namespace.
func newBenchHTTPPeerCommand() *cobra.Command {
	var o probe.HTTPPeerOptions
	cmd := &cobra.Command{
		Use:    "http-peer",
		Hidden: true,
		Short:  "A process of bench http outside the simulated host (started by bench http)",
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return probe.HTTPPeerMain(o)
		},
	}
	cmd.Flags().StringVar(&o.Mode, "mode", "", "loadgen (the client), httpd (httpd-linux) or monolith (httpd-monolith)")
	cmd.Flags().StringVar(&o.Config, "config", "", "the client's configuration (JSON)")
	cmd.Flags().StringVar(&o.Addr, "addr", "", "where httpd listens")
	cmd.Flags().StringVar(&o.Dir, "dir", "", "what httpd serves")
	cmd.Flags().StringVar(&o.Host, "host", "", "monolith: the host's address and subnet")
	cmd.Flags().StringVar(&o.Ifname, "ifname", "", "monolith: the TAP device to attach to")
	cmd.Flags().StringVar(&o.NetNS, "netns", "", "monolith: the namespace file that holds the TAP device")
	cmd.Flags().StringVar(&o.Ready, "ready", "", "monolith: where to write its note (JSON) once httpd listens")
	cmd.Flags().StringVar(&o.Pcap, "pcap", "", "monolith: record every frame the host sends and receives in this pcap file")
	cmd.Flags().BoolVar(&o.NoTSO, "no-tso", false, "monolith: open the TAP without TCP segmentation offload")
	return cmd
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/sim/bench"
	"github.com/newtsim/newtsim/sim/bench/probe"
	"github.com/newtsim/newtsim/sim/topology"
)

// NewBenchCommand returns `newtsim bench` and its benchmarks.
func NewBenchCommand(g *globals) *cobra.Command {
	cmd := group(needingRoot(&cobra.Command{
		Use:   "bench",
		Short: "Measure newtsim beside its references and Linux, in one run",
		Example: `  sudo newtsim bench eagain --json results/eagain.json --md results/eagain.md --svg results/eagain.svg
  sudo newtsim bench ipc --json - | jq .rows
  sudo newtsim bench eagain --check   # exit status 1 if a check is not met`,
	}))
	checkFlag(cmd.PersistentFlags())
	cmd.AddCommand(newBenchIPCCommand(), newBenchUDPCommand(), newBenchTCPCommand(), newBenchEagainCommand(), newBenchPeerCommand(),
		newBenchHTTPCommand(), newBenchPaperCommand(), newBenchHTTPPeerCommand(), newBenchFaultsCommand(), newBenchAllCommand())
	return cmd
}

func newBenchIPCCommand() *cobra.Command {
	var jsonOut, mdOut, svgOut, cpus string
	var slots int
	var compare bool
	cmd := &cobra.Command{
		Use:   "ipc",
		Short: "Round trips over user-space channels and kernel messages, beside a cache-line ping-pong and a pipe",
		Example: `  sudo newtsim bench ipc
  sudo newtsim bench ipc --cpus 2-3 --json results/ipc.json --md results/ipc.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop, cs, command, err := benchStart(cpus)
			if err != nil {
				return err
			}
			defer stop()
			_, err = runIPCBench(ctx, cmd, bench.IPCOptions{CPUs: cs, Command: command, Slots: slots, CompareSandbox: compare}, jsonOut, mdOut, svgOut)
			return err
		},
	}
	reportFlags(cmd.Flags(), &jsonOut, &mdOut)
	svgFlag(cmd.Flags(), &svgOut)
	cmd.Flags().StringVar(&cpus, "cpus", "", "CPUs to use, such as 0-1 (default: every online CPU; the first two are used)")
	cmd.Flags().IntVar(&slots, "slots", 0, "messages per ring for the transport rows (a power of two; default 256)")
	cmd.Flags().BoolVar(&compare, "compare-sandbox", false, "measure every row that runs under the kernel again with the sandbox off, right after it (docs/SANDBOX.md)")
	return cmd
}

func runIPCBench(ctx context.Context, cmd *cobra.Command, o bench.IPCOptions, jsonOut, mdOut, svgOut string) (*bench.Report, error) {
	out := cmd.OutOrStdout()
	fmt.Fprintln(out, "bench ipc: measuring (each row in its own pinned processes)")
	o.Progress = out
	rep, err := bench.IPC(ctx, o)
	if err != nil {
		return nil, err
	}
	return rep, showReport(cmd, rep, jsonOut, mdOut, svgOut)
}

func newBenchPeerCommand() *cobra.Command {
	var o probe.PeerOptions
	cmd := &cobra.Command{
		Use:    "peer",
		Hidden: true,
		Short:  "One measuring process of a benchmark (started by bench)",
		RunE: func(*cobra.Command, []string) error {
			return probe.PeerMain(o)
		},
	}
	cmd.Flags().StringVar(&o.Mode, "mode", "", "shm-local, pipe-ping, pipe-pong, ring-lead, ring-member, ring-threads, udp-*-linux, tcp-*-linux or the monolith modes (tcp-bulk-monolith, udp-stream-monolith, udp-ping-monolith)")
	cmd.Flags().StringVar(&o.File, "file", "", "the file or address the mode uses")
	cmd.Flags().StringVar(&o.Out, "out", "", "where the measuring side writes its result")
	cmd.Flags().IntVar(&o.Size, "size", 64, "datagram size (udp modes); bytes or connections (tcp modes); members (ring modes)")
	cmd.Flags().IntVar(&o.Index, "index", 0, "a ring member's place in its ring (ring-member)")
	cmd.Flags().IntVar(&o.Search.Trial, "trial", 0, "datagrams in each trial of the throughput search (udp blaster modes; 0: no search)")
	cmd.Flags().Float64Var(&o.Search.Deliver, "deliver", probe.DefaultDeliver, "the fraction of a trial that must arrive (udp blaster modes)")
	cmd.Flags().Float64Var(&o.Search.Resolution, "resolution", probe.DefaultResolution, "the search's resolution, a fraction of the rate (udp blaster modes)")
	return cmd
}

func newBenchUDPCommand() *cobra.Command {
	var jsonOut, mdOut, svgOut, cpus string
	var size int
	var loss, resolution float64
	var search probe.Search
	cmd := &cobra.Command{
		Use:   "udp",
		Short: "UDP round trips and streams between two apps: through the multiserver stack (shm and kernel messages), a monolithic host and Linux loopback",
		Long: `udp measures round trips of a datagram between two applications, then one-way
streams: each row's unpaced stream (the sender as fast as its socket calls
return), then its throughput, the highest offered rate at which a paced trial
stream delivers all but --loss percent of its datagrams (RFC 2544's throughput,
with a loss tolerance; --loss 0 is its zero loss), found by a search down from
the unpaced stream's rate.`,
		Example: `  sudo newtsim bench udp
  sudo newtsim bench udp --loss 0 --trial 5000
  sudo newtsim bench udp --size 1024 --json results/udp.json --md results/udp.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if loss < 0 || loss >= 100 || resolution <= 0 || search.Trial <= 0 {
				return fmt.Errorf("--loss must be in [0, 100), --resolution and --trial positive")
			}
			search.Deliver, search.Resolution = 1-loss/100, resolution/100
			ctx, stop, cs, command, err := benchStart(cpus)
			if err != nil {
				return err
			}
			defer stop()
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "bench udp: measuring")
			rep, err := bench.UDP(ctx, bench.UDPOptions{CPUs: cs, Progress: out, Size: size, Command: command, Search: search})
			if err != nil {
				return err
			}
			return showReport(cmd, rep, jsonOut, mdOut, svgOut)
		},
	}
	reportFlags(cmd.Flags(), &jsonOut, &mdOut)
	svgFlag(cmd.Flags(), &svgOut)
	cmd.Flags().StringVar(&cpus, "cpus", "", "CPUs to use (default: every online CPU)")
	cmd.Flags().IntVar(&size, "size", 64, "datagram size in bytes")
	cmd.Flags().Float64Var(&loss, "loss", 100*(1-probe.DefaultDeliver), "the loss, in percent of a trial's datagrams, the throughput search tolerates (0: RFC 2544's zero loss)")
	cmd.Flags().IntVar(&search.Trial, "trial", probe.DefaultTrial, "datagrams in each trial stream of the throughput search")
	cmd.Flags().Float64Var(&resolution, "resolution", 100*probe.DefaultResolution, "the search's resolution, in percent of the rate")
	return cmd
}

func newBenchTCPCommand() *cobra.Command {
	var jsonOut, mdOut, svgOut, cpus string
	var kernel bool
	var o bench.TCPOptions
	cmd := &cobra.Command{
		Use:   "tcp",
		Short: "TCP bulk throughput and connection set-up rate between two apps: through the multiserver stack (message and exposed backends), a monolithic host and Linux loopback",
		Example: `  sudo newtsim bench tcp
  sudo newtsim bench tcp --kernel --json results/tcp.json --md results/tcp.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop, cs, command, err := benchStart(cpus)
			if err != nil {
				return err
			}
			defer stop()
			if o.Bytes <= 0 || o.LinuxBytes < 0 || o.Conns <= 0 || o.LinuxConns <= 0 || o.Reps <= 0 {
				return fmt.Errorf("--bytes, --conns, --linux-conns and --reps must be positive, --linux-bytes positive or 0")
			}
			o.Transports = []topology.Transport{topology.Shm}
			if kernel {
				o.Transports = append(o.Transports, topology.Kernel)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "bench tcp: measuring")
			o.CPUs, o.Progress, o.Command = cs, out, command
			rep, err := bench.TCP(ctx, o)
			if err != nil {
				return err
			}
			return showReport(cmd, rep, jsonOut, mdOut, svgOut)
		},
	}
	f := cmd.Flags()
	reportFlags(f, &jsonOut, &mdOut)
	svgFlag(f, &svgOut)
	f.StringVar(&cpus, "cpus", "", "CPUs to use (default: every online CPU)")
	f.Int64Var(&o.Bytes, "bytes", 256<<20, "bytes per bulk transfer, on every row")
	f.Int64Var(&o.LinuxBytes, "linux-bytes", 0, "bytes per bulk transfer on Linux instead (0: --bytes, the same transfer side by side)")
	f.IntVar(&o.Conns, "conns", 2000, "connections timed on the simulated host")
	f.IntVar(&o.LinuxConns, "linux-conns", 20000, "connections timed on Linux")
	f.IntVar(&o.Reps, "reps", 5, "bulk transfers per row (the median is reported)")
	f.BoolVar(&kernel, "kernel", false, "also measure the simulated host over kernel messages (message-kernel rows)")
	return cmd
}

// parseCPUs parses a --cpus flag; empty means every online CPU (nil).
func parseCPUs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	cs, err := cpu.ParseList(s)
	if err != nil {
		return nil, fmt.Errorf("--cpus: %w", err)
	}
	return cs, nil
}

// benchStart is what every bench command does first: a context that
// Ctrl-C or SIGTERM cancels, the CPUs --cpus names, and the command line
// the report records.
func benchStart(cpus string) (context.Context, context.CancelFunc, []int, string, error) {
	cs, err := parseCPUs(cpus)
	if err != nil {
		return nil, nil, nil, "", err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return ctx, stop, cs, "newtsim " + strings.Join(os.Args[1:], " "), nil
}

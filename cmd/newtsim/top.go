package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/kernel"
	"github.com/newtsim/newtsim/sim/bench"
	"github.com/newtsim/newtsim/sim/launch"
)

// NewTopCommand returns `newtsim top`.
func NewTopCommand(g *globals) *cobra.Command {
	var once, plain bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Watch a running topology: each process's messages, sleeps, wake-ups, drops and buffers, every second",
		Long: `top finds the processes of the running topology in the kernel's status file
(the one ` + "`newtsim status`" + ` reads) and scrapes each one's metrics every interval.
It shows, per process, messages received and sent per second, sleeps and
wake-ups per second, drops per second (every drop counter, all reasons), its
restarts, its pool buffers in use and its CPU use; below, every drop by
process and reason with its total, and the tcp server's connections by state.

On a terminal the view is redrawn in place, busiest process first, dead
processes in red and dropping ones in yellow; otherwise (or with --plain)
each refresh is printed as plain lines in the topology's order.`,
		Example: `  newtsim top
  newtsim top --once            # one view, over one interval, then exit
  newtsim top --interval 5s --plain > top.log`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 10*time.Millisecond {
				return fmt.Errorf("--interval %v: want 10ms or more", interval)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			term := !plain && isTerminal(out)
			return runTop(ctx, g.stateDir, interval, once, func(v *topView) {
				if term {
					fmt.Fprint(out, "\x1b[H\x1b[2J")
					v.write(out, true)
				} else {
					v.write(out, false)
					fmt.Fprintln(out)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "print one view, of rates over one interval, and exit")
	cmd.Flags().BoolVar(&plain, "plain", false, "plain lines in the topology's order, even on a terminal")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between refreshes, over which rates are taken")
	return cmd
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// runTop scrapes the run in dir every interval and shows each view, until
// ctx is done, or after the first view when once.
func runTop(ctx context.Context, dir string, interval time.Duration, once bool, show func(*topView)) error {
	if _, alive := launch.Running(dir); !alive {
		return fmt.Errorf("top: nothing is running (state directory %s); start a topology with `newtsim up`", dir)
	}
	st, err := kernel.ReadStatus(dir)
	if err != nil {
		return fmt.Errorf("top: %w", err)
	}
	prev := scrapeRun(ctx, st)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s, err := kernel.ReadStatus(dir)
		if _, alive := launch.Running(dir); err != nil || !alive || s.Run != st.Run {
			return fmt.Errorf("top: run %s stopped", st.Run)
		}
		st = s
		cur := scrapeRun(ctx, st)
		show(buildView(st, prev, cur))
		if once {
			return nil
		}
		prev = cur
	}
}

// scrapeTimeout bounds one scrape of one process.
const scrapeTimeout = 3 * time.Second

// runSample is one scrape of every process of a run.
type runSample struct {
	at    time.Time
	procs map[string]procSample // by process name
}

// procSample is one process's metrics, or why there are none.
type procSample struct {
	pid  int
	fams map[string]*dto.MetricFamily
	err  error
}

// scrapeRun scrapes every live process of st at once.
func scrapeRun(ctx context.Context, st *kernel.Status) runSample {
	s := runSample{at: time.Now(), procs: map[string]procSample{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range st.Processes {
		if !p.Alive || p.MetricsPort == 0 {
			continue
		}
		wg.Go(func() {
			// Generous: on a loaded machine a server sharing its core
			// answers late, and a late view beats a row of errors.
			c, cancel := context.WithTimeout(ctx, scrapeTimeout)
			defer cancel()
			fams, err := prom.Scrape(c, prom.LocalURL(p.MetricsPort))
			mu.Lock()
			s.procs[p.Name] = procSample{pid: p.Pid, fams: fams, err: err}
			mu.Unlock()
		})
	}
	wg.Wait()
	return s
}

// topView is what top shows at one refresh.
type topView struct {
	Run, Topology, Transport string
	Over                     time.Duration // the time the rates are taken over
	Rows                     []topRow      // in the topology's order
	Drops                    []dropRow     // every drop counter above zero
	TCP                      []stateCount  // the tcp server's connections by state
}

// topRow is one process at one refresh; rates are per second.
type topRow struct {
	Name, Role      string
	Pid             int
	Alive           bool
	Restarts        int
	In, Out         float64
	Sleeps, Wakeups float64
	Drops           float64
	Buffers         float64 // pool buffers in use
	CPU             float64 // percent of one core
	Err             string  // why there are no figures
}

// dropRow is one drop counter of one process.
type dropRow struct {
	Process, Reason string
	Total, Rate     float64
}

// stateCount is the connections in one TCP state.
type stateCount struct {
	State string
	N     float64
}

// buildView makes the view of st from two samples of it: rates are the
// counters' differences over the time between them, for a process with the
// same pid in both (a restarted process starts its counters again).
func buildView(st *kernel.Status, prev, cur runSample) *topView {
	over := cur.at.Sub(prev.at)
	v := &topView{Run: st.Run, Topology: st.Topology, Transport: st.Transport, Over: over}
	secs := over.Seconds()
	for _, p := range st.Processes {
		r := topRow{Name: p.Name, Role: p.Role, Pid: p.Pid, Alive: p.Alive, Restarts: p.Restarts}
		c, ok := cur.procs[p.Name]
		switch {
		case !p.Alive:
			r.Err = "dead"
		case !ok:
			r.Err = "no metrics port"
		case c.err != nil:
			r.Err = "scrape failed: " + c.err.Error()
		}
		if r.Err != "" {
			v.Rows = append(v.Rows, r)
			continue
		}
		val := func(fams map[string]*dto.MetricFamily, name string) float64 {
			x, _ := prom.Value(fams, name, nil)
			return x
		}
		r.Buffers = val(c.fams, "newtsim_pool_buffers_in_use")
		pr, ok := prev.procs[p.Name]
		same := ok && pr.err == nil && pr.pid == c.pid && secs > 0
		rate := func(name string) float64 {
			if !same {
				return 0
			}
			return max(0, val(c.fams, name)-val(pr.fams, name)) / secs
		}
		r.In = rate("newtsim_ipc_messages_received_total")
		r.Out = rate("newtsim_ipc_messages_sent_total")
		r.Sleeps = rate("newtsim_ipc_sleeps_total")
		r.Wakeups = rate("newtsim_ipc_wakeups_total")
		r.CPU = 100 * rate("process_cpu_seconds_total")
		now := bench.Drops(c.fams)
		var before map[string]float64
		if same {
			before = bench.Drops(pr.fams)
		}
		for _, reason := range slices.Sorted(maps.Keys(now)) {
			d := dropRow{Process: p.Name, Reason: reason, Total: now[reason]}
			if same {
				d.Rate = max(0, now[reason]-before[reason]) / secs
			}
			r.Drops += d.Rate
			if d.Total > 0 {
				v.Drops = append(v.Drops, d)
			}
		}
		if p.Role == "tcp" {
			for _, s := range c.fams["newtsim_tcp_connections"].GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "state" && s.GetGauge().GetValue() > 0 {
						v.TCP = append(v.TCP, stateCount{l.GetValue(), s.GetGauge().GetValue()})
					}
				}
			}
		}
		v.Rows = append(v.Rows, r)
	}
	return v
}

// ANSI colours for the terminal view.
const (
	bold   = "\x1b[1m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	reset  = "\x1b[0m"
)

// write prints the view: for a terminal, busiest first (messages in and
// out) and coloured; otherwise plain, in the topology's order.
func (v *topView) write(w io.Writer, term bool) {
	paint := func(c, s string) string {
		if !term || c == "" {
			return s
		}
		return c + s + reset
	}
	rows := slices.Clone(v.Rows)
	if term {
		slices.SortStableFunc(rows, func(a, b topRow) int { return cmp.Compare(b.In+b.Out, a.In+a.Out) })
	}
	fmt.Fprintf(w, "run %s, topology %s, transport %s, rates per second over %v\n", v.Run, v.Topology, v.Transport, v.Over.Round(time.Millisecond))
	fmt.Fprintln(w, paint(bold, fmt.Sprintf("%-10s %-9s %8s %10s %10s %9s %9s %8s %8s %7s %6s",
		"process", "role", "pid", "msgs-in/s", "msgs-out/s", "sleeps/s", "wakeups/s", "drops/s", "restarts", "buffers", "cpu%")))
	for _, r := range rows {
		if r.Err != "" {
			fmt.Fprintln(w, paint(red, fmt.Sprintf("%-10s %-9s %8d %s, restarts %d", r.Name, r.Role, r.Pid, r.Err, r.Restarts)))
			continue
		}
		colour := ""
		if r.Drops > 0 {
			colour = yellow
		}
		fmt.Fprintln(w, paint(colour, fmt.Sprintf("%-10s %-9s %8d %10.0f %10.0f %9.0f %9.0f %8.0f %8d %7.0f %6.1f",
			r.Name, r.Role, r.Pid, r.In, r.Out, r.Sleeps, r.Wakeups, r.Drops, r.Restarts, r.Buffers, r.CPU)))
	}
	if len(v.TCP) > 0 {
		var parts []string
		for _, s := range v.TCP {
			parts = append(parts, fmt.Sprintf("%s %.0f", s.State, s.N))
		}
		fmt.Fprintf(w, "tcp connections: %s\n", strings.Join(parts, ", "))
	} else {
		fmt.Fprintln(w, "tcp connections: none")
	}
	if len(v.Drops) == 0 {
		fmt.Fprintln(w, "drops: none")
		return
	}
	fmt.Fprintln(w, "drops (total, per second):")
	for _, d := range v.Drops {
		line := fmt.Sprintf("  %-10s %-28s %10.0f %8.0f/s", d.Process, d.Reason, d.Total, d.Rate)
		if d.Rate > 0 {
			line = paint(yellow, line)
		}
		fmt.Fprintln(w, line)
	}
}

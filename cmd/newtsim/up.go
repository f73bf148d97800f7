package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/internal/sandbox"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/topology"
)

// topoFlags choose and adjust a topology.
type topoFlags struct {
	file      string
	transport string
	wait      string
	cpus      string
	slots     int
	nic       string
	noSandbox bool
	idBase    int
}

func (f *topoFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.file, "topology", "", "topology file (default: the built-in topology; see docs/TOPOLOGY.md)")
	cmd.Flags().StringVar(&f.transport, "transport", "", "override the topology's transport: shm or kernel")
	cmd.Flags().StringVar(&f.wait, "wait", "", "override every process's wait policy: block, poll or a spin duration such as 20us")
	cmd.Flags().StringVar(&f.cpus, "cpus", "", "plan for these CPUs only, such as 0-1 (default: every online CPU)")
	cmd.Flags().IntVar(&f.slots, "slots", 0, "messages per ring (a power of two; default 256)")
	cmd.Flags().BoolVar(&f.noSandbox, "no-sandbox", false, "run every process as root without a seccomp filter (docs/SANDBOX.md), for comparison")
	cmd.Flags().IntVar(&f.idBase, "sandbox-ids", sandbox.DefaultBase, "the sandbox's id range starts here: the run's group, then a user and group per process")
	cmd.Flags().StringVar(&f.nic, "nic", "none", "the nic's backend: none (no cable) or tap (a TAP device in a namespace of its own, for Linux programs to reach the host)")
}

func (f *topoFlags) load() (*topology.Topology, []int, error) {
	t := topology.Default()
	if f.file != "" {
		var err error
		if t, err = topology.Load(f.file); err != nil {
			return nil, nil, err
		}
	}
	if f.transport != "" {
		t.Transport = topology.Transport(f.transport)
	}
	if f.wait != "" {
		if _, err := ipc.ParseWaitPolicy(f.wait); err != nil {
			return nil, nil, err
		}
		t.Wait = f.wait
		for i := range t.Processes {
			t.Processes[i].Wait = f.wait
		}
	}
	cpus, err := parseCPUs(f.cpus)
	if err != nil {
		return nil, nil, err
	}
	return t, cpus, t.Validate()
}

// NewUpCommand returns `newtsim up`.
func NewUpCommand(g *globals) *cobra.Command {
	var f topoFlags
	var serviceTimes, traced, noTSO bool
	var app string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the topology in the foreground; Ctrl-C or `newtsim down` stops it",
		Example: `  sudo newtsim up
  sudo newtsim up --transport kernel --wait poll
  sudo newtsim up --topology my.topo --cpus 0-3
  sudo newtsim up --nic tap     # Linux reaches the simulated host through a TAP device
  sudo newtsim up --app httpd   # a web server on the simulated host; prints the curl command that reaches it
  sudo newtsim up --app httpd=./site --transport kernel
  sudo newtsim up --app udpecho=7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, cpus, err := f.load()
			if err != nil {
				return err
			}
			o := launch.Options{StateDir: g.stateDir, Topology: t, CPUs: cpus, Out: cmd.OutOrStdout(), Slots: f.slots, NIC: f.nic,
				ServiceTimes: serviceTimes, Trace: traced, NoSandbox: f.noSandbox, IDBase: f.idBase, NoTSO: noTSO}
			if app != "" {
				a, err := launch.ParseApp(app)
				if err != nil {
					return err
				}
				o.App = &a
				if !cmd.Flags().Changed("nic") {
					o.NIC = "tap" // an application is for Linux to reach
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Ready = func(*launchStatus) { fmt.Fprintln(o.Out, "up: Ctrl-C or `newtsim down` stops it") }
			return launch.Up(ctx, o)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&noTSO, "no-tso", false, "with --nic tap: no TCP segmentation offload on the TAP (every frame fits the MTU, as before docs/PACKET_PATH.md's TSO)")
	cmd.Flags().BoolVar(&serviceTimes, "service-times", false,
		"time every message each server handles, for newtsim_server_service_seconds (costs two clock reads a message)")
	cmd.Flags().StringVar(&app, "app", "", "run an application on the simulated host beside the stack, linked to syscall, and print how Linux reaches it: "+
		strings.Join(launch.AppRoles(), " or ")+"; implies --nic tap unless --nic is given")
	cmd.Flags().BoolVar(&traced, "trace", false,
		"record every message in a trace ring in each server, for `newtsim trace` (docs/LATENCY.md)")
	return needingRoot(cmd)
}

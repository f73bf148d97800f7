package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	// Applications register their roles.
	_ "github.com/newtsim/newtsim/apps/conformance"
	_ "github.com/newtsim/newtsim/apps/fetch"
	_ "github.com/newtsim/newtsim/apps/httpd"
	_ "github.com/newtsim/newtsim/apps/loadgen"
	_ "github.com/newtsim/newtsim/apps/udpecho"
	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kmsg"
	"github.com/newtsim/newtsim/servers"
)

// NewServeCommand returns the hidden `newtsim serve`, which the kernel runs
// for every server process.
func NewServeCommand() *cobra.Command {
	var o servers.Options
	var ep uint32
	var wait, cores string
	var peers, procs, routes []string
	cmd := &cobra.Command{
		Use:    "serve [-- role arguments]",
		Short:  "Run one server process (started by the kernel)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Endpoint = ipc.Endpoint(ep)
			o.KernelFD = kmsg.FD
			o.Args = args
			var err error
			if o.Wait, err = ipc.ParseWaitPolicy(wait); err != nil {
				return err
			}
			if cores != "" {
				if o.Cores, err = cpu.ParseList(cores); err != nil {
					return err
				}
			}
			if o.Peers, err = slots("--peer", peers); err != nil {
				return err
			}
			if o.Procs, err = slots("--proc", procs); err != nil {
				return err
			}
			o.Routes = map[string]string{}
			for _, r := range routes {
				dst, hop, ok := strings.Cut(r, "=")
				if !ok {
					return fmt.Errorf("--route %q: want DEST=NEXTHOP", r)
				}
				o.Routes[dst] = hop
			}
			return servers.Main(o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Name, "name", "", "process name")
	fl.StringVar(&o.Role, "role", "", "role: "+strings.Join(servers.Roles(), ", "))
	fl.Uint32Var(&ep, "endpoint", 0, "this incarnation's endpoint")
	fl.StringVar(&o.Run, "run", "", "run id")
	fl.StringVar(&o.Transport, "transport", "shm", "shm or kernel")
	fl.StringVar(&wait, "wait", "block", "wait policy")
	fl.StringVar(&cores, "cores", "", "cores the process is pinned to")
	fl.StringArrayVar(&peers, "peer", nil, "a peer, NAME=SLOT (repeated)")
	fl.StringArrayVar(&procs, "proc", nil, "a server of the run, NAME=SLOT (repeated)")
	fl.StringArrayVar(&routes, "route", nil, "the next hop towards a server, DEST=NEXTHOP (repeated)")
	return cmd
}

// slots parses repeated NAME=SLOT flags.
func slots(flag string, vals []string) (map[string]int, error) {
	m := map[string]int{}
	for _, v := range vals {
		name, slot, ok := strings.Cut(v, "=")
		n, err := strconv.Atoi(slot)
		if !ok || err != nil {
			return nil, fmt.Errorf("%s %q: want NAME=SLOT", flag, v)
		}
		m[name] = n
	}
	return m, nil
}

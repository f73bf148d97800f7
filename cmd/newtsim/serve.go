package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kmsg"
	"github.com/newtsim/newtsim/servers"
	"github.com/newtsim/newtsim/sim/machine"
)

// NewServeCommand returns the hidden `newtsim serve`, which the kernel runs
// for every server process.
func NewServeCommand() *cobra.Command {
	var o servers.Options
	var ep uint32
	var wait, cores string
	var peers []string
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
				if o.Cores, err = machine.ParseCPUList(cores); err != nil {
					return err
				}
			}
			o.Peers = map[string]int{}
			for _, p := range peers {
				name, slot, ok := strings.Cut(p, "=")
				n, err := strconv.Atoi(slot)
				if !ok || err != nil {
					return fmt.Errorf("--peer %q: want NAME=SLOT", p)
				}
				o.Peers[name] = n
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
	return cmd
}

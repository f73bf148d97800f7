package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/internal/sandbox"
	"github.com/newtsim/newtsim/ipc/boot"
	"github.com/newtsim/newtsim/ipc/kmsg"
	"github.com/newtsim/newtsim/servers/sys"
)

// NewServeCommand returns the hidden `newtsim serve`, which the kernel runs
// for every server process. Its arguments are a process's boot options
// (package ipc/boot), which the kernel writes and boot.Parse reads. With
// --standby (and --run, so the run's clean-up finds it) the process waits
// on its kernel connection for the boot options of the server it is to
// become (kernel/standby.go), and ends quietly if the kernel closes it.
func NewServeCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "serve --name NAME --role ROLE ... [-- role arguments] | serve --standby --run RUN",
		Short:              "Run one server process (started by the kernel)",
		Long:               "Run one server process (started by the kernel). Roles: " + strings.Join(roleNames(), ", ") + ".",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			// main prints the error; sys.Main logs every later exit, with
			// the server's name.
			if len(args) > 0 && args[0] == "--standby" {
				argv, err := kmsg.ReceiveBoot(kmsg.FD)
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("serve: standby: %w", err)
				}
				args = argv
			}
			o, err := boot.Parse(args)
			if err != nil {
				return fmt.Errorf("serve: boot options: %w", err)
			}
			start, ok := roles[o.Role]
			if !ok {
				return fmt.Errorf("serve: unknown role %q (have %s)", o.Role, strings.Join(roleNames(), ", "))
			}
			o.KernelFD = kmsg.FD
			if o.Sandbox != 0 {
				start = confined(o, start)
			}
			return sys.Main(o, start)
		},
	}
}

// confined runs a role's set-up, then puts the process into its protection
// domain (docs/SANDBOX.md) before it registers and handles its first
// message.
func confined(o boot.Options, start sys.Starter) sys.Starter {
	return func(s *sys.Server) (sys.Handler, error) {
		h, err := start(s)
		if err != nil {
			return nil, err
		}
		peers := slices.Collect(maps.Values(o.Peers))
		if err := (sandbox.IDs{Base: o.Sandbox}).Enter(o.Endpoint.Slot(), peers, o.Filter); err != nil {
			return nil, err
		}
		return h, nil
	}
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/netns"
)

// NewExecCommand returns `newtsim exec`: a program run in the network
// namespace of the running topology's TAP, where Linux reaches the
// simulated host; `ip netns exec` without iproute2.
func NewExecCommand(g *globals) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "exec [--netns NAME] -- PROGRAM [ARG...]",
		Short: "Run a program in the running topology's network namespace (up --nic tap), where the simulated host is 198.18.0.2",
		Example: `  sudo newtsim exec curl http://198.18.0.2/
  sudo newtsim exec -- ping -c 3 198.18.0.2
  sudo newtsim exec --netns newtsim-1a2b3c4d -- ss -tn`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				st, alive := launch.Running(g.stateDir)
				if !alive {
					return fmt.Errorf("exec: nothing is running (state directory %s): start `newtsim up --nic tap` (or --app), or name --netns", g.stateDir)
				}
				name = launch.NSName(st.Run)
			}
			ns := &netns.NS{Name: name}
			if _, err := os.Stat(ns.Path()); err != nil {
				return fmt.Errorf("exec: no namespace %s (was the run started with --nic tap?): %w", name, err)
			}
			path, err := exec.LookPath(args[0])
			if err != nil {
				return fmt.Errorf("exec: %w", err)
			}
			fd, err := unix.Open(ns.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("exec: %w", err)
			}
			// execve keeps the namespace of the thread that calls it: enter
			// it on this thread, and replace the process from there.
			runtime.LockOSThread()
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("exec: enter %s: %w", name, err)
			}
			return fmt.Errorf("exec: %s: %w", path, syscall.Exec(path, args, os.Environ()))
		},
	}
	cmd.Flags().SetInterspersed(false) // the program's flags are its own: exec curl -sS URL
	cmd.Flags().StringVar(&name, "netns", "", "the namespace (default: the running topology's, newtsim-RUN)")
	return needingRoot(cmd)
}

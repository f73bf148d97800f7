package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/newtsim/newtsim/sim/launch"
)

// globals are the flags every command shares, and what the commands ask
// of the machine.
type globals struct {
	stateDir string
	euid     func() int // the effective user id; tests replace it
}

// NewRootCommand returns the newtsim command with every subcommand.
func NewRootCommand() *cobra.Command {
	return newRootCommand(&globals{euid: os.Geteuid})
}

func newRootCommand(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "newtsim",
		Short: "A multiserver OS network stack as real processes, measured beside Linux",
		Long: `newtsim runs a NewtOS-style network stack (kernel, syscall, tcp, udp, ip, pf
and driver servers, each its own process pinned to its cores) and measures what
socket calls cost on it, beside Linux's own sockets in the same run.

Most commands need root (network namespaces, /run/newtsim, pinning) and Linux.`,
		Example: `  sudo newtsim run --results results/latest   # the main job: start, show, measure, stop
  sudo newtsim up                             # start the topology in the foreground
  newtsim --version`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if needsRoot(cmd) && g.euid() != 0 {
				name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
				return fmt.Errorf("%s needs root (network namespaces, /run/newtsim, pinning): run it with sudo", name)
			}
			return checkOutputs(cmd)
		},
		PersistentPostRunE: func(cmd *cobra.Command, _ []string) error { return unmetChecks(cmd) },
	}
	root.SetVersionTemplate("{{.Version}}")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see `%s --help`)", err, cmd.CommandPath())
	})
	group(root)
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", launch.DefaultStateDir, "directory for the running topology's state files")
	root.AddCommand(
		NewUpCommand(g), NewDownCommand(g), NewStatusCommand(g), NewTopCommand(g), NewExecCommand(g), NewRunCommand(g), NewTraceCommand(g),
		NewBenchCommand(g), NewKernelCommand(g), NewServeCommand(), NewCompareCommand(), NewHostCommand(), NewVersionCommand(),
	)
	return root
}

// completion adds cobra's `completion` command now, rather than when the
// tree runs, and makes it a group with examples like every other command.
// The command keeps the output root has when it is added.
func completion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	c, _, err := root.Find([]string{"completion"})
	if err != nil || c == root {
		return
	}
	c.Example = "  newtsim completion bash > /etc/bash_completion.d/newtsim"
	load := map[string]string{ // how each shell loads the script now
		"bash": "source <(newtsim completion bash)", "zsh": "source <(newtsim completion zsh)",
		"fish": "newtsim completion fish | source", "powershell": "newtsim completion powershell | Out-String | Invoke-Expression",
	}
	for _, shell := range c.Commands() {
		if l, ok := load[shell.Name()]; ok {
			shell.Example = "  " + l
		}
	}
	group(c)
}

// group makes cmd a command that only holds others: run bare it prints its
// help, and an argument that names none of its commands is an error with a
// suggestion, not the help and exit status 0. It returns cmd.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.SuggestionsMinimumDistance = 2
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			return fmt.Errorf("%s; did you mean %s?", msg, strings.Join(s, " or "))
		}
		return fmt.Errorf("%s (see `%s --help`)", msg, cmd.CommandPath())
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return cmd
}

// rootAnnotation marks a command that needs root; its subcommands do too.
const rootAnnotation = "newtsim/needs-root"

// needingRoot marks cmd as a command that needs root and returns it.
func needingRoot(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[rootAnnotation] = "yes"
	return cmd
}

// needsRoot reports whether cmd, or a command above it, needs root.
// Hidden commands are started by newtsim itself, already as root, and a
// group only prints its help: neither is checked.
func needsRoot(cmd *cobra.Command) bool {
	if cmd.Hidden || cmd.HasSubCommands() {
		return false
	}
	for c := cmd; c != nil; c = c.Parent() {
		if c.Annotations[rootAnnotation] != "" {
			return true
		}
	}
	return false
}

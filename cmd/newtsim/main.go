// Command newtsim runs a NewtOS-style multiserver network stack as real
// processes and measures what a socket call costs on it, beside Linux's own
// sockets. See README.md and docs/.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(execute(NewRootCommand(), os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs the command tree under root with args, writing to stdout
// and stderr, and returns the exit status: 0, or 1 after printing the error.
func execute(root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	completion(root)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "newtsim:", err)
		return 1
	}
	return 0
}

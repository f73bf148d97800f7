// Command newtsim runs a NewtOS-style multiserver network stack as real
// processes and measures what a socket call costs on it, beside Linux's own
// sockets. See README.md and docs/.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := NewRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "newtsim:", err)
		os.Exit(1)
	}
}

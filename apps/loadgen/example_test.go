package loadgen_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"os"
	"time"

	"github.com/newtsim/newtsim/apps/loadgen"
	"github.com/newtsim/newtsim/apps/socket"
)

// A wrk-like run: 100 connections for ten seconds, with a progress bar when
// standard error is a terminal.
func ExampleRun() {
	api, err := socket.Open(socket.Config{Backend: "linux"})
	if err != nil {
		log.Fatal(err)
	}
	rep, err := loadgen.Run(context.Background(), loadgen.Config{
		API:         api,
		Target:      netip.MustParseAddrPort("127.0.0.1:8080"),
		Path:        "/index.html",
		Duration:    10 * time.Second,
		Connections: 100,
		Timeout:     2 * time.Second,
		Progress:    os.Stderr,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(rep)
}

package probe

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/apps/ready"
	"github.com/newtsim/newtsim/apps/socket"
)

// Every benchmark that starts a listening side and a connecting side learns
// the listener's port from the stack that picked it and starts connecting
// only once the listener is known to listen; no two processes agree on a
// port by convention, and none connects on the chance that the other is up.
//
// On the simulated host, where the two sides are processes of one run
// started together, the listening side writes a note (package ready) once
// it listens and the connecting side waits for it. On Linux, the driver
// (package bench) opens the server side's socket itself on a port the
// kernel picks and hands it over as descriptor peerSocket, so it listens
// before either side starts.

// readyUsage documents the --ready flag of the roles that listen or
// connect.
const readyUsage = "a file: the listening side writes its port there once it listens; " +
	"the connecting side waits for it and connects to that port at --target's address"

// readyWait bounds how long a connecting side waits for the listening side
// of its run to listen.
const readyWait = 60 * time.Second

// listenReady listens on port of every local address (0: a port the stack
// picks) and, when file is not empty, writes the port it got there.
func listenReady(api socket.API, port uint16, backlog int, file string) (socket.FD, error) {
	ln, err := Listen(api, netip.AddrPortFrom(netip.IPv4Unspecified(), port), backlog)
	if err != nil {
		return -1, err
	}
	if file == "" {
		return ln, nil
	}
	addr, err := api.LocalAddr(ln)
	if err == nil {
		err = ready.Write(file, addr.Port())
	}
	if err != nil {
		api.Close(ln)
		return -1, fmt.Errorf("announce the listener: %w", err)
	}
	return ln, nil
}

// awaitListener waits for the listening side's note in file and returns
// target with the port in it; with file empty it returns target as it is.
func awaitListener(target netip.AddrPort, file string) (netip.AddrPort, error) {
	if file == "" {
		return target, nil
	}
	port, err := ready.Await(file, readyWait)
	if err != nil {
		return target, fmt.Errorf("wait for the listener: %w", err)
	}
	return netip.AddrPortFrom(target.Addr(), port), nil
}

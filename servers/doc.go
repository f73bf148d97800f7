// Package servers holds the roles of the network stack's server processes,
// one file each, as MINIX's servers are: nic, driver, pf and ip on the
// packet path (docs/PACKET_PATH.md), the udp and tcp transports (tcp with
// its exposed socket buffers, docs/EXPOSED.md), syscall, which owns the
// applications' descriptor tables, and the diagnostic roles prober, hostile
// and echo.
//
// Each role is a Starter for the runtime in package sys, which runs the
// process and its loop; the protocol work itself is done by the pure
// engines in the packages below (ip, pf, udp, tcp). The one table naming
// every role is in cmd/newtsim.
package servers

package main

import (
	"maps"
	"slices"

	"github.com/newtsim/newtsim/apps/conformance"
	"github.com/newtsim/newtsim/apps/fetch"
	"github.com/newtsim/newtsim/apps/httpd"
	"github.com/newtsim/newtsim/apps/loadgen"
	"github.com/newtsim/newtsim/apps/udpecho"
	"github.com/newtsim/newtsim/servers"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/sim/bench/probe"
	"github.com/newtsim/newtsim/sim/host"
)

// roles is every role a process of a topology may have: the one table that
// says what `newtsim serve --role NAME` runs. A role exists only by being
// named here.
var roles = map[string]sys.Starter{
	// The network stack (package servers).
	"nic":     servers.NIC,
	"driver":  servers.Driver,
	"pf":      servers.PF,
	"ip":      servers.IP,
	"udp":     servers.UDP,
	"tcp":     servers.TCP,
	"syscall": servers.Syscall,
	// Diagnostics.
	"echo":    servers.Echo,
	"prober":  servers.Prober,
	"hostile": servers.Hostile,
	// Applications.
	"httpd":    httpd.Role,
	"loadgen":  loadgen.Role,
	"fetch":    fetch.Role,
	"udpecho":  udpecho.Role,
	"socktest": conformance.Role,
	"xhostile": conformance.HostileRole,
	// A remote client machine: a whole host in one process on a wire.
	"clienthost": host.ClientHost,
	// The measuring sides of the benchmarks.
	"pinger":     probe.PingerRole,
	"reflector":  probe.ReflectorRole,
	"eagain":     probe.EagainRole,
	"udpping":    probe.UDPPingRole,
	"udpsink":    probe.UDPSinkRole,
	"udpblast":   probe.UDPBlastRole,
	"tcpsink":    probe.TCPSinkRole,
	"tcpsource":  probe.TCPSourceRole,
	"tcpaccept":  probe.TCPAcceptRole,
	"tcpconnect": probe.TCPConnectRole,
}

// roleNames lists the roles, sorted.
func roleNames() []string { return slices.Sorted(maps.Keys(roles)) }

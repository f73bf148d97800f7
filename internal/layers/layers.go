// Package layers states the one direction newtsim's imports may point, and
// checks a package graph against it. From the bottom up:
//
//	internal      ground utilities: CPUs, spawning, the TSC, Prometheus, files
//	engines       pure protocol logic: servers/ip, tcp, udp, pf and their helpers
//	ipc           messages, rings, kernel messages, pools, run files, boot options
//	nic           NIC backends and models
//	kernel        the microkernel process
//	servers/sys   the runtime every process runs on (MINIX's libsys)
//	servers       the network stack's roles
//	apps          applications and the socket library
//	sim           topologies, core plans, the launcher, benchmarks, hosts
//	cmd           the one binary and its role table
//
// A package may import packages of its own layer and of the layers below
// it, never above. Engines are stricter: they import only other engines and
// the standard library, and of the standard library not os or net, so that
// they stay pure and deterministic (their clock is passed in).
package layers

import (
	"fmt"
	"slices"
	"strings"
)

// Module is the module path every checked package is under.
const Module = "github.com/newtsim/newtsim"

// Layer is a rank: a package may import only packages of equal or lower
// rank.
type Layer int

// The layers, bottom up.
const (
	Internal Layer = iota
	Engines
	IPC
	NIC
	Kernel
	Sys
	Servers
	Apps
	Sim
	Cmd
)

var names = [...]string{"internal", "engines", "ipc", "nic", "kernel", "servers/sys", "servers", "apps", "sim", "cmd"}

// String names the layer.
func (l Layer) String() string {
	if l < 0 || int(l) >= len(names) {
		return fmt.Sprintf("Layer(%d)", int(l))
	}
	return names[l]
}

// engines are the packages of the pure protocol layer.
var engines = []string{"servers/ip", "servers/tcp", "servers/udp", "servers/pf", "servers/checksum",
	"servers/proto", "servers/checker", "servers/sockabi"}

// Of returns the layer of a package path of the module (with or without the
// module prefix), and false for a path it does not know.
func Of(pkg string) (Layer, bool) {
	p := strings.TrimPrefix(strings.TrimPrefix(pkg, Module), "/")
	under := func(dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	for _, e := range engines {
		if under(e) {
			return Engines, true
		}
	}
	switch {
	case under("internal"):
		return Internal, true
	case under("ipc"):
		return IPC, true
	case under("nic"):
		return NIC, true
	case under("kernel"):
		return Kernel, true
	case under("servers/sys"):
		return Sys, true
	case under("servers"):
		return Servers, true
	case under("apps"):
		return Apps, true
	case under("sim"):
		return Sim, true
	case under("cmd"):
		return Cmd, true
	}
	return 0, false
}

// impureStd are the standard packages an engine may not import.
var impureStd = []string{"os", "os/exec", "os/signal", "net", "net/http", "syscall"}

// Check returns one line for each import of pkg that breaks the rule, and
// one for a package of the module that no layer names.
func Check(pkg string, imports []string) []string {
	from, ok := Of(pkg)
	if !ok {
		return []string{fmt.Sprintf("%s: in no layer (add it to package layers)", pkg)}
	}
	var bad []string
	for _, imp := range imports {
		if !strings.HasPrefix(imp, Module+"/") && imp != Module {
			if from == Engines && slices.Contains(impureStd, imp) {
				bad = append(bad, fmt.Sprintf("%s (engines) imports %s: engines do no I/O", pkg, imp))
			}
			continue
		}
		to, ok := Of(imp)
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s imports %s, which is in no layer", pkg, imp))
		case from == Engines && to != Engines:
			bad = append(bad, fmt.Sprintf("%s (engines) imports %s (%s): engines import only engines", pkg, imp, to))
		case to > from:
			bad = append(bad, fmt.Sprintf("%s (%s) imports %s (%s): an import pointing up", pkg, from, imp, to))
		}
	}
	return bad
}

// Package boot is what a server process is started with: its name, role,
// endpoint, run, transport, wait policy, cores, peers, routes and its
// role's own arguments. The kernel writes them as a command line with
// Argv; the server reads them back with Parse. One type serves both sides,
// so they cannot drift apart.
package boot

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/ipc"
)

// Options are what the kernel starts a server with.
type Options struct {
	Name      string
	Role      string
	Endpoint  ipc.Endpoint
	Run       string
	Transport string         // "shm" or "kernel"
	Wait      ipc.WaitPolicy // how Recv waits
	Cores     []int
	Peers     map[string]int    // peer name to slot
	Procs     map[string]int    // every server of the run, name to slot
	Routes    map[string]string // next hop towards each server not a peer
	// Roles gives the role of each server of the run, by name: what its
	// messages may be (ipc.ClassOf, ipc.MaySend).
	Roles    map[string]string
	Args     []string // role-specific arguments
	KernelFD int      // the kernel connection; kmsg.FD when started by the kernel
	// ServiceTimes times the role's handling of each message, for the
	// histogram newtsim_server_service_seconds (off: it costs two clock
	// reads a message).
	ServiceTimes bool
	// Trace turns on the process's trace recorder (package
	// internal/trace), served at trace.Path on its metrics port.
	Trace bool
	// Sandbox is the run's id base (package sandbox): the process runs as
	// user Sandbox+slot under the seccomp filter Filter. 0: no sandbox.
	Sandbox int
	Filter  string
}

// Argv writes o as the arguments Parse reads (without a program or command
// name): flags in a fixed order, repeated flags sorted by name, then "--"
// and the role's arguments. KernelFD is not written: a started server finds
// its kernel connection at kmsg.FD.
func (o Options) Argv() []string {
	a := []string{
		"--name", o.Name, "--role", o.Role,
		"--endpoint", strconv.FormatUint(uint64(o.Endpoint), 10),
		"--run", o.Run, "--transport", o.Transport,
		"--wait", formatWait(o.Wait),
	}
	if len(o.Cores) > 0 {
		a = append(a, "--cores", cpu.FormatList(o.Cores))
	}
	if o.ServiceTimes {
		a = append(a, "--service-times")
	}
	if o.Trace {
		a = append(a, "--trace")
	}
	if o.Sandbox != 0 {
		a = append(a, "--sandbox", strconv.Itoa(o.Sandbox), "--filter", o.Filter)
	}
	for _, n := range slices.Sorted(maps.Keys(o.Peers)) {
		a = append(a, "--peer", n+"="+strconv.Itoa(o.Peers[n]))
	}
	for _, n := range slices.Sorted(maps.Keys(o.Procs)) {
		a = append(a, "--proc", n+"="+strconv.Itoa(o.Procs[n]))
	}
	for _, n := range slices.Sorted(maps.Keys(o.Routes)) {
		a = append(a, "--route", n+"="+o.Routes[n])
	}
	for _, n := range slices.Sorted(maps.Keys(o.Roles)) {
		a = append(a, "--role-of", n+"="+o.Roles[n])
	}
	if len(o.Args) > 0 {
		a = append(a, "--")
		a = append(a, o.Args...)
	}
	return a
}

// formatWait writes a wait policy as ipc.ParseWaitPolicy reads it.
func formatWait(w ipc.WaitPolicy) string {
	if w.Yield && w.Spin != 0 {
		return "yield:" + w.Spin.String()
	}
	switch w.Spin {
	case 0:
		return "block"
	case ipc.SpinForever:
		return "poll"
	}
	return w.Spin.String()
}

// Parse reads the arguments Argv writes. Unknown flags, malformed values
// and a missing name or role are errors.
func Parse(args []string) (Options, error) {
	var o Options
	var ep uint64
	var wait, cores string
	var peers, procs, routes, roles listFlag
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.Name, "name", "", "process name")
	fs.StringVar(&o.Role, "role", "", "role")
	fs.Uint64Var(&ep, "endpoint", 0, "this incarnation's endpoint")
	fs.StringVar(&o.Run, "run", "", "run id")
	fs.StringVar(&o.Transport, "transport", "shm", "shm or kernel")
	fs.StringVar(&wait, "wait", "block", "wait policy")
	fs.StringVar(&cores, "cores", "", "cores the process is pinned to")
	fs.BoolVar(&o.ServiceTimes, "service-times", false, "time the role's handling of each message")
	fs.BoolVar(&o.Trace, "trace", false, "record messages in the trace ring")
	fs.IntVar(&o.Sandbox, "sandbox", 0, "the run's sandbox id base (0: none)")
	fs.StringVar(&o.Filter, "filter", "", "the seccomp filter to run under")
	fs.Var(&peers, "peer", "a peer, NAME=SLOT (repeated)")
	fs.Var(&procs, "proc", "a server of the run, NAME=SLOT (repeated)")
	fs.Var(&routes, "route", "the next hop towards a server, DEST=NEXTHOP (repeated)")
	fs.Var(&roles, "role-of", "the role of a server of the run, NAME=ROLE (repeated)")
	if err := fs.Parse(args); err != nil {
		return Options{}, fmt.Errorf("boot: %w", err)
	}
	if o.Name == "" || o.Role == "" {
		return Options{}, errors.New("boot: --name and --role are required")
	}
	if ep > uint64(^uint32(0)) {
		return Options{}, fmt.Errorf("boot: --endpoint %d is out of range", ep)
	}
	o.Endpoint = ipc.Endpoint(ep)
	if rest := fs.Args(); len(rest) > 0 {
		o.Args = rest
	}
	var err error
	if o.Wait, err = ipc.ParseWaitPolicy(wait); err != nil {
		return Options{}, fmt.Errorf("boot: %w", err)
	}
	if cores != "" {
		if o.Cores, err = cpu.ParseList(cores); err != nil {
			return Options{}, fmt.Errorf("boot: --cores: %w", err)
		}
	}
	if o.Peers, err = slots("--peer", peers); err != nil {
		return Options{}, err
	}
	if o.Procs, err = slots("--proc", procs); err != nil {
		return Options{}, err
	}
	o.Routes = map[string]string{}
	for _, r := range routes {
		dst, hop, ok := strings.Cut(r, "=")
		if !ok || dst == "" || hop == "" {
			return Options{}, fmt.Errorf("boot: --route %q: want DEST=NEXTHOP", r)
		}
		o.Routes[dst] = hop
	}
	for _, r := range roles {
		name, role, ok := strings.Cut(r, "=")
		if !ok || name == "" || role == "" {
			return Options{}, fmt.Errorf("boot: --role-of %q: want NAME=ROLE", r)
		}
		if o.Roles == nil {
			o.Roles = map[string]string{}
		}
		o.Roles[name] = role
	}
	return o, nil
}

// slots parses repeated NAME=SLOT flags.
func slots(flag string, vals []string) (map[string]int, error) {
	m := map[string]int{}
	for _, v := range vals {
		name, slot, ok := strings.Cut(v, "=")
		n, err := strconv.Atoi(slot)
		if !ok || name == "" || err != nil || n < 0 || n >= ipc.MaxSlots {
			return nil, fmt.Errorf("boot: %s %q: want NAME=SLOT with SLOT in 0-%d", flag, v, ipc.MaxSlots-1)
		}
		m[name] = n
	}
	return m, nil
}

// listFlag collects a repeated flag's values.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

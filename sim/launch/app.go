package launch

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/newtsim/newtsim/apps/ready"
	"github.com/newtsim/newtsim/sim/topology"
)

// HostAddr is the simulated host's address on a tap run's TAP device.
const HostAddr = "198.18.0.2"

// App is an application `newtsim up --app` runs on the simulated host,
// beside the stack: a process of its role, linked to syscall (the socket
// library's message backend), started and stopped with the run.
type App struct {
	Role string // an application role: httpd or udpecho
	Arg  string // what followed '=': httpd's directory, udpecho's port; "" for the default
}

// appDir is where a run keeps what it made for its application (httpd's
// default page, the ready note), in its state directory; Clean removes it.
const appDir = "app"

// appKinds says, for each role `--app` takes, what its argument is and how
// it runs.
var appKinds = map[string]struct {
	arg  string // what the argument after '=' is, for help and errors
	args func(a App, dir string) ([]string, error)
	// reach returns what a person types in the run's namespace to reach
	// the application, and what it is.
	reach func(a App) (cmd []string, what string)
}{
	"httpd": {
		arg: "DIR (default: a page of its own)",
		args: func(a App, dir string) ([]string, error) {
			www := a.Arg
			if www == "" {
				www = filepath.Join(dir, "www")
				if err := os.MkdirAll(www, 0o755); err != nil {
					return nil, err
				}
				if err := os.WriteFile(filepath.Join(www, "index.html"), []byte(IndexPage), 0o644); err != nil {
					return nil, err
				}
			} else if fi, err := os.Stat(www); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("httpd=%s: not a directory", www)
			} else if www, err = filepath.Abs(www); err != nil {
				return nil, err
			}
			return []string{"--backend", "message", "--addr", "0.0.0.0:80", "--dir", www,
				"--ready", filepath.Join(dir, "ready")}, nil
		},
		reach: func(App) ([]string, string) {
			return []string{"curl", "http://" + HostAddr + "/"}, "httpd serves http://" + HostAddr + "/"
		},
	},
	"udpecho": {
		arg: "PORT (default 7)",
		args: func(a App, _ string) ([]string, error) {
			port := a.port()
			if _, err := strconv.ParseUint(port, 10, 16); err != nil || port == "0" {
				return nil, fmt.Errorf("udpecho=%s: want a port, 1 to 65535", a.Arg)
			}
			return []string{"--port", port}, nil
		},
		reach: func(a App) ([]string, string) {
			return []string{"socat", "-", "UDP:" + HostAddr + ":" + a.port()},
				"udpecho echoes datagrams on " + HostAddr + " port " + a.port()
		},
	},
}

// IndexPage is the page httpd serves when `--app httpd` names no directory.
const IndexPage = `<!doctype html>
<title>newtsim</title>
<p>Served by httpd on newtsim's simulated multiserver host, through its
syscall, tcp, ip, pf and driver servers, each a process of its own.
`

// AppRoles lists the roles `--app` takes, each with its argument.
func AppRoles() []string {
	var s []string
	for _, r := range slices.Sorted(maps.Keys(appKinds)) {
		s = append(s, r+"[="+appKinds[r].arg+"]")
	}
	return s
}

// ParseApp reads ROLE[=ARG], as `--app` takes it.
func ParseApp(s string) (App, error) {
	role, arg, _ := strings.Cut(s, "=")
	if _, ok := appKinds[role]; !ok {
		return App{}, fmt.Errorf("--app %s: unknown application; want one of %s", s, strings.Join(AppRoles(), ", "))
	}
	return App{Role: role, Arg: arg}, nil
}

func (a App) port() string {
	if a.Arg == "" {
		return "7"
	}
	return a.Arg
}

// withApp returns the topology with the application added as a process
// named for its role, linked to syscall; dir is the run's application
// directory.
func withApp(t *topology.Topology, a *App, dir string) (*topology.Topology, error) {
	if a == nil {
		return t, nil
	}
	k, ok := appKinds[a.Role]
	if !ok {
		return nil, fmt.Errorf("launch: --app %s: unknown application", a.Role)
	}
	args, err := k.args(*a, dir)
	if err != nil {
		return nil, fmt.Errorf("launch: --app %w", err)
	}
	if !slices.ContainsFunc(t.Processes, func(p topology.Process) bool { return p.Name == "syscall" }) {
		return nil, fmt.Errorf("launch: --app %s: the topology has no syscall server to link it to", a.Role)
	}
	c := *t
	c.Processes = append(slices.Clip(t.Processes), topology.Process{Name: a.Role, Role: a.Role, Args: args})
	c.Links = append(slices.Clip(t.Links), topology.Link{A: a.Role, B: "syscall"})
	return &c, c.Validate()
}

// awaitApp waits for an application that tells when it listens (httpd).
func awaitApp(a *App, dir string) error {
	if a == nil || a.Role != "httpd" {
		return nil
	}
	_, err := ready.Await(filepath.Join(dir, "ready"), 10*time.Second)
	return err
}

// AppCommand returns the command that reaches the run's application from
// Linux, inside the run's namespace, as a person types it (as root), and
// what the application is; "" where the run has no application or no TAP.
func (h *Handle) AppCommand() (cmd, what string) {
	if h.app == nil || h.NS == nil {
		return "", ""
	}
	c, what := appKinds[h.app.Role].reach(*h.app)
	return strings.Join(append(nsPrefix(h.NS.Name), c...), " "), what
}

// nsPrefix is how a person runs a program in namespace ns: `ip netns exec`
// where iproute2 is installed, nsenter (util-linux) otherwise.
func nsPrefix(ns string) []string {
	if _, err := exec.LookPath("ip"); err == nil {
		return []string{"ip", "netns", "exec", ns}
	}
	return []string{"nsenter", "--net=/var/run/netns/" + ns}
}

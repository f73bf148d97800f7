// Package netns makes network namespaces for tests and demonstrations, so
// that traffic between Linux programs and a simulated host never leaves the
// machine: every address used lives inside a namespace made here, from
// 198.18.0.0/15 (the range RFC 2544 sets aside for benchmark networks).
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
)

// NS is a network namespace this package made.
type NS struct {
	Name string
}

// New creates a namespace named prefix plus a random suffix, with its
// loopback up.
func New(prefix string) (*NS, error) {
	var b [3]byte
	rand.Read(b[:])
	return Create(prefix + hex.EncodeToString(b[:]))
}

// List returns the names of the machine's network namespaces.
func List() ([]string, error) {
	out, err := run("ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// Create creates the namespace called name, with its loopback up.
func Create(name string) (*NS, error) {
	ns := &NS{Name: name}
	if _, err := run("ip", "netns", "add", ns.Name); err != nil {
		return nil, err
	}
	if _, err := ns.Run("ip", "link", "set", "lo", "up"); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// Adopt moves a network interface of the calling process's namespace into
// ns, gives it addr (such as "198.18.0.1/24") and brings it up.
func (ns *NS) Adopt(ifname, addr string) error {
	if _, err := run("ip", "link", "set", ifname, "netns", ns.Name); err != nil {
		return err
	}
	if _, err := ns.Run("ip", "addr", "add", addr, "dev", ifname); err != nil {
		return err
	}
	_, err := ns.Run("ip", "link", "set", ifname, "up")
	return err
}

// Run runs a command inside the namespace and returns its combined output.
func (ns *NS) Run(name string, args ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Command returns a command that runs inside the namespace.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Close deletes the namespace and every interface in it.
func (ns *NS) Close() error {
	_, err := run("ip", "netns", "delete", ns.Name)
	return err
}

func run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

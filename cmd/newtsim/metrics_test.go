package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/boot"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/servers/sys/systest"
	"github.com/newtsim/newtsim/sim/promtest"
)

// metricHost is the pretend run each role is built in: the network stack
// by its own names, and applications beside it.
var metricHost = map[string]int{"nic": 1, "driver": 2, "pf": 3, "ip": 4, "udp": 5, "tcp": 6, "syscall": 7,
	"app": 8, "other": 9}

// metricLinks are the stack's links, and the applications' to syscall and
// tcp.
var metricLinks = map[string][]string{
	"nic": {"driver"}, "driver": {"nic", "pf"}, "pf": {"driver", "ip"}, "ip": {"pf", "udp", "tcp"},
	"udp": {"ip", "syscall"}, "tcp": {"ip", "syscall", "app"}, "syscall": {"udp", "tcp", "app", "other"},
	"app": {"syscall", "tcp", "other"}, "other": {"syscall", "app"},
}

// descs returns what reg describes, by metric name: its label names.
func descs(t *testing.T, reg *prometheus.Registry) map[string][]string {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	m := map[string][]string{}
	for d := range ch {
		name, labels, err := parseDesc(d.String())
		if err != nil {
			t.Fatal(err)
		}
		m[name] = labels
	}
	return m
}

var (
	descName   = regexp.MustCompile(`fqName: "([^"]*)"`)
	descConst  = regexp.MustCompile(`constLabels: \{([^}]*)\}`)
	descVar    = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	constLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
)

// parseDesc reads a metric's name and label names from what Desc.String
// writes.
func parseDesc(s string) (string, []string, error) {
	n, c, v := descName.FindStringSubmatch(s), descConst.FindStringSubmatch(s), descVar.FindStringSubmatch(s)
	if n == nil || c == nil || v == nil {
		return "", nil, fmt.Errorf("unexpected Desc %s", s)
	}
	var labels []string
	for _, m := range constLabel.FindAllStringSubmatch(c[1], -1) {
		labels = append(labels, m[1])
	}
	for _, l := range strings.Split(v[1], ",") {
		if l = strings.TrimSpace(l); l != "" {
			labels = append(labels, l)
		}
	}
	slices.Sort(labels)
	return n[1], labels, nil
}

// roleRegistry builds the server of role as Main does, on in-memory
// transports (package systest), and builds its handler, without running
// it: a measuring role (a sys.Runner) would start measuring. It returns
// the server's registry.
func roleRegistry(t *testing.T, role string) *prometheus.Registry {
	t.Helper()
	name := role
	if _, ok := metricHost[role]; !ok {
		name = "app"
	}
	endpoints := map[string]ipc.Endpoint{"kernel": ipc.Kernel}
	var readers []ipc.Endpoint
	for n, slot := range metricHost {
		endpoints[n] = ipc.MakeEndpoint(slot, 1)
		readers = append(readers, endpoints[n])
	}
	self := endpoints[name]
	p, err := pool.NewMemory(pool.Config{ID: uint8(self.Slot()), Path: name + ".pool", Count: 16, Owner: self, Readers: readers})
	if err != nil {
		t.Fatal(err)
	}
	// A role may make files in /dev/shm for its run (tcp's doorbell).
	run := fmt.Sprintf("metrics-%d", os.Getpid())
	t.Cleanup(func() {
		files, _ := filepath.Glob(shm.Path(run, "*"))
		for _, f := range files {
			os.Remove(f)
		}
	})
	o := boot.Options{Name: name, Role: role, Endpoint: self, Run: run, Transport: "fake",
		Peers: map[string]int{}, Procs: metricHost, Routes: map[string]string{}, KernelFD: -1}
	o.Args = roleArgs(t, role)
	for _, n := range metricLinks[name] {
		o.Peers[n] = metricHost[n]
	}
	for n := range metricHost {
		if _, ok := o.Peers[n]; !ok && n != name {
			o.Routes[n] = metricLinks[name][0]
		}
	}
	s, err := sys.New(o, sys.Env{Transport: systest.NewTransport(self), Kernel: systest.NewKernel(self, endpoints),
		Pool: p, Log: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	s.TimeHandlers()
	if _, err := roles[role](s); err != nil {
		t.Fatalf("start %s: %v", role, err)
	}
	return s.Registry
}

// roleArgs are the arguments a role needs to start.
func roleArgs(t *testing.T, role string) []string {
	dir := t.TempDir()
	switch role {
	case "fetch":
		return []string{"--url", "http://198.18.0.2/", "--out", dir + "/out", "--result", dir + "/result.json"}
	case "httpd":
		return []string{"--dir", dir}
	case "pinger":
		return []string{"--out", dir + "/out.json"}
	}
	return nil
}

// TestMetricsDocumented checks docs/METRICS.md against the registries of
// every process but the kernel (whose metrics the end-to-end test in
// sim/launch checks): the base registry every process has, with what
// serving it adds, and every role's server. Every registered metric is
// listed, with the labels it has; every row is registered by some role,
// but the kernel's and httpd's (registered once it listens; TestUpApp and
// TestPrometheusScrapesEveryServer in sim/launch check those); and no metric
// label begins with newtsim_, as the targets file's labels do.
func TestMetricsDocumented(t *testing.T) {
	doc, err := promtest.ReadMetricsDoc(filepath.Join("..", "..", promtest.MetricsDoc))
	if err != nil {
		t.Fatal(err)
	}
	base := prom.NewRegistry("p", "r")
	ms, err := prom.Serve(base, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms.Close()
	registries := map[string]*prometheus.Registry{"every process": base}
	for _, role := range roleNames() {
		registries[role] = roleRegistry(t, role)
	}
	seen := map[string]bool{}
	for who, reg := range registries {
		for name, labels := range descs(t, reg) {
			d, ok := promtest.Find(doc, name)
			if !ok {
				t.Errorf("%s registers %s%v, which %s does not list", who, name, labels, promtest.MetricsDoc)
				continue
			}
			seen[d.Name] = true
			if !strings.HasSuffix(d.Name, "*") && !slices.Equal(d.Labels, labels) {
				t.Errorf("%s: %s has labels %v, %s says %v", who, name, labels, promtest.MetricsDoc, d.Labels)
			}
			for _, l := range labels {
				if strings.HasPrefix(l, "newtsim_") {
					t.Errorf("%s: %s has label %s, named like the targets file's labels", who, name, l)
				}
			}
		}
	}
	for _, d := range doc {
		if !seen[d.Name] && d.By != "kernel" && d.By != "httpd" {
			t.Errorf("%s lists %s (exported by %s), which no registry has", promtest.MetricsDoc, d.Name, d.By)
		}
	}
}

package launch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/topology"
)

// TestConnectRejectedByLinuxFirewall: the fetch application of the
// simulated host connects to a port of Linux's that an nftables rule in the
// run's namespace rejects with an ICMP port unreachable, as a firewall's
// REJECT does. Linux's ICMP error comes up nic, driver, pf and ip, which
// passes it to tcp, and the connect fails with ECONNREFUSED at once, not
// after the SYN's retries (over two minutes).
func TestConnectRejectedByLinuxFirewall(t *testing.T) {
	needTools(t, "nft")
	dir := t.TempDir()
	result := filepath.Join(dir, "fetch.json")
	topo := withApp(t, dir, topology.Process{Name: "get", Role: "fetch", Args: []string{
		"--url", "http://198.18.0.1:81/", "--out", filepath.Join(dir, "body"), "--result", result, "--timeout", "60s"}})
	u := startUp(t, "--topology", topo, "--nic", "tap")
	u.logOnFailure()
	ns := launch.NSName(u.status.Run)
	readResult := func() fetchResult {
		var res fetchResult
		waitFor(t, "the fetch's result", 30*time.Second, func() bool {
			b, err := os.ReadFile(result)
			return err == nil && json.Unmarshal(b, &res) == nil
		})
		return res
	}
	icmpErrors := func() float64 { return scrape(t, u.proc("tcp").MetricsPort, "newtsim_tcp_icmp_errors_total") }

	// The fetch starts with the run, before the rule: no one listens on
	// port 81, and Linux answers its SYN with a RST.
	if res := readResult(); !strings.Contains(res.Error, "connection refused") {
		t.Fatalf("fetch before the rule: %+v, want connection refused (by a RST)", res)
	}
	if v := icmpErrors(); v != 0 {
		t.Fatalf("tcp counted %v ICMP errors before the rule, want 0", v)
	}

	// Now Linux rejects with ICMP; the fetch runs again in a new process.
	for _, args := range [][]string{
		{"nft", "add", "table", "inet", "newtsim_test"},
		{"nft", "add", "chain", "inet", "newtsim_test", "in", "{ type filter hook input priority 0; }"},
		{"nft", "add", "rule", "inet", "newtsim_test", "in", "tcp", "dport", "81", "counter",
			"reject", "with", "icmp", "type", "port-unreachable"},
	} {
		if out, err := inNS(ns, args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if err := os.Remove(result); err != nil {
		t.Fatal(err)
	}
	old := u.proc("get")
	if err := syscall.Kill(old.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	res := readResult()
	took := time.Duration(res.ElapsedNS)
	if !strings.Contains(res.Error, "connection refused") || took <= 0 || took > time.Second {
		t.Fatalf("fetch against the rule: %+v (%v), want connection refused well under a second", res, took)
	}
	if v := icmpErrors(); v != 1 {
		t.Errorf("tcp counted %v ICMP errors, want the rule's one", v)
	}
	out, err := inNS(ns, "nft", "list", "chain", "inet", "newtsim_test", "in").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "packets 1 ") {
		t.Errorf("the rule did not reject one SYN (%v):\n%s", err, out)
	}
	t.Logf("the connect was refused by Linux's ICMP port unreachable after %v", took)
	if p := u.proc("get"); p.Pid == old.Pid {
		t.Error("the fetch did not run again")
	}
	u.down()
}

package launch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/sim/topology"
)

// hostileSize is the file the victim downloads while the hostile
// application attacks.
const hostileSize = 4 << 20

// TestHostileApp: an application linked to syscall, tcp and ip (more than
// any application needs) opens TCP and UDP sockets until refused, parks
// blocking receives past its quota, then attacks (the
// hostile role's --attack:
// every restricted message type forged to every peer, random socket calls
// (straight to tcp, exposed or not, and through syscall) and doorbells,
// BufFrees for buffers it was never given, alarm and notification floods,
// random bytes into
// every shared mapping it reaches, and nothing read meanwhile) while
// another application of the host downloads 4 MiB from Linux over TCP (an
// HTTP server in Go, on Linux's TCP in the run's namespace; the attack
// starts before and ends after the download). On
// both transports: the download completes byte-exact, no process
// restarts, the forgeries are refused and counted by reason where the
// transport enforces the type table (the kernel on the kernel transport,
// the receiving server on shm), and the run's /dev/shm files stay bounded
// (by the attacker's socket quota).
func TestHostileApp(t *testing.T) {
	for _, tr := range []string{"shm", "kernel"} {
		t.Run(tr, func(t *testing.T) { hostileApp(t, tr) })
	}
}

func hostileApp(t *testing.T, transport string) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	want := writeRandom(t, filepath.Join(www, "big.bin"), hostileSize, 21)
	got, result := filepath.Join(dir, "big.bin"), filepath.Join(dir, "fetch.json")
	start, stop := filepath.Join(dir, "start-the-attack"), filepath.Join(dir, "stop-the-attack")
	top := topology.Default()
	top.Processes = append(top.Processes,
		topology.Process{Name: "get", Role: "fetch", Args: []string{"--url", "http://198.18.0.1:8000/big.bin",
			"--out", got, "--result", result, "--timeout", "60s", "--retry-refused", "30s"}},
		topology.Process{Name: "evil", Role: "hostile", Args: []string{"--attack", "60s",
			"--attack-when", start, "--attack-until", stop, "--hoard", "198.18.0.2:9000"}})
	for _, p := range []string{"syscall", "tcp", "ip"} {
		top.Links = append(top.Links, topology.Link{A: "evil", B: p})
	}
	top.Links = append(top.Links, topology.Link{A: "get", B: "syscall"})
	topoPath := filepath.Join(dir, "hostile.topo")
	if err := os.WriteFile(topoPath, []byte(top.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUp(t, "--topology", topoPath, "--nic", "tap", "--transport", transport)
	u.logOnFailure()
	shmFiles := runFiles(t, u.status.Run)

	// The attack starts once the stack is up (a process that spins
	// flooding on the servers' one core slows their start-up past up's
	// patience: a matter of cores, not of isolation) and before the
	// download can: the download waits until the attacker holds its
	// sockets and has forged its first messages. (A download of 64 KiB
	// buffers, 0.7 s, once ended while the attacker was still opening
	// sockets, before any forgery.)
	if err := os.WriteFile(start, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	evilPort := u.proc("evil").MetricsPort
	waitFor(t, "the attack's first forgeries", 30*time.Second, func() bool {
		return scrape(t, evilPort, "newtsim_hostile_forged_total") > 0
	})
	serveLinux(t, u.linux(), "198.18.0.1:8000", www)

	var res fetchResult
	waitFor(t, "the fetch's result", 90*time.Second, func() bool {
		b, err := os.ReadFile(result)
		return err == nil && json.Unmarshal(b, &res) == nil
	})
	if res.Error != "" || res.Status != 200 || res.Bytes != hostileSize || res.SHA256 != want {
		t.Fatalf("fetch: status %d, %d bytes with sha256 %s, error %q; want 200, %d bytes with %s",
			res.Status, res.Bytes, res.SHA256, res.Error, hostileSize, want)
	}
	if sum, n := fileSHA256(t, got); sum != want || n != hostileSize {
		t.Fatalf("the file written holds %d bytes with sha256 %s, want %d bytes with %s", n, sum, hostileSize, want)
	}
	evil := u.proc("evil")
	forged := scrape(t, evil.MetricsPort, "newtsim_hostile_forged_total")
	t.Logf("%s: downloaded %d bytes in %v while the hostile application forged %v messages",
		transport, res.Bytes, time.Duration(res.ElapsedNS), forged)
	// The attack lasted the whole download: it ends now.
	if strings.Contains(u.out.String(), "attack over") {
		t.Fatal("the attack ended before the download did")
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the attack's end", 10*time.Second, func() bool { return strings.Contains(u.out.String(), "attack over") })
	if forged == 0 {
		t.Fatal("the hostile application forged nothing")
	}

	for _, p := range top.Processes {
		if st := u.proc(p.Name); st.Restarts != 0 || !st.Alive {
			t.Errorf("%s: restarted %d times, alive %v", p.Name, st.Restarts, st.Alive)
		}
	}
	refused := func(proc, reason string) float64 {
		if proc == "kernel" {
			return scrape(t, u.proc("kernel").MetricsPort, "newtsim_kernel_refused_messages_total", `reason="`+reason+`"`)
		}
		return scrape(t, u.proc(proc).MetricsPort, "newtsim_server_refused_messages_total", `reason="`+reason+`"`)
	}
	// Where the type table is enforced: by the kernel on its transport,
	// by the receivers on shared memory. BufFree passes the table (any
	// process may give back what it holds); its holder is the owner's to
	// check, on both.
	enforcers := []string{"kernel"}
	if transport == "shm" {
		enforcers = []string{"syscall", "tcp", "ip"}
	}
	for _, e := range enforcers {
		for _, reason := range []string{"kernel-only", "wrong-sender"} {
			if v := refused(e, reason); v == 0 {
				t.Errorf("%s refused no %s messages", e, reason)
			}
		}
	}
	notHolder := 0.0
	for _, p := range []string{"syscall", "tcp", "ip"} {
		notHolder += refused(p, "not-holder")
	}
	if notHolder == 0 {
		t.Error("no BufFree for a buffer never given was refused")
	}
	for _, q := range []struct{ proc, reason string }{{"tcp", "sockets"}, {"udp", "sockets"}, {"udp", "parked"}, {"tcp", "pool"}} {
		if v := scrape(t, u.proc(q.proc).MetricsPort, "newtsim_"+q.proc+"_quota_refusals_total", `reason="`+q.reason+`"`); v == 0 {
			t.Errorf("%s never refused the hostile application for its %s quota", q.proc, q.reason)
		}
	}
	if transport == "shm" {
		// Every mapping the attacker may only read (its own rings, ring
		// 0 among them, and its peers' pages: it gets nothing of another
		// sender's ring) stayed read-only: on the old layout it had no
		// such mapping, every inbox it was handed being read-write whole.
		writes := scrape(t, evil.MetricsPort, "newtsim_hostile_shared_writes_total")
		refusedRO := scrape(t, evil.MetricsPort, "newtsim_hostile_write_refused_total")
		breaches := scrape(t, evil.MetricsPort, "newtsim_hostile_breaches_total")
		if writes == 0 || refusedRO == 0 || breaches != 0 {
			t.Errorf("the attacker scribbled %v times; it failed to make a read-only mapping writable %v times and made one writable %v times; want refusals only",
				writes, refusedRO, breaches)
		}
		t.Logf("the attacker scribbled %v times and was refused write access to a read-only mapping %v times", writes, refusedRO)
	}
	if transport == "kernel" {
		// The attack's calls are answered, and the kernel's refusals
		// too, to a process that reads nothing: what the kernel cannot
		// hold for it is refused (pair-full for tcp's and syscall's
		// replies, queue-full past MaxQueue), not a reason to stop
		// reading tcp or syscall (docs/SECURITY.md).
		if pair, queue := refused("kernel", "pair-full"), refused("kernel", "queue-full"); pair+queue == 0 {
			t.Error("the kernel refused nothing for the hostile application, which reads nothing")
		} else {
			t.Logf("the kernel refused %v messages pair-full and %v queue-full for the hostile application", pair, queue)
		}
	}
	// The attack's exposed opens each make a region, a memfd with no
	// name (it was a /dev/shm file): nothing adds files.
	if after := runFiles(t, u.status.Run); after > shmFiles {
		t.Errorf("the run has %d files in /dev/shm after the attack, %d before; want no more", after, shmFiles)
	}
	u.down()
}

// runFiles counts the run's files in /dev/shm.
func runFiles(t *testing.T, run string) int {
	t.Helper()
	ents, err := os.ReadDir(shm.Dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), shm.Prefix(run)) {
			n++
		}
	}
	return n
}

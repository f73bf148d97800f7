package launch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/sim/launch"
	"github.com/newtsim/newtsim/sim/topology"
)

// Hostile peers with real tools: nmap's scans, packets scapy crafts to be
// wrong, and hping3's SYN flood, against the simulated host through its
// TAP, while Linux's curl keeps downloading a file from the host's httpd.
// Everything is sent in the run's namespace, to 198.18.0.2 only.

// hostileFileSize is the size of the file the fetch loop downloads.
const hostileFileSize = 256 << 10

// maxFetches bounds the fetch loop; it is stopped long before.
const maxFetches = 2000

// clientAddr is the fetch loop's address, beside Linux's 198.18.0.1 in
// the run's namespace.
const clientAddr = "198.18.0.3"

// TestHostilePeers: with httpd on the simulated host and curl fetching a
// file from it over and over, nmap scans the host (SYN, FIN, Xmas, null,
// UDP, OS detection), a scapy script sends it malformed and hostile
// packets, and hping3 floods its port 80 with SYNs for 3 s. Every scan
// reads the ports right; every malformed packet is dropped and counted
// under its reason, by the server whose check it fails; the in-window RST
// and SYN get a challenge ACK and leave their connection serving; the
// flood's half-open connections drain; every fetch succeeds, byte-exact;
// no server restarts.
//
// What the counters moved by in a dozen runs on the 2-CPU development machine
// (deltas over each subtest, which the fetch loop's clean traffic moves
// only in passive-opens, from its own connections), with the whole test
// taking 20 to 28 s:
//
//   - nmap -sS, -sF, -sX, -sN on ports 80 and 81 (80 open, 81 closed;
//     open|filtered and closed for the FIN, Xmas and null scans): tcp
//     no-socket 1 and resets-sent 1 each; listen-no-syn 2 (the probe and
//     nmap's retry, as nothing answers) for -sF, -sX and -sN.
//   - nmap -sU on 7, 9, 53 and 161: every port closed (an ICMP port
//     unreachable each, within the rate limit), so udp no-socket went up by
//     4 or more (before the fix named in udpDropsStale its counter showed
//     1; with every drop exported, 6).
//   - nmap -O: tcp listen-syn-fin 4, listen-no-syn 4, listen-ack 1,
//     no-socket 4, resets-sent 5, udp no-socket 6; no exact OS match.
//   - scapy: pf malformed 5 (IHL 4, IHL 15, total length past the frame
//     and below the header, TCP data offset past the segment), ip
//     bad-checksum 1, bad-icmp-checksum 1, reasm-overlap 1, reasm-too-big
//     1, reasm-overflow 76 (250 one-fragment datagrams against 256 KiB),
//     udp bad-checksum 1 and bad-length 1 (0 before the
//     fix in udpDropsStale), tcp checksum 1, malformed 3
//     (option lengths 0 and 1, an option past the header), listen-syn-fin
//     1, rst-challenged 1, syn-challenged 1, out-of-window 1 (the RST
//     before the window), challenge-acks 2; the SYN with window scale 255
//     got a SYN-ACK (offering the host's own scale, 3).
//   - hping3 --flood, 3 s: 42000 to 490000 SYNs sent (as the CPUs
//     allowed); the nic dropped 8000 to 170000 frames for want of a
//     buffer; tcp passive-opens 1100 to 8200, listen-rst 4200 to 31000
//     (Linux's resets to the SYN-ACKs of SYN cookies, sent once the
//     backlog was full; with both CPUs loaded by other builds, hping3 sent
//     7567 and listen-rst was 147), out-of-window 40 to 1700 and bad-address 1
//     (hping3's source port wraps, to a 4-tuple already half open, and to
//     port 0); SYN-RECEIVED back to 0 within 3 s.
//   - the fetch loop: 94 to 294 fetches of 256 KiB, all good; the slowest
//     1.9 to 6.3 s, during the flood (the client's SYN lost to the nic's
//     no-buffer drops, and sent again after 1 s, 3 s).
func TestHostilePeers(t *testing.T) {
	needTools(t, "nmap", "hping3", "python3", "curl", "timeout")
	python := scapyPython(t)
	script, err := filepath.Abs("testdata/hostile.py")
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	want := writeRandom(t, filepath.Join(www, "file.bin"), hostileFileSize, 13)
	if err := os.WriteFile(filepath.Join(www, "small.txt"), []byte("still here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := withApp(t, dir, topology.Process{Name: "web", Role: "httpd", Args: []string{"--addr", "0.0.0.0:80", "--dir", www}})
	u := startUp(t, "--topology", topo, "--nic", "tap")
	u.logOnFailure()
	ns, tap := launch.NSName(u.status.Run), launch.TapName(u.status.Run)
	waitFor(t, "httpd listening", 10*time.Second, func() bool { return u.tcpState("LISTEN") >= 1 })

	// The client fetches from an address of its own, as another host
	// would: hping3 sends from Linux's, from every port in turn, and a SYN
	// on the 4-tuple of one of the client's connections in TIME-WAIT
	// leaves a half-open connection that Linux does not reset but answers
	// with an ACK (RFC 9293 3.10.7.4), until the host gives up on it
	// (about 63 s).
	if err := u.linux().AddAddr(tap, clientAddr+"/24"); err != nil {
		t.Fatal(err)
	}
	fetches := startFetchLoop(ns, "http://198.18.0.2:80/file.bin", filepath.Join(dir, "got.bin"), want)
	t.Cleanup(fetches.halt)
	waitFor(t, "the first fetch", 20*time.Second, func() bool { return fetches.count() > 0 })

	windows := map[string][2]time.Time{}
	attack := func(name string, f func(t *testing.T)) {
		start := time.Now()
		t.Run(name, f)
		windows[name] = [2]time.Time{start, time.Now()}
	}

	attack("nmap", func(t *testing.T) {
		tcpPorts := []string{"-p", "80,81"}
		for _, sc := range []struct {
			name   string
			args   []string
			states map[string]string // port to the state nmap must report
			up     []expect
		}{
			{"syn", append([]string{"-sS"}, tcpPorts...), map[string]string{"80/tcp": "open", "81/tcp": "closed"},
				[]expect{{key: "tcp/no-socket", min: 1}, {key: "tcp/resets-sent", min: 1}}},
			{"fin", append([]string{"-sF"}, tcpPorts...), map[string]string{"80/tcp": "open|filtered", "81/tcp": "closed"},
				[]expect{{key: "tcp/listen-no-syn", min: 1}, {key: "tcp/no-socket", min: 1}}},
			{"xmas", append([]string{"-sX"}, tcpPorts...), map[string]string{"80/tcp": "open|filtered", "81/tcp": "closed"},
				[]expect{{key: "tcp/listen-no-syn", min: 1}, {key: "tcp/no-socket", min: 1}}},
			{"null", append([]string{"-sN"}, tcpPorts...), map[string]string{"80/tcp": "open|filtered", "81/tcp": "closed"},
				[]expect{{key: "tcp/listen-no-syn", min: 1}, {key: "tcp/no-socket", min: 1}}},
			{"udp", []string{"-sU", "-p", "7,9,53,161"},
				map[string]string{"7/udp": "closed", "9/udp": "closed", "53/udp": "closed", "161/udp": "closed"},
				[]expect{{key: "udp/no-socket", min: 4, note: udpDropsStale}}},
			{"os", append([]string{"-O", "--max-os-tries", "1"}, tcpPorts...), map[string]string{"80/tcp": "open", "81/tcp": "closed"},
				[]expect{{key: "tcp/listen-syn-fin", min: 1}, {key: "tcp/no-socket", min: 1}}},
		} {
			t.Run(sc.name, func(t *testing.T) {
				before := hostileCounts(t, u)
				args := append([]string{"nmap", "-n", "-T4", "--max-retries", "1", "--host-timeout", "20s"}, sc.args...)
				out := runInNS(t, ns, 40*time.Second, append(args, "198.18.0.2")...)
				if !strings.Contains(out, "(1 host up)") {
					t.Fatalf("nmap did not find the host up:\n%s", out)
				}
				for port, state := range sc.states {
					re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(port) + `\s+(\S+)`)
					if m := re.FindStringSubmatch(out); m == nil || m[1] != state {
						t.Errorf("nmap says %s is %v, want %s:\n%s", port, m, state, out)
					}
				}
				expectUp(t, u, before, sc.up)
			})
		}
	})

	attack("scapy", func(t *testing.T) {
		before := hostileCounts(t, u)
		out := runInNS(t, ns, 40*time.Second, python, script, tap, "198.18.0.2", "198.18.0.1")
		var res struct {
			Sent map[string]int `json:"sent"`
			Seen map[string]any `json:"seen"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("hostile.py's output: %v\n%s", err, out)
		}
		t.Logf("hostile.py sent %v; saw %v", res.Sent, res.Seen)
		for what, want := range map[string]any{
			"syn-fin answered":                0.0,
			"window-scale-255 SYN-ACK":        1.0,
			"in-window-rst challenge ACKs":    1.0,
			"old-rst answered":                0.0,
			"in-window-rst connection serves": true,
			"in-window-syn challenge ACKs":    1.0,
			"in-window-syn connection serves": true,
		} {
			if got := res.Seen[what]; got != want {
				t.Errorf("%s: %v, want %v", what, got, want)
			}
		}
		expectUp(t, u, before, []expect{
			{key: "pf/malformed", min: 5, max: 5}, // pf refuses what it cannot decode, before ip
			{key: "ip/bad-checksum", min: 1, max: 1},
			{key: "ip/bad-icmp-checksum", min: 1, max: 1},
			{key: "ip/reasm-overlap", min: 1, max: 1},
			{key: "ip/reasm-too-big", min: 1, max: 1},
			{key: "ip/reasm-overflow", min: 1},
			{key: "udp/bad-checksum", min: 1, max: 1},
			{key: "udp/bad-length", min: 1, max: 1, note: udpDropsStale},
			{key: "tcp/checksum", min: 1, max: 1},
			{key: "tcp/malformed", min: 3, max: 3},
			{key: "tcp/listen-syn-fin", min: 1, max: 1},
			{key: "tcp/rst-challenged", min: 1, max: 1},
			{key: "tcp/syn-challenged", min: 1, max: 1},
			{key: "tcp/out-of-window", min: 1},
			{key: "tcp/challenge-acks", min: 2, max: 2},
		})
	})

	attack("hping3", func(t *testing.T) {
		before := hostileCounts(t, u)
		// timeout stops the flood after 3 s (and exits 124), when hping3
		// prints how many it sent.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "timeout", append([]string{"-s", "INT", "3", bin},
			inNSArgs(ns, "hping3", "-q", "-S", "-p", "80", "--flood", "198.18.0.2")...)...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 124) {
			t.Fatalf("hping3: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`(\d+) packets transmitted`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("hping3 did not say what it sent:\n%s", out)
		}
		if n, _ := strconv.Atoi(string(m[1])); n < 1000 {
			t.Fatalf("hping3 sent %d SYNs in 3 s: no flood\n%s", n, out)
		}
		t.Logf("hping3: %s", bytes.TrimSpace(m[0]))
		// The fetch loop opens a few dozen connections in the time. The
		// SYNs that found the backlog full got a SYN cookie, and Linux's
		// reset to its SYN-ACK came to the listener: thousands on a quiet
		// machine, as few as 147 with both CPUs loaded by other builds
		// (hping3 sent 7567), so that only some reset is required.
		expectUp(t, u, before, []expect{{key: "tcp/passive-opens", min: 300}, {key: "tcp/listen-rst", min: 1}})
		// Linux resets every SYN-ACK (it sent no SYN): the half-open
		// connections go, at the latest when their SYN-ACK is sent again.
		deadline := time.Now().Add(15 * time.Second)
		for u.tcpState("SYN-RECEIVED") != 0 {
			if time.Now().After(deadline) {
				syscall.Kill(u.proc("tcp").Pid, syscall.SIGUSR1) // the tcp server logs its connections
				ss, _ := u.linux().TCPSockets()
				time.Sleep(500 * time.Millisecond)
				t.Fatalf("%v half-open connections left 15 s after the flood; Linux's sockets:\n%v",
					u.tcpState("SYN-RECEIVED"), ss)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	fetches.halt()
	res := fetches.result()
	t.Logf("the fetch loop: %d good fetches of %d bytes, the slowest %v; during nmap %d, scapy %d, hping3 %d",
		res.ok, hostileFileSize, res.slowest.Round(time.Millisecond),
		res.during(windows["nmap"]), res.during(windows["scapy"]), res.during(windows["hping3"]))
	if len(res.failed) > 0 {
		t.Errorf("%d of %d fetches failed:\n%s", len(res.failed), res.ok+len(res.failed), strings.Join(res.failed, "\n"))
	}
	for name, w := range windows {
		if res.during(w) == 0 {
			t.Errorf("no fetch ran during %s: the loop did not keep fetching", name)
		}
	}
	assertConnectionsClosed(t, u, ns)
	for _, p := range u.status.Processes {
		if q := u.proc(p.Name); !q.Alive || q.Pid != p.Pid {
			t.Errorf("%s: alive %v, pid %d, was %d", p.Name, q.Alive, q.Pid, p.Pid)
		}
	}
	u.down()
}

// udpDropsStale names the fault these counts once caught: the udp server
// copied its drop counts for export at most every 100 ms and only when a
// datagram came in, so the drops of the last datagrams of a burst (nmap's
// four UDP probes, scapy's bad checksum then bad length) were not exported
// while no other datagram came. Fixed: a skipped copy is made before the
// loop sleeps (servers/packet.go drops.update, sys.Server.Later).
const udpDropsStale = "the drops of the last datagrams of a burst are not exported while the udp server is idle " +
	"(servers/packet.go drops.update must copy them before the loop sleeps)"

// scapyPython returns a Python 3 that imports scapy: python3 on PATH, or
// Debian's /usr/bin/python3, where python3-scapy installs it (a python3
// of pyenv's, first on PATH, does not see it).
func scapyPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(py)
		if err == nil && exec.Command(path, "-c", "import scapy.all").Run() == nil {
			return path
		}
	}
	t.Fatal("no python3 here imports scapy: this test needs it (Debian package python3-scapy; `make test` installs it)")
	return ""
}

// runInNS runs a command in the namespace, bounded by timeout, and returns
// its standard output; it fails the test if the command fails.
func runInNS(t *testing.T, ns string, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, inNSArgs(ns, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// hostileCounters are the counters the hostile peers move: every engine's
// drops by reason, pf's verdicts on frames coming in, the nic's drops, and
// a few of tcp's totals. hostileCounts keys each series by its process and
// the value of label by ("tcp/malformed"), or by its process and name.
var hostileCounters = []struct {
	proc, metric, by, name string
	only                   map[string]string
}{
	{proc: "nic", metric: "newtsim_nic_dropped_frames_total", by: "reason"},
	{proc: "pf", metric: "newtsim_pf_frames_total", by: "verdict", only: map[string]string{"direction": "in"}},
	{proc: "ip", metric: "newtsim_ip_dropped_total", by: "reason"},
	{proc: "udp", metric: "newtsim_udp_dropped_total", by: "reason"},
	{proc: "tcp", metric: "newtsim_tcp_dropped_total", by: "reason"},
	{proc: "tcp", metric: "newtsim_tcp_challenge_acks_total", name: "challenge-acks"},
	{proc: "tcp", metric: "newtsim_tcp_resets_sent_total", name: "resets-sent"},
	{proc: "tcp", metric: "newtsim_tcp_passive_opens_total", name: "passive-opens"},
}

// hostileCounts reads hostileCounters.
func hostileCounts(t *testing.T, u *up) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	scraped := map[string]map[string]*dto.MetricFamily{} // by process: each read once
	for _, c := range hostileCounters {
		all := scraped[c.proc]
		if all == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var err error
			all, err = prom.Scrape(ctx, prom.LocalURL(u.proc(c.proc).MetricsPort))
			cancel()
			if err != nil {
				t.Fatalf("scrape %s: %v", c.proc, err)
			}
			scraped[c.proc] = all
		}
		if c.by == "" {
			v, _ := prom.Value(all, c.metric, c.only)
			got[c.proc+"/"+c.name] = v
			continue
		}
		mf := all[c.metric]
		if mf == nil {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() != c.by {
					continue
				}
				labels := map[string]string{c.by: lp.GetValue()}
				for k, v := range c.only {
					labels[k] = v
				}
				if v, ok := prom.Value(all, c.metric, labels); ok {
					got[c.proc+"/"+lp.GetValue()] = v
				}
			}
		}
	}
	return got
}

// expect is a counter that must go up by at least min, and by at most max
// when max is not 0; note, when given, is said if it does not.
type expect struct {
	key      string
	min, max float64
	note     string
}

// expectUp waits (the servers export their counters at most every 100 ms)
// until every counter went up from before by its least, then checks none
// went up by more than its most, and logs every counter that moved.
func expectUp(t *testing.T, u *up, before map[string]float64, want []expect) {
	t.Helper()
	var now map[string]float64
	deadline := time.Now().Add(3 * time.Second)
	for {
		now = hostileCounts(t, u)
		short := slices.IndexFunc(want, func(e expect) bool { return now[e.key]-before[e.key] < e.min })
		if short < 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var moved []string
	for k, v := range now {
		if d := v - before[k]; d != 0 {
			moved = append(moved, fmt.Sprintf("%s +%v", k, d))
		}
	}
	slices.Sort(moved)
	t.Logf("counters moved: %s", strings.Join(moved, ", "))
	for _, e := range want {
		d := now[e.key] - before[e.key]
		if d < e.min || e.max > 0 && d > e.max {
			msg := fmt.Sprintf("%s went up by %v, want %v", e.key, d, e.min)
			if e.max > 0 && e.max != e.min {
				msg += fmt.Sprintf(" to %v", e.max)
			}
			if e.note != "" {
				msg += ": " + e.note
			}
			t.Error(msg)
		}
	}
}

// fetchLoop downloads a file with curl in a namespace, from clientAddr,
// one fetch after another, until halted, checking each download's status, size and
// SHA-256.
type fetchLoop struct {
	stop, done chan struct{}
	once       sync.Once
	mu         sync.Mutex
	res        fetchStats
}

// fetchStats is what the loop saw.
type fetchStats struct {
	ok      int
	failed  []string
	slowest time.Duration
	spans   [][2]time.Time // each good fetch's start and end
}

// during counts the good fetches that overlapped a window.
func (s fetchStats) during(w [2]time.Time) int {
	n := 0
	for _, sp := range s.spans {
		if sp[0].Before(w[1]) && sp[1].After(w[0]) {
			n++
		}
	}
	return n
}

func startFetchLoop(ns, url, path, want string) *fetchLoop {
	f := &fetchLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for i := 0; i < maxFetches; i++ {
			select {
			case <-f.stop:
				return
			default:
			}
			os.Remove(path)
			start := time.Now()
			out, err := inNS(ns, "curl", "-sS", "--interface", clientAddr, "--max-time", "20", "-o", path,
				"-w", "%{http_code} %{size_download}", url).CombinedOutput()
			end := time.Now()
			why := ""
			if err != nil {
				why = fmt.Sprintf("curl: %v: %s", err, out)
			} else if string(out) != fmt.Sprintf("200 %d", hostileFileSize) {
				why = fmt.Sprintf("curl says %q, want status 200 and %d bytes", out, hostileFileSize)
			} else if sum, n := fileSum(path); sum != want {
				why = fmt.Sprintf("%d bytes with sha256 %s, want %s", n, sum, want)
			}
			f.mu.Lock()
			if why != "" {
				f.res.failed = append(f.res.failed, fmt.Sprintf("fetch %d at %s, after %v: %s",
					i, start.Format("15:04:05.000"), end.Sub(start).Round(time.Millisecond), why))
			} else {
				f.res.ok++
				f.res.slowest = max(f.res.slowest, end.Sub(start))
				f.res.spans = append(f.res.spans, [2]time.Time{start, end})
			}
			f.mu.Unlock()
		}
	}()
	return f
}

// fileSum returns a file's SHA-256 and size; "" if it cannot be read.
func fileSum(path string) (string, int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0
	}
	return sha256Hex(b), len(b)
}

// count returns how many fetches ended, good or not.
func (f *fetchLoop) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.res.ok + len(f.res.failed)
}

// halt stops the loop after the fetch under way and waits for it.
func (f *fetchLoop) halt() {
	f.once.Do(func() { close(f.stop) })
	<-f.done
}

// result returns what the loop saw.
func (f *fetchLoop) result() fetchStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.res
}

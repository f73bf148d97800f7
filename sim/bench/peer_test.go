package bench

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/bench/probe"
)

// TestMain lets the test binary stand in for `newtsim bench peer`: the
// Linux rows start their measuring processes as copies of the running
// executable, which here is the test binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "bench" && os.Args[2] == "peer" {
		var o probe.PeerOptions
		fs := flag.NewFlagSet("bench peer", flag.ExitOnError)
		fs.StringVar(&o.Mode, "mode", "", "")
		fs.StringVar(&o.File, "file", "", "")
		fs.StringVar(&o.Out, "out", "", "")
		fs.IntVar(&o.Size, "size", 64, "")
		fs.IntVar(&o.Index, "index", 0, "")
		fs.IntVar(&o.Search.Trial, "trial", 0, "")
		fs.Float64Var(&o.Search.Deliver, "deliver", 0, "")
		fs.Float64Var(&o.Search.Resolution, "resolution", 0, "")
		fs.Parse(os.Args[3:])
		if err := probe.PeerMain(o); err != nil {
			fmt.Fprintln(os.Stderr, "bench peer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// occupyTCP listens on 127.0.0.1:port and accepts and closes whatever
// connects, as a stranger's server on the machine would; it reports
// false when the port was taken already.
func occupyTCP(t *testing.T, port int) bool {
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return true
}

// occupyUDP binds 127.0.0.1:port and never answers.
func occupyUDP(t *testing.T, port int) bool {
	c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	t.Cleanup(func() { c.Close() })
	return true
}

// TestLinuxRowsBesideBusyPorts runs the Linux rows of bench tcp and bench
// udp, small, while other sockets hold the loopback ports the rows once
// derived from the process id (20000-23000 + pid % 20000): a row must not
// depend on a port being free, nor on its client starting after its
// server listens.
func TestLinuxRowsBesideBusyPorts(t *testing.T) {
	cpus, log, done, err := prepare("ports", nil, nil)
	if err != nil {
		t.Skip(err)
	}
	defer done()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "peers.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	log = logFile
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("the peers' log:\n%s", b)
		}
	})
	pid := os.Getpid()
	for _, p := range []int{22000 + pid%20000, 23000 + pid%20000} {
		if !occupyTCP(t, p) {
			t.Logf("TCP port %d was taken already", p)
		}
	}
	for _, p := range []int{20000 + pid%20000, 21000 + pid%20000} {
		if !occupyUDP(t, p) {
			t.Logf("UDP port %d was taken already", p)
		}
	}
	a, b := cpus[0], cpus[1]
	dir := t.TempDir()

	to := TCPOptions{Log: log, LinuxBytes: 4 << 20, LinuxConns: 200, Reps: 1}
	bulk, err := linuxBulk(dir, a, b, to)
	if err != nil {
		t.Fatalf("bulk: %v", err)
	}
	if bulk.Mbits <= 0 || bulk.Reps != 1 {
		t.Errorf("bulk: %+v", bulk)
	}
	conns, err := linuxConns(dir, a, b, to)
	if err != nil {
		t.Fatalf("connections: %v", err)
	}
	if conns.Conns != to.LinuxConns || conns.PerSec <= 0 {
		t.Errorf("connections: %+v", conns)
	}

	uo := UDPOptions{Log: log, Size: 64, Search: probe.Search{Trial: 1000}}
	out := filepath.Join(dir, "udp-linux.json")
	if err := linuxUDP(out, a, b, uo); err != nil {
		t.Fatalf("udp round trips: %v", err)
	}
	if r, err := readResult(out, time.Second, nil); err != nil || r.NS <= 0 {
		t.Errorf("udp round trips: %+v, %v", r, err)
	}
	s, err := linuxStream(dir, a, b, uo)
	if err != nil {
		t.Fatalf("udp stream: %v", err)
	}
	if s.Received < 2 || s.PerSec <= 0 || s.Throughput == nil {
		t.Errorf("udp stream: %+v", s)
	}
}

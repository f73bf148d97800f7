package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/newtsim/newtsim/nic/link"
	"github.com/newtsim/newtsim/nic/pcap"
	"github.com/newtsim/newtsim/nic/tap"
	"github.com/newtsim/newtsim/servers/udp"
	"github.com/newtsim/newtsim/sim/netns"
)

// linuxPeer starts a host at 198.18.0.2 behind a TAP device in a namespace
// of its own, where Linux is 198.18.0.1, and returns the namespace and a
// function that stops the host and returns its capture's path. With
// tso, the device is opened with TSO and the host's tcp uses it, as
// httpd-monolith's.
func linuxPeer(t *testing.T, tso bool) (*netns.NS, *Host, func() string) {
	t.Helper()
	ns, err := netns.New("nts-host-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	dev, err := tap.Open("ntshost%d", tso)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	if err := ns.Adopt(dev.Name(), "198.18.0.1/24"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "host.pcap")
	pw, err := pcap.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{MAC: [6]byte{0x02, 0, 0x5e, 0, 0, 2}, Addr: netip.MustParsePrefix("198.18.0.2/24"),
		EchoPort: 7, Pcap: pw, TSO: dev.TSO()}, dev.Write)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, h, dev) }()
	var closeErr error
	stop := sync.OnceFunc(func() {
		cancel()
		dev.Close()
		<-done
		closeErr = pw.Close()
	})
	t.Cleanup(stop)
	// The capture is read once the host has stopped: a frame it was still
	// writing (a late ACK, Linux's IPv6 chatter) could leave tshark a
	// file cut short in the middle of a packet.
	return ns, h, func() string {
		stop()
		if closeErr != nil {
			t.Fatal(closeErr)
		}
		return path
	}
}

func tshark(t *testing.T, path, filter string) int {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("tshark is not installed (Debian package tshark; `make test` installs it)")
	}
	cmd := exec.Command("tshark", "-r", path, "-Y", filter, "-T", "fields", "-e", "frame.number")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("tshark -Y %q: %v\n%s", filter, err, stderr)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}

// TestLinuxPing: Linux's ping gets echo replies from the host, and tshark
// finds them in the host's capture.
func TestLinuxPing(t *testing.T) {
	ns, _, capture := linuxPeer(t, true)
	out, err := ns.Run("ping", "-c", "3", "-i", "0.2", "-W", "2", "198.18.0.2")
	if err != nil || !strings.Contains(out, "3 received") {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	path := capture()
	if n := tshark(t, path, "icmp.type == 0"); n != 3 {
		t.Fatalf("tshark found %d echo replies in the capture, want 3", n)
	}
	if n := tshark(t, path, "arp.opcode == 2"); n < 1 {
		t.Fatal("tshark found no ARP reply from the host")
	}
}

// TestLinuxUDPEcho: a UDP socket of Linux's (as nc -u uses) exchanges a
// datagram with the echo service; a datagram to a closed port draws an
// ICMP port unreachable, which Linux reads as ECONNREFUSED and tshark
// finds in the capture.
func TestLinuxUDPEcho(t *testing.T) {
	ns, _, capture := linuxPeer(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := "hello from linux to newtsim\n"
	exchange := func(port string) (string, error) {
		c, err := ns.Dial(ctx, "udp", "198.18.0.2:"+port)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	if got, err := exchange("7"); err != nil || got != msg {
		t.Fatalf("echo: got %q, %v; want %q", got, err, msg)
	}
	if _, err := exchange("9"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a datagram to a closed port: %v, want connection refused", err)
	}
	if n := tshark(t, capture(), "icmp.type == 3 && icmp.code == 3"); n < 1 {
		t.Fatal("no ICMP port unreachable for a datagram to a closed port")
	}
}

// wire joins two hosts with a link each way, on a simulated clock.
type wire struct {
	now    time.Time
	ab, ba *link.Link
	a, b   *Host
}

func newWire(t *testing.T, p link.Params) *wire {
	t.Helper()
	w := &wire{now: time.Unix(1_000_000, 0)}
	var err error
	pa, pb := p, p
	pb.Seed = p.Seed + 1
	if w.ab, err = link.New(pa); err != nil {
		t.Fatal(err)
	}
	if w.ba, err = link.New(pb); err != nil {
		t.Fatal(err)
	}
	w.a, err = New(Config{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Addr: netip.MustParsePrefix("198.18.1.1/24")},
		func(f []byte, _ int) error { w.ab.Send(w.now, f); return nil })
	if err != nil {
		t.Fatal(err)
	}
	w.b, err = New(Config{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Addr: netip.MustParsePrefix("198.18.1.2/24"), EchoPort: 7},
		func(f []byte, _ int) error { w.ba.Send(w.now, f); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// run advances the clock by d in steps of 100 us, delivering what arrives.
func (w *wire) run(t *testing.T, d time.Duration) {
	end := w.now.Add(d)
	for w.now.Before(end) {
		w.now = w.now.Add(100 * time.Microsecond)
		for _, f := range w.ab.Receive(w.now) {
			if err := w.b.Input(w.now, f); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range w.ba.Receive(w.now) {
			if err := w.a.Input(w.now, f); err != nil {
				t.Fatal(err)
			}
		}
		for _, h := range []*Host{w.a, w.b} {
			if at, ok := h.NextDeadline(); ok && !at.After(w.now) {
				if err := h.Tick(w.now); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// payload i carries its number and a hash of it, so any change is seen.
func payload(i int) []byte {
	b := make([]byte, 8, 8+32+200)
	binary.BigEndian.PutUint64(b, uint64(i))
	b = append(b, bytes.Repeat([]byte{byte(i)}, 200)...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

func check(b []byte) (int, bool) {
	if len(b) != 8+200+32 {
		return 0, false
	}
	sum := sha256.Sum256(b[:208])
	return int(binary.BigEndian.Uint64(b)), bytes.Equal(sum[:], b[208:])
}

// TestWire: two hosts on a lossy, reordering, duplicating wire (and, in one
// case, corrupting) exchange datagrams; whatever arrives is intact.
func TestWire(t *testing.T) {
	tests := []struct {
		name    string
		params  string
		minRate float64 // share of datagrams that must come back
	}{
		{"clean", "bw=100Mbit,delay=200us,seed=1", 1},
		{"loss-reorder", "bw=100Mbit,delay=200us,loss=0.1,reorder=0.1,dup=0.01,seed=2", 0.6},
		{"corrupt", "bw=100Mbit,delay=200us,loss=0.1,reorder=0.1,corrupt=0.05,seed=3", 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := link.ParseParams(tt.params)
			if err != nil {
				t.Fatal(err)
			}
			w := newWire(t, p)
			sock, err := w.a.Open(netip.MustParseAddrPort("0.0.0.0:0"))
			if err != nil {
				t.Fatal(err)
			}
			const n = 500
			got := map[int]bool{}
			buf := make([]byte, 2048)
			for i := 0; i < n; i++ {
				if err := w.a.SendTo(w.now, sock, payload(i), netip.MustParseAddrPort("198.18.1.2:7")); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				w.run(t, time.Millisecond)
				for {
					k, _, err := w.a.RecvFrom(sock, buf)
					if errors.Is(err, udp.ErrWouldBlock) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					i, ok := check(buf[:k])
					if !ok {
						t.Fatalf("a corrupt datagram was delivered: %x", buf[:min(k, 16)])
					}
					got[i] = true
				}
			}
			w.run(t, 100*time.Millisecond)
			rate := float64(len(got)) / n
			t.Logf("%d of %d came back; link a->b %+v; drops %v %v", len(got), n, w.ab.Stats(), w.a.Drops(), w.b.Drops())
			if rate < tt.minRate {
				t.Fatalf("only %.0f%% came back, want at least %.0f%%", 100*rate, 100*tt.minRate)
			}
			if tt.name == "corrupt" && w.ab.Stats().Corrupted+w.ba.Stats().Corrupted == 0 {
				t.Fatal("the link corrupted nothing: the test proves nothing")
			}
		})
	}
}

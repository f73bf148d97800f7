package tap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/netns"
)

// TestLinuxPeer moves a TAP device into a namespace of its own, has Linux
// ping an address behind it (echo requests from a raw socket in the
// namespace, as ping sends them), and checks that the first frame to arrive is
// Linux's ARP request for that address.
func TestLinuxPeer(t *testing.T) {
	for _, tso := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tso"}[tso], func(t *testing.T) { linuxPeer(t, tso) })
	}
}

func linuxPeer(t *testing.T, tso bool) {
	ns, err := netns.New("nts-tap-")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	d, err := Open("ntstap%d", tso)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := ns.Adopt(d.Name(), "198.18.0.1/24"); err != nil {
		t.Fatal(err)
	}
	pinged := ping(ns)
	defer func() { <-pinged }()

	buf := make([]byte, MaxFrame)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := d.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		f := buf[:n]
		if n < 42 || binary.BigEndian.Uint16(f[12:]) != 0x0806 {
			continue // IPv6 router solicitations and the like
		}
		if !bytes.Equal(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
			t.Fatalf("ARP request not broadcast: % x", f[:6])
		}
		op := binary.BigEndian.Uint16(f[20:])
		sender, _ := netip.AddrFromSlice(f[28:32])
		target, _ := netip.AddrFromSlice(f[38:42])
		if op != 1 || sender.String() != "198.18.0.1" || target.String() != "198.18.0.2" {
			t.Fatalf("ARP op %d %s asks for %s; want a request from 198.18.0.1 for 198.18.0.2", op, sender, target)
		}
		if d.Dropped() != 0 {
			t.Errorf("%d frames dropped", d.Dropped())
		}
		return
	}
	t.Fatal("no ARP request arrived from Linux")
}

// ping has Linux send one echo request to 198.18.0.2 from ns, waiting a
// second for the reply (none comes: nothing answers behind the device),
// and closes the channel it returns when done.
func ping(ns *netns.NS) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ns.Ping(netip.MustParseAddr("198.18.0.2"), 1, 0, time.Second)
	}()
	return done
}

// A frame longer than the MTU is written only with TSO, a segment size
// and a TCP segment in it, and never past the largest IPv4 packet.
func TestWriteRefusesOversized(t *testing.T) {
	tests := []struct {
		name    string
		tso     bool
		frame   []byte
		segSize int
		want    error
	}{
		{"no tso", false, make([]byte, MaxFrame+1), 0, ErrTooLong},
		{"no tso, a segment size", false, tcpFrame(MaxFrame + 1 - 54), 1448, ErrTooLong},
		{"tso, no segment size", true, tcpFrame(MaxFrame + 1 - 54), 0, ErrTooLong},
		{"tso, past an IPv4 packet", true, make([]byte, MaxTSOFrame+1), 1448, ErrTooLong},
		{"tso, not TCP", true, make([]byte, MaxFrame+1), 1448, ErrNotTSO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Open("ntstap%d", tt.tso)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if err := d.Write(tt.frame, tt.segSize); !errors.Is(err, tt.want) {
				t.Fatalf("Write(%d bytes, %d): %v, want %v", len(tt.frame), tt.segSize, err, tt.want)
			}
		})
	}
}

// TestOpenInNamespace: a persistent device made inside a namespace is
// attached to from outside it, twice (as a restarted nic would), and
// Linux's ARP request from inside reaches it.
func TestOpenInNamespace(t *testing.T) {
	ns, err := netns.New("nts-tapin-")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.AddTap("ntsp0", "198.18.0.1/24"); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		d, err := OpenIn("/var/run/netns/"+ns.Name, "ntsp0", round == 1)
		if err != nil {
			t.Fatal(err)
		}
		pinged := ping(ns)
		buf := make([]byte, MaxFrame)
		got := false
		for i := 0; i < 20 && !got; i++ {
			n, err := d.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = n >= 42 && binary.BigEndian.Uint16(buf[12:]) == 0x0806
		}
		<-pinged
		d.Close()
		if !got {
			t.Fatalf("round %d: no ARP request through the persistent device", round)
		}
	}
}

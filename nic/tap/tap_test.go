package tap

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/newtsim/newtsim/sim/netns"
)

// TestLinuxPeer moves a TAP device into a namespace of its own, has Linux
// ping an address behind it, and checks that the first frame to arrive is
// Linux's ARP request for that address.
func TestLinuxPeer(t *testing.T) {
	ns, err := netns.New("nts-tap-")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	d, err := Open("ntstap%d")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := ns.Adopt(d.Name(), "198.18.0.1/24"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ping := ns.Command(ctx, "ping", "-c", "1", "-W", "1", "198.18.0.2")
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	defer ping.Wait()

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
		return
	}
	t.Fatal("no ARP request arrived from Linux")
}

func TestWriteRefusesOversized(t *testing.T) {
	d, err := Open("ntstap%d")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Write(make([]byte, MaxFrame+1)); err == nil {
		t.Fatal("an oversized frame was written")
	}
}

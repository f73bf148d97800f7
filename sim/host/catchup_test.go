package host

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// lateDevice holds frames that its reader takes only after a delay each:
// a device whose frames came while the process did not run, its reading
// goroutine not yet woken. Pending tells they are there, as a TAP's poll
// does, and also while a frame it gave a Read has not been counted by the
// reader (counted), which a TAP's poll cannot tell: between read(2) and
// the count the frame is in neither place (a few instructions, unless the
// reader is preempted there), and the test would depend on the scheduler.
type lateDevice struct {
	mu      sync.Mutex
	queue   [][]byte
	popped  int64
	counted *atomic.Int64
	delay   time.Duration
	done    chan struct{}
}

func (d *lateDevice) Read(b []byte) (int, error) {
	time.Sleep(d.delay)
	for {
		d.mu.Lock()
		if len(d.queue) > 0 {
			f := d.queue[0]
			d.queue = d.queue[1:]
			d.popped++
			d.mu.Unlock()
			return copy(b, f), nil
		}
		d.mu.Unlock()
		select {
		case <-d.done:
			return 0, net.ErrClosed
		case <-time.After(time.Millisecond):
		}
	}
}

func (d *lateDevice) Pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.queue) > 0 || d.popped > d.counted.Load()
}

func (d *lateDevice) Write([]byte, int) error { return nil }

// arpRequest is an ARP request from 198.18.0.1 for the host's address.
func arpRequest(t *testing.T) []byte {
	t.Helper()
	src := net.HardwareAddr{0x02, 0, 0x5e, 0, 0, 1}
	eth := layers.Ethernet{SrcMAC: src, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
		ProtAddressSize: 4, Operation: layers.ARPRequest, SourceHwAddress: src, SourceProtAddress: []byte{198, 18, 0, 1},
		DstHwAddress: make([]byte, 6), DstProtAddress: []byte{198, 18, 0, 2}}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, &eth, &arp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A timer that comes due while frames wait in the device (read late, as by
// a process that did not run) first hands the host every one of them: the
// host answers all five ARP requests before catchUp returns, so a timer run
// then sees what the peer sent before it (its ACKs, for a retransmission
// timer).
func TestTimerCatchesUpWithDevice(t *testing.T) {
	const n = 5
	var answered atomic.Int64
	h, err := New(Config{MAC: [6]byte{0x02, 0, 0x5e, 0, 0, 2}, Addr: netip.MustParsePrefix("198.18.0.2/24"), Secret: 1},
		func([]byte, int) error { answered.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	dev := &lateDevice{delay: time.Millisecond, done: make(chan struct{})}
	defer close(dev.done)
	for range n {
		dev.queue = append(dev.queue, arpRequest(t))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A bound far above the device's delays: a loaded machine's
	// scheduling must not decide the test, only whether catchUp asks the
	// device for what it still holds.
	in := &input{frames: make(chan []byte, 256), dev: dev, wait: 10 * time.Second}
	dev.counted = &in.got
	go in.read(ctx, make(chan error, 1))
	if err := in.catchUp(ctx, h); err != nil {
		t.Fatal(err)
	}
	if got := answered.Load(); got != n {
		t.Fatalf("the host answered %d of the %d ARP requests the device held when the timer came due", got, n)
	}
	if in.taken != n {
		t.Fatalf("took %d frames, want %d", in.taken, n)
	}
}

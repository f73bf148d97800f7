package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/sim/netns"
)

// TestLinuxReceivesTSO: Linux's TCP, in the namespace behind the TAP,
// receives 512 kB from the host's. With TSO the host hands the device
// segments of up to 64 KiB and Linux cuts them (virtio-net headers), so
// far fewer frames than the 363 segments of 1448 bytes go out, the
// capture holds frames longer than the MTU, and every byte arrives in
// order with nothing retransmitted; without, every frame fits the MTU.
func TestLinuxReceivesTSO(t *testing.T) {
	const size = 512 << 10
	for _, tso := range []bool{true, false} {
		t.Run(map[bool]string{true: "tso", false: "plain"}[tso], func(t *testing.T) {
			ns, h, capture := linuxPeer(t, tso)
			seen := watchGSO(t, ns)
			api := h.API()
			l, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := api.Bind(l, netip.MustParseAddrPort("0.0.0.0:80")); err != nil {
				t.Fatal(err)
			}
			if err := api.Listen(l, 4); err != nil {
				t.Fatal(err)
			}
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(i*7 + i>>11)
			}
			served := make(chan error, 1)
			go func() {
				fd, _, err := api.Accept(l)
				if err != nil {
					served <- err
					return
				}
				for sent := 0; sent < len(data); {
					k, err := api.Send(fd, data[sent:], 0)
					if err != nil {
						served <- err
						return
					}
					sent += k
				}
				served <- api.Close(fd)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := ns.Dial(ctx, "tcp", "198.18.0.2:80")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("Linux read %d bytes: %v", len(got), err)
			}
			if err := <-served; err != nil {
				t.Fatalf("host: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("Linux received %d bytes, not the %d sent", len(got), len(data))
			}
			h.mu.Lock()
			ist, tst := h.ip.Stats(), h.tcp.Stats()
			h.mu.Unlock()
			t.Logf("frames out %d, segmented %d, tcp segments %d, retransmits %d", ist.FramesOut, ist.Segmented,
				tst.SegmentsOut, tst.Retransmits)
			if tst.Retransmits != 0 {
				t.Errorf("%d segments retransmitted", tst.Retransmits)
			}
			large := tshark(t, capture(), "frame.len > 1514")
			gso := seen()
			t.Logf("Linux took in %d large frames as GSO packets of segments of %v bytes, %d not", gso.gso, gso.sizes, gso.plain)
			if tso {
				if ist.Segmented == 0 || ist.FramesOut > 120 || large == 0 {
					t.Errorf("TSO: %d frames out, %d segmented, %d longer than the MTU in the capture; want far fewer than 363, some large",
						ist.FramesOut, ist.Segmented, large)
				}
				// Linux took each as a packet of several segments of the
				// MSS (what it cuts them into when it forwards them), not
				// as one huge segment.
				if gso.gso == 0 || gso.plain != 0 || len(gso.sizes) != 1 || gso.sizes[0] != 1448 {
					t.Errorf("Linux took in %d large frames as GSO packets of segments of %v bytes, %d as one segment; want all, of 1448",
						gso.gso, gso.sizes, gso.plain)
				}
				return
			}
			if ist.Segmented != 0 || ist.FramesOut < size/1448 || large != 0 || gso.gso+gso.plain != 0 {
				t.Errorf("no TSO: %d frames out, %d segmented, %d longer than the MTU in the capture, %d GSO packets in Linux",
					ist.FramesOut, ist.Segmented, large, gso.gso+gso.plain)
			}
		})
	}
}

// gsoSeen is what Linux made of the frames longer than the MTU it took in
// from the TAP: how many as GSO packets (and of which segment sizes), how
// many as single packets.
type gsoSeen struct {
	gso, plain int
	sizes      []int
}

// watchGSO reads what Linux takes in on the namespace's TAP through a
// packet socket with PACKET_VNET_HDR, which gives each packet's GSO
// type and size as the kernel holds them (virtio_net_hdr_from_skb), until
// the function it returns is called.
func watchGSO(t *testing.T, ns *netns.NS) func() gsoSeen {
	t.Helper()
	fd := -1
	err := ns.Do(func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		idx := slices.IndexFunc(ifs, func(i net.Interface) bool { return strings.HasPrefix(i.Name, "ntshost") })
		if idx < 0 {
			return unix.ENODEV
		}
		all := int(htons(unix.ETH_P_ALL))
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, all); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return err
		}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifs[idx].Index})
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatalf("packet socket in the namespace: %v", err)
	}
	stop := make(chan struct{})
	done := make(chan gsoSeen, 1)
	go func() {
		defer unix.Close(fd)
		var g gsoSeen
		b := make([]byte, 10+65536)
		for {
			select {
			case <-stop:
				done <- g
				return
			default:
			}
			n, from, err := unix.Recvfrom(fd, b, 0)
			if err != nil {
				continue // the time-out: look at stop
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING || n-10 <= 1514 {
				continue
			}
			if b[1] == unix.VIRTIO_NET_HDR_GSO_TCPV4 {
				g.gso++
				if size := int(binary.NativeEndian.Uint16(b[4:])); !slices.Contains(g.sizes, size) {
					g.sizes = append(g.sizes, size)
				}
			} else {
				g.plain++
			}
		}
	}()
	return func() gsoSeen {
		close(stop)
		return <-done
	}
}

// htons is a 16-bit value in network byte order, as a packet socket's
// protocol is given.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

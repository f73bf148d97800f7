package servers

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

func TestNICWithoutCable(t *testing.T) {
	h := newRole(t, "nic", NIC) // backend none
	ref := h.Buffer("ip", []byte("a frame for nobody"))
	h.Deliver("driver", systest.FrameTx(ref))
	out := h.SentTo("driver")
	if len(out) != 1 || out[0].Type != ipc.BufFree || systest.Ref(out[0]) != ref {
		t.Fatalf("sent %v, want ip's buffer given back by way of driver", out)
	}
	if got := h.Metric("newtsim_nic_dropped_frames_total", "reason", "no-cable"); got != 1 {
		t.Errorf("no-cable drops = %v, want 1", got)
	}
	if got := h.Metric("newtsim_nic_frames_total"); got != 0 {
		t.Errorf("frames moved = %v, want none", got)
	}
	// A frame coming up with no wire is not the nic's to pass.
	h.Deliver("driver", systest.FrameRx(h.Buffer("ip", []byte("x"))))
	if out := h.Sent(); len(out) != 0 {
		t.Errorf("sent %v for a frame up, want nothing", out)
	}
}

func TestNICRefusesBadBuffer(t *testing.T) {
	h := newRole(t, "nic", NIC)
	h.Deliver("driver", systest.FrameTx(pool.MakeRef(uint8(hostSlots["ip"]), 1<<30, 60)))
	if out := h.Sent(); len(out) != 0 {
		t.Errorf("sent %v, want nothing", out)
	}
	if got := h.Metric("newtsim_server_bad_buffer_refs_total", "type", "frame-tx"); got != 1 {
		t.Errorf("bad refs = %v, want 1", got)
	}
	if got := h.Metric("newtsim_nic_dropped_frames_total"); got != 0 {
		t.Errorf("drops = %v, want none: a bad reference is no frame", got)
	}
}

func TestNICWire(t *testing.T) {
	h := systest.New(t, systest.Config{Name: "nic", Procs: map[string]int{"nic": 1, "driver": 2, "far": 3, "ip": 4},
		Peers: []string{"driver", "far"}, Routes: map[string]string{"ip": "driver"}, Roles: map[string]string{"far": "nic"},
		Args: []string{"--backend", "wire", "--wire-peer", "far"}}, NIC)
	// Down: onto the wire, and out at the far end in a buffer of ours.
	frame := []byte("a frame across the wire")
	ref := h.Buffer("ip", frame)
	h.Deliver("driver", systest.FrameTx(ref))
	// The wire's goroutine sends the frame on, then counts it, beside the
	// loop that gives the buffer back.
	var across, back []ipc.Message
	deadline := time.Now().Add(5 * time.Second)
	for (len(across) == 0 || h.Metric("newtsim_nic_frames_total", "direction", "wire") == 0) && time.Now().Before(deadline) {
		for _, m := range h.Sent() {
			if m.Type == ipc.BufFree {
				back = append(back, m)
			} else {
				across = append(across, m)
			}
		}
		time.Sleep(time.Millisecond)
	}
	if len(back) != 1 || systest.Ref(back[0]) != ref || back[0].Dst != h.Endpoint("driver") {
		t.Fatalf("gave back %v, want ip's buffer back by way of driver", back)
	}
	if len(across) != 1 || across[0].Type != ipc.FrameRx || across[0].Dst != h.Endpoint("far") ||
		systest.Ref(across[0]).Pool() != uint8(1) || !bytes.Equal(h.Bytes(systest.Ref(across[0])), frame) {
		t.Fatalf("sent %v across, want the frame up at the far nic in the nic's pool", across)
	}
	// Up: a frame off the wire goes to the driver as it is.
	up := h.Buffer("far", []byte("from the far end"))
	h.Deliver("far", systest.FrameRx(up))
	if out := h.SentTo("driver"); len(out) != 1 || out[0].Type != ipc.FrameRx || systest.Ref(out[0]) != up {
		t.Fatalf("sent %v, want the far end's frame up to driver", out)
	}
	if tx, wire, rx := h.Metric("newtsim_nic_frames_total", "direction", "tx"),
		h.Metric("newtsim_nic_frames_total", "direction", "wire"),
		h.Metric("newtsim_nic_frames_total", "direction", "rx"); tx != 1 || wire != 1 || rx != 1 {
		t.Errorf("frames tx %v, wire %v, rx %v; want 1 each", tx, wire, rx)
	}
}

func TestClientPort(t *testing.T) {
	client, server := netip.MustParseAddrPort("198.18.0.1:40000"), netip.MustParseAddrPort("198.18.0.2:80")
	frame := func(src, dst netip.AddrPort, h layers.TCP, data []byte) []byte {
		ip := ipv4(src.Addr(), dst.Addr(), layers.IPProtocolTCP)
		h.SrcPort, h.DstPort, h.Window = layers.TCPPort(src.Port()), layers.TCPPort(dst.Port()), 65535
		h.SetNetworkLayerForChecksum(ip)
		return serialize(t, ether(peerMAC, hostMAC, layers.EthernetTypeIPv4), ip, &h, gopacket.Payload(data))
	}
	request := frame(client, server, layers.TCP{ACK: true, PSH: true, Seq: 1}, []byte("GET / HTTP/1.1\r\n\r\n"))
	response := frame(server, client, layers.TCP{ACK: true, PSH: true, Seq: 1}, []byte("HTTP/1.1 200 OK\r\n\r\n"))
	options := frame(client, server, layers.TCP{ACK: true, Seq: 1, Options: []layers.TCPOption{
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}}, []byte("x"))
	tests := []struct {
		name  string
		frame []byte
		in    bool
		port  uint16
		ok    bool
	}{
		{"request from the client", request, true, 40000, true},
		{"response to the client", response, false, 40000, true},
		{"data after TCP options", options, true, 40000, true},
		{"bare ACK", frame(client, server, layers.TCP{ACK: true, Seq: 1}, nil), true, 0, false},
		{"SYN", frame(client, server, layers.TCP{SYN: true}, nil), true, 0, false},
		{"UDP", serialize(t, ether(peerMAC, hostMAC, layers.EthernetTypeIPv4),
			gopacket.Payload(udpPacket(t, client, server, bytes.Repeat([]byte("x"), 40)))), true, 0, false},
		{"ARP", arpFrame(t, layers.ARPRequest, peerMAC, client.Addr(), hostMAC, server.Addr()), true, 0, false},
		{"truncated", request[:40], true, 0, false},
		{"empty", nil, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, ok := clientPort(tt.frame, tt.in)
			if port != tt.port || ok != tt.ok {
				t.Errorf("clientPort = %d, %v; want %d, %v", port, ok, tt.port, tt.ok)
			}
		})
	}
}

// What the wire's model drops, the nic counts: every frame onto a wire
// that loses them all is a "wire-lost" drop, and none arrives.
func TestNICWireDropsCounted(t *testing.T) {
	h := systest.New(t, systest.Config{Name: "nic", Procs: map[string]int{"nic": 1, "driver": 2, "far": 3, "ip": 4},
		Peers: []string{"driver", "far"}, Routes: map[string]string{"ip": "driver"}, Roles: map[string]string{"far": "nic"},
		Args: []string{"--backend", "wire", "--wire-peer", "far", "--link", "loss=1"}}, NIC)
	for i := range 3 {
		ref := h.Buffer("ip", []byte{byte(i), 1, 2, 3})
		h.Deliver("driver", systest.FrameTx(ref))
	}
	if got := h.Metric("newtsim_nic_dropped_frames_total", "reason", "wire-lost"); got != 3 {
		t.Errorf("wire-lost drops %v, want 3", got)
	}
	time.Sleep(20 * time.Millisecond)
	for _, m := range h.Sent() { // only the buffers given back, by way of driver
		if m.Type != ipc.BufFree || m.Dst != h.Endpoint("driver") {
			t.Errorf("sent %v to %s across a wire that loses every frame", m.Type, h.Name(m.Dst))
		}
	}
}

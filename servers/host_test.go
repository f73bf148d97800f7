package servers

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// What every role test shares: one host laid out as the launcher lays out
// the default topology, each role run alone on it (package systest), and
// the frames and packets the tests send it, built and read with gopacket.

// hostSlots are the host's processes: the stack, and two applications.
var hostSlots = map[string]int{"nic": 1, "driver": 2, "pf": 3, "ip": 4, "udp": 5, "tcp": 6, "syscall": 7,
	"app": 8, "other": 9}

// hostLinks are the host's links: the packet path, the transports, the
// applications on syscall, and app on tcp for exposed sockets.
var hostLinks = [][2]string{{"nic", "driver"}, {"driver", "pf"}, {"pf", "ip"}, {"ip", "udp"}, {"ip", "tcp"},
	{"udp", "syscall"}, {"tcp", "syscall"}, {"syscall", "app"}, {"syscall", "other"}, {"tcp", "app"}}

// newRole runs the named role of the host alone, with its role's
// arguments.
func newRole(t *testing.T, name string, start sys.Starter, args ...string) *systest.Harness {
	t.Helper()
	peers, routes := hostRoutes(name)
	return systest.New(t, systest.Config{Name: name, Procs: hostSlots, Peers: peers, Routes: routes, Args: args}, start)
}

// hostRoutes gives a process its peers and the next hop towards every
// other process, by the shortest path over the links.
func hostRoutes(name string) (peers []string, routes map[string]string) {
	adj := map[string][]string{}
	for _, l := range hostLinks {
		adj[l[0]] = append(adj[l[0]], l[1])
		adj[l[1]] = append(adj[l[1]], l[0])
	}
	peers = adj[name]
	routes = map[string]string{}
	hop := map[string]string{name: ""}
	queue := []string{name}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range adj[n] {
			if _, seen := hop[m]; seen {
				continue
			}
			hop[m] = hop[n]
			if n == name {
				hop[m] = m
			}
			if hop[m] != m {
				routes[m] = hop[m]
			}
			queue = append(queue, m)
		}
	}
	return peers, routes
}

// The host's addresses, as the roles' defaults have them, and a neighbour.
var (
	hostIP    = netip.MustParseAddr("198.18.0.2")
	hostMAC   = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02}
	peerIP    = netip.MustParseAddr("198.18.0.1")
	peerMAC   = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}
	broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// serialize lays out packet layers with lengths and checksums computed.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ether(src, dst [6]byte, t layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: src[:], DstMAC: dst[:], EthernetType: t}
}

func ipv4(src, dst netip.Addr, p layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Protocol: p, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

// arpFrame is an ARP request or reply (op) from sender to target.
// For a request tha is not used: the frame is a broadcast.
func arpFrame(t *testing.T, op uint16, sha [6]byte, spa netip.Addr, tha [6]byte, tpa netip.Addr) []byte {
	dst := tha
	if op == layers.ARPRequest {
		dst, tha = broadcast, [6]byte{}
	}
	return serialize(t, ether(sha, dst, layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet,
		Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: sha[:], SourceProtAddress: spa.AsSlice(), DstHwAddress: tha[:], DstProtAddress: tpa.AsSlice()})
}

// echoFrame is an ICMP echo request from the neighbour to the host.
func echoFrame(t *testing.T, id, seq uint16, data []byte) []byte {
	ip := ipv4(peerIP, hostIP, layers.IPProtocolICMPv4)
	return serialize(t, ether(peerMAC, hostMAC, layers.EthernetTypeIPv4), ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq},
		gopacket.Payload(data))
}

// udpPacket is an IPv4 packet with a UDP datagram.
func udpPacket(t testing.TB, src, dst netip.AddrPort, data []byte) []byte {
	ip := ipv4(src.Addr(), dst.Addr(), layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, u, gopacket.Payload(data))
}

// udpSegment is a UDP datagram alone, as a transport hands ip, its
// checksum over the pseudo-header of src and dst.
func udpSegment(t *testing.T, src, dst netip.AddrPort, data []byte) []byte {
	return udpPacket(t, src, dst, data)[20:]
}

// tcpSegment is a TCP segment alone, checksummed for src and dst.
func tcpSegment(t *testing.T, src, dst netip.AddrPort, h layers.TCP, data []byte) []byte {
	ip := ipv4(src.Addr(), dst.Addr(), layers.IPProtocolTCP)
	h.SrcPort, h.DstPort = layers.TCPPort(src.Port()), layers.TCPPort(dst.Port())
	if h.Window == 0 {
		h.Window = 65535
	}
	h.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, &h, gopacket.Payload(data))[20:]
}

// tcpPacket is an IPv4 packet with a TCP segment.
func tcpPacket(t *testing.T, src, dst netip.AddrPort, h layers.TCP, data []byte) []byte {
	return serialize(t, ipv4(src.Addr(), dst.Addr(), layers.IPProtocolTCP), gopacket.Payload(tcpSegment(t, src, dst, h, data)))
}

// withEther puts an IPv4 packet in a frame from the neighbour to the host.
func withEther(t testing.TB, packet []byte) []byte {
	return serialize(t, ether(peerMAC, hostMAC, layers.EthernetTypeIPv4), gopacket.Payload(packet))
}

// decodeTCP decodes a TCP segment alone.
func decodeTCP(t *testing.T, b []byte) *layers.TCP {
	t.Helper()
	var h layers.TCP
	if err := h.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("not a TCP segment: %v", err)
	}
	return &h
}

// at is an address and port.
func at(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

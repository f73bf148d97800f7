package pcap

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func frames(t *testing.T) [][]byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: layers.EthernetBroadcast,
		EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
		ProtAddressSize: 4, Operation: layers.ARPRequest, SourceHwAddress: eth.SrcMAC,
		SourceProtAddress: []byte{198, 18, 0, 2}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{198, 18, 0, 1}}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, arp); err != nil {
		t.Fatal(err)
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{198, 18, 0, 2}, DstIP: net.IP{198, 18, 0, 1}}
	udp := &layers.UDP{SrcPort: 7, DstPort: 40000}
	udp.SetNetworkLayerForChecksum(ip)
	eth2 := *eth
	eth2.EthernetType = layers.EthernetTypeIPv4
	buf2 := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf2, opts, &eth2, ip, udp, gopacket.Payload("hello")); err != nil {
		t.Fatal(err)
	}
	return [][]byte{buf.Bytes(), buf2.Bytes()}
}

// TestTsharkReads writes an ARP request and a UDP datagram and has tshark
// decode the file. tshark is a Debian package `make test` installs; without
// it this test fails.
func TestTsharkReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nic.pcap")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames(t) {
		if err := w.Write(time.Now(), f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("tshark is not installed (Debian package tshark; `make test` installs it)")
	}
	cmd := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.protocols", "-e", "udp.dstport")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // tshark wants a writable profile dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	// tshark may also print warnings (about running as root, say): keep
	// only the field lines.
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "eth:") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "eth:ethertype:arp") ||
		!strings.HasPrefix(lines[1], "eth:ethertype:ip:udp") || !strings.HasSuffix(lines[1], "40000") {
		t.Fatalf("tshark decoded:\n%s", out)
	}
}

// TestTSOFrameWhole: a frame as large as TSO makes it (an IPv4 packet of
// 65535 bytes) is recorded whole, and tshark reads its TCP segment.
func TestTSOFrameWhole(t *testing.T) {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP{198, 18, 0, 2}, DstIP: net.IP{198, 18, 0, 1}}
	tcp := &layers.TCP{SrcPort: 80, DstPort: 40000, Seq: 1, Ack: 1, ACK: true, PSH: true, Window: 500}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp, gopacket.Payload(make([]byte, 65535-40))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tso.pcap")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(time.Now(), buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("tshark is not installed (Debian package tshark; `make test` installs it)")
	}
	cmd := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.len", "-e", "frame.cap_len", "-e", "tcp.len")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); len(got) != 3 || got[0] != "65549" || got[1] != "65549" || got[2] != "65495" {
		t.Fatalf("tshark read frame length, captured length, TCP length %q; want 65549 65549 65495", got)
	}
}

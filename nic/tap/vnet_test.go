package tap

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// tcpFrame returns an Ethernet frame holding an IPv4 TCP segment from
// 198.18.0.2:80 to 198.18.0.1:49152 with a 20-byte header (32 with the
// timestamp option, if ts) and n data bytes, its checksums filled in
// (gopacket's, so the tests use none of the stack's).
func tcpFrame(n int, ts ...bool) []byte {
	eth := layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		EthernetType: layers.EthernetTypeIPv4}
	ip := layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP{198, 18, 0, 2}, DstIP: net.IP{198, 18, 0, 1}}
	tcp := layers.TCP{SrcPort: 80, DstPort: 49152, PSH: true, ACK: true}
	if len(ts) > 0 && ts[0] {
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}
	}
	tcp.SetNetworkLayerForChecksum(&ip)
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	if err := gopacket.SerializeLayers(buf, opts, &eth, &ip, &tcp, gopacket.Payload(data)); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// header is a virtio-net header's fields, for the tests to read.
type header struct {
	flags, gsoType                         uint8
	hdrLen, gsoSize, csumStart, csumOffset uint16
}

func parse(h [VnetHeaderLen]byte) header {
	u := binary.NativeEndian.Uint16
	return header{h[0], h[1], u(h[2:]), u(h[4:]), u(h[6:]), u(h[8:])}
}

func TestVnetHeader(t *testing.T) {
	fragment := tcpFrame(3000)
	binary.BigEndian.PutUint16(fragment[14+6:], 0x2000) // MF
	padded := append(tcpFrame(3000), 0, 0)
	udp := tcpFrame(3000)
	udp[14+9] = 17
	tests := []struct {
		name    string
		frame   []byte
		segSize int
		want    header
		err     error
	}{
		{"64 KiB in segments of 1448", tcpFrame(65442, true), 1448, header{gsoType: 1, hdrLen: 66, gsoSize: 1448}, nil},
		{"two segments", tcpFrame(2 * 1460), 1460, header{gsoType: 1, hdrLen: 54, gsoSize: 1460}, nil},
		{"a segment and a byte", tcpFrame(1449, true), 1448, header{gsoType: 1, hdrLen: 66, gsoSize: 1448}, nil},
		{"one segment: not cut", tcpFrame(1448, true), 1448, header{}, nil},
		{"no segment size: not cut", tcpFrame(1448), 0, header{}, nil},
		{"not IPv4 with no segment size", make([]byte, 60), 0, header{}, nil},
		{"not IPv4", make([]byte, 3000), 1448, header{}, ErrNotTSO},
		{"UDP", udp, 1448, header{}, ErrNotTSO},
		{"a fragment", fragment, 1448, header{}, ErrNotTSO},
		{"padded past the IP packet", padded, 1448, header{}, ErrNotTSO},
		{"short", tcpFrame(0)[:50], 1448, header{}, ErrNotTSO},
		{"segment size too large", tcpFrame(70000 - 54)[:65549], 65536, header{}, ErrNotTSO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := VnetHeader(tt.frame, tt.segSize)
			if !errors.Is(err, tt.err) {
				t.Fatalf("VnetHeader: %v, want %v", err, tt.err)
			}
			if got := parse(h); err == nil && got != tt.want {
				t.Errorf("VnetHeader = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestReceiveVnetHeader: a header that asks nothing of the device passes,
// and one that asks it to cut the frame or to finish its checksum, which
// the device never offered Linux, is refused.
func TestReceiveVnetHeader(t *testing.T) {
	var needs, gso, valid [VnetHeaderLen]byte
	needs[0] = 1 // NEEDS_CSUM
	binary.NativeEndian.PutUint16(needs[6:], 34)
	binary.NativeEndian.PutUint16(needs[8:], 16)
	gso[1] = 1
	valid[0] = 2 // DATA_VALID: nothing to do
	tests := []struct {
		name string
		h    [VnetHeaderLen]byte
		err  error
	}{
		{"plain", [VnetHeaderLen]byte{}, nil},
		{"data valid", valid, nil},
		{"checksum left to the device", needs, ErrVnet},
		{"segmentation asked", gso, ErrVnet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ReceiveVnetHeader(tt.h); !errors.Is(err, tt.err) {
				t.Fatalf("ReceiveVnetHeader: %v, want %v", err, tt.err)
			}
		})
	}
}

// FuzzReceiveVnetHeader: whatever the header and the frame, neither
// reading the header nor making one for the frame panics.
func FuzzReceiveVnetHeader(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 34, 0, 16, 0}, tcpFrame(100))
	f.Add([]byte{0, 1, 54, 0, 0xa8, 5, 0, 0, 0, 0}, tcpFrame(100))
	f.Fuzz(func(t *testing.T, hdr, frame []byte) {
		var h [VnetHeaderLen]byte
		copy(h[:], hdr)
		ReceiveVnetHeader(h)
		VnetHeader(frame, int(binary.LittleEndian.Uint16(h[4:])))
	})
}

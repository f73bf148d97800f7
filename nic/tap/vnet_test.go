package tap

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/newtsim/newtsim/servers/checksum"
)

// tcpFrame returns an Ethernet frame holding an IPv4 TCP segment from
// 198.18.0.2:80 to 198.18.0.1:49152 with a 20-byte header (32 with the
// timestamp option, if ts) and n data bytes, its checksums filled in.
func tcpFrame(n int, ts ...bool) []byte {
	thl := 20
	if len(ts) > 0 && ts[0] {
		thl = 32
	}
	f := make([]byte, 14+20+thl+n)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+thl+n))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	copy(ip[12:], []byte{198, 18, 0, 2, 198, 18, 0, 1})
	binary.BigEndian.PutUint16(ip[10:], checksum.Of(ip[:20]))
	seg := ip[20:]
	binary.BigEndian.PutUint16(seg[0:], 80)
	binary.BigEndian.PutUint16(seg[2:], 49152)
	seg[12], seg[13] = byte(thl/4)<<4, 0x18 // PSH ACK
	if thl == 32 {
		copy(seg[20:], []byte{1, 1, 8, 10})
	}
	for i := range n {
		seg[thl+i] = byte(i)
	}
	binary.BigEndian.PutUint16(seg[16:], tcpChecksum(f))
	return f
}

// tcpChecksum is the checksum of the segment in tcpFrame's frame f, its
// checksum field taken as it is.
func tcpChecksum(f []byte) uint16 {
	ip := f[14:]
	total := int(binary.BigEndian.Uint16(ip[2:]))
	seg := ip[20:total]
	var pseudo [12]byte
	copy(pseudo[:8], ip[12:20])
	pseudo[9] = 6
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(seg)))
	return ^checksum.Fold(checksum.Sum(checksum.Sum(0, pseudo[:]), seg))
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

func TestReceiveVnetHeader(t *testing.T) {
	good := tcpFrame(1000)
	want := binary.BigEndian.Uint16(good[14+20+16:])
	// What Linux hands a device it left the checksum to: the
	// pseudo-header's sum, not complemented, in the field.
	partial := tcpFrame(1000)
	ip := partial[14:]
	var pseudo [12]byte
	copy(pseudo[:8], ip[12:20])
	pseudo[9] = 6
	binary.BigEndian.PutUint16(pseudo[10:], 20+1000)
	binary.BigEndian.PutUint16(ip[20+16:], checksum.Fold(checksum.Sum(0, pseudo[:])))
	var needs [VnetHeaderLen]byte
	needs[0] = 1 // NEEDS_CSUM
	binary.NativeEndian.PutUint16(needs[6:], 34)
	binary.NativeEndian.PutUint16(needs[8:], 16)
	past := needs
	binary.NativeEndian.PutUint16(past[8:], 1000+20-1)
	var gso, valid [VnetHeaderLen]byte
	gso[1] = 1
	valid[0] = 2 // DATA_VALID: nothing to do

	tests := []struct {
		name  string
		h     [VnetHeaderLen]byte
		frame []byte
		err   error
		sum   uint16 // the TCP checksum after
	}{
		{"plain", [VnetHeaderLen]byte{}, good, nil, want},
		{"data valid", valid, good, nil, want},
		{"checksum left to the device", needs, partial, nil, want},
		{"checksum place past the frame", past, tcpFrame(1000), ErrVnet, 0},
		{"segmentation asked", gso, tcpFrame(1000), ErrVnet, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ReceiveVnetHeader(tt.h, tt.frame)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ReceiveVnetHeader: %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got := binary.BigEndian.Uint16(tt.frame[14+20+16:]); got != tt.sum {
				t.Errorf("checksum %#04x, want %#04x", got, tt.sum)
			}
			if tcpChecksum(tt.frame) != 0 {
				t.Error("the segment's checksum does not verify")
			}
		})
	}
}

// FuzzReceiveVnetHeader: whatever the header and the frame, a read
// neither panics nor writes outside the frame.
func FuzzReceiveVnetHeader(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 34, 0, 16, 0}, tcpFrame(100))
	f.Add([]byte{0, 1, 54, 0, 0xa8, 5, 0, 0, 0, 0}, tcpFrame(100))
	f.Fuzz(func(t *testing.T, hdr, frame []byte) {
		var h [VnetHeaderLen]byte
		copy(h[:], hdr)
		ReceiveVnetHeader(h, frame)
		VnetHeader(frame, int(binary.LittleEndian.Uint16(h[4:])))
	})
}

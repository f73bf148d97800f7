package packet

import (
	"net/netip"
	"testing"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
)

var ref = pool.MakeRef(4, 2048, 1514)

func TestRoundTrip(t *testing.T) {
	var m ipc.Message
	for _, want := range []Frame{
		{Type: ipc.FrameRx, Buf: ref},
		{Type: ipc.FrameTx, Buf: ref},
		{Type: ipc.FrameTx, Buf: ref, SegSize: 1448},
		{Type: ipc.FrameTx, Buf: ref, SegSize: 65535},
	} {
		want.Encode(&m)
		var f Frame
		f.Decode(&m)
		if m.Type != want.Type || f != want {
			t.Errorf("%+v: %v decodes as %+v", want, &m, f)
		}
	}
	BufFree{Buf: ref}.Encode(&m)
	var b BufFree
	b.Decode(&m)
	if m.Type != ipc.BufFree || b.Buf != ref {
		t.Errorf("buf-free: %v decodes as %+v", &m, b)
	}
	Unreachable{Buf: ref}.Encode(&m)
	var u Unreachable
	u.Decode(&m)
	if m.Type != ipc.Unreachable || u.Buf != ref {
		t.Errorf("unreachable: %v decodes as %+v", &m, u)
	}
	for _, d := range []Datagram{
		{Buf: ref, Off: 20},
		{Buf: ref, Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.18.0.1"), Proto: 6},
		{Buf: ref, Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.18.0.1"), Proto: 6, SegSize: 1448},
	} {
		d.Encode(&m)
		var got Datagram
		got.Decode(&m)
		if !d.Src.IsValid() { // no addresses read back as 0.0.0.0
			d.Src, d.Dst = netip.IPv4Unspecified(), netip.IPv4Unspecified()
		}
		if m.Type != ipc.Datagram || got != d {
			t.Errorf("datagram: %+v decodes as %+v", d, got)
		}
	}
	e := ICMPError{Local: netip.MustParseAddrPort("198.18.0.2:49152"), Remote: netip.MustParseAddrPort("198.18.0.1:80"),
		Seq: 0xfedcba98, Type: 3, Code: 4, MTU: 1280}
	e.Encode(&m)
	var ge ICMPError
	ge.Decode(&m)
	if m.Type != ipc.ICMPError || ge != e || m.Arg[0] != 0 {
		t.Errorf("icmp-error: %+v decodes as %+v (%v)", e, ge, &m)
	}
}

// A datagram's offset from a hostile sender never reads as negative.
func TestDatagramOffsetBounded(t *testing.T) {
	m := ipc.Message{Type: ipc.Datagram, Arg: [ipc.NumArgs]uint64{uint64(ref), 1 << 63}}
	var d Datagram
	d.Decode(&m)
	if d.Off < 0 {
		t.Fatalf("offset %d", d.Off)
	}
}

// A segment size from a hostile sender that does not fit 16 bits reads as
// none, not as its low bits.
func TestSegSizeBounded(t *testing.T) {
	tests := []struct {
		name string
		word uint64
		want uint16
	}{
		{"none", 0, 0},
		{"mss", 1448, 1448},
		{"largest", 65535, 65535},
		{"one past", 65536, 0},
		{"low bits an mss", 1<<32 | 1448, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ipc.Message{Type: ipc.FrameTx, Arg: [ipc.NumArgs]uint64{uint64(ref), tt.word}}
			var fr Frame
			fr.Decode(&f)
			d := ipc.Message{Type: ipc.Datagram, Arg: [ipc.NumArgs]uint64{uint64(ref), 0, 0, 0, 6, tt.word}}
			var dg Datagram
			dg.Decode(&d)
			if fr.SegSize != tt.want || dg.SegSize != tt.want {
				t.Errorf("word %#x: frame %d, datagram %d; want %d", tt.word, fr.SegSize, dg.SegSize, tt.want)
			}
		})
	}
}

func TestSetBuf(t *testing.T) {
	var m ipc.Message
	Datagram{Off: 34}.Encode(&m)
	SetBuf(&m, ref)
	var d Datagram
	d.Decode(&m)
	if d.Buf != ref || d.Off != 34 {
		t.Fatalf("after SetBuf: %+v", d)
	}
}

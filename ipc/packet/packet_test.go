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
	for _, typ := range []ipc.Type{ipc.FrameRx, ipc.FrameTx} {
		Frame{Type: typ, Buf: ref}.Encode(&m)
		var f Frame
		f.Decode(&m)
		if m.Type != typ || f != (Frame{Type: typ, Buf: ref}) {
			t.Errorf("%s: %v decodes as %+v", typ, &m, f)
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

package udp_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
	"github.com/newtsim/newtsim/servers/udp"
)

var (
	host   = netip.MustParseAddr("10.0.0.1")
	host2  = netip.MustParseAddr("10.0.0.9")
	peer   = netip.MustParseAddr("10.0.0.2")
	other  = netip.MustParseAddr("10.0.0.3")
	lo     = netip.MustParseAddr("127.0.0.1")
	any4   = netip.IPv4Unspecified()
	config = udp.Config{Addrs: []netip.Addr{host, host2}}
)

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// open opens a socket, bound to local unless local is the zero AddrPort.
func open(t testing.TB, tab *udp.Stack, local netip.AddrPort) udp.SockID {
	t.Helper()
	id := tab.Open()
	if local.IsValid() {
		if err := tab.Bind(id, local); err != nil {
			t.Fatalf("Bind(%v): %v", local, err)
		}
	}
	return id
}

// segment builds a UDP segment from src:sport to dst:dport with a correct
// checksum.
func segment(src netip.AddrPort, dst netip.AddrPort, payload []byte) []byte {
	seg := make([]byte, udp.HeaderLen+len(payload))
	binary.BigEndian.PutUint16(seg[0:], src.Port())
	binary.BigEndian.PutUint16(seg[2:], dst.Port())
	binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	copy(seg[udp.HeaderLen:], payload)
	cs := udp.Checksum(src.Addr(), dst.Addr(), seg)
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(seg[6:], cs)
	return seg
}

// deliver feeds a datagram from src to dst into tab.
func deliver(tab *udp.Stack, src, dst netip.AddrPort, payload []byte) (udp.SockID, error) {
	return input(tab, src.Addr(), dst.Addr(), segment(src, dst, payload))
}

// sendTo sends from socket id and returns the one datagram SendTo queued
// for ip.
func sendTo(tab *udp.Stack, id udp.SockID, payload []byte, to netip.AddrPort) (udp.Datagram, error) {
	err := tab.SendTo(id, payload, to)
	out := tab.Out()
	switch {
	case err != nil && len(out) != 0:
		return udp.Datagram{}, fmt.Errorf("SendTo failed (%w) and still queued %d datagrams", err, len(out))
	case err != nil:
		return udp.Datagram{}, err
	case len(out) != 1:
		return udp.Datagram{}, fmt.Errorf("SendTo queued %d datagrams, want 1", len(out))
	}
	return out[0], nil
}

// input feeds a segment into tab and returns the socket it went to: the
// one socket it woke, or the one whose full queue dropped it.
func input(tab *udp.Stack, src, dst netip.Addr, seg []byte) (udp.SockID, error) {
	err := tab.Input(src, dst, seg)
	w := tab.Wakeups()
	var de *udp.DropError
	switch {
	case err == nil && len(w) == 1:
		return w[0], nil
	case err == nil:
		return 0, fmt.Errorf("Input accepted a segment and woke %v, want one socket", w)
	case len(w) != 0:
		return 0, fmt.Errorf("Input refused a segment (%w) and woke %v", err, w)
	case errors.As(err, &de):
		return de.Socket, err
	}
	return 0, err
}

// recv takes one datagram from the socket, which must have one.
func recv(t *testing.T, tab *udp.Stack, id udp.SockID) ([]byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, udp.MaxPayload)
	n, from, trunc, err := tab.RecvFrom(id, buf)
	if err != nil || trunc {
		t.Fatalf("RecvFrom(%d) = %d, %v, truncated %v, %v", id, n, from, trunc, err)
	}
	return buf[:n], from
}

func TestBind(t *testing.T) {
	type bind struct {
		local string
		reuse bool
		want  error
	}
	tests := []struct {
		name  string
		binds []bind
	}{
		{"same address", []bind{{"10.0.0.1:53", false, nil}, {"10.0.0.1:53", false, udp.ErrAddrInUse}}},
		{"any then specific", []bind{{"0.0.0.0:53", false, nil}, {"10.0.0.1:53", false, udp.ErrAddrInUse}}},
		{"specific then any", []bind{{"10.0.0.1:53", false, nil}, {"0.0.0.0:53", false, udp.ErrAddrInUse}}},
		{"any twice", []bind{{"0.0.0.0:53", false, nil}, {"0.0.0.0:53", false, udp.ErrAddrInUse}}},
		{"two addresses", []bind{{"10.0.0.1:53", false, nil}, {"10.0.0.9:53", false, nil}, {"127.0.0.1:53", false, nil}}},
		{"other ports", []bind{{"0.0.0.0:53", false, nil}, {"0.0.0.0:54", false, nil}}},
		{"reuse both", []bind{{"0.0.0.0:53", true, nil}, {"10.0.0.1:53", true, nil}, {"0.0.0.0:53", true, nil}}},
		{"reuse first only", []bind{{"0.0.0.0:53", true, nil}, {"0.0.0.0:53", false, udp.ErrAddrInUse}}},
		{"reuse second only", []bind{{"0.0.0.0:53", false, nil}, {"0.0.0.0:53", true, udp.ErrAddrInUse}}},
		{"loopback net", []bind{{"127.0.0.5:53", false, nil}}},
		{"not local", []bind{{"10.0.0.2:53", false, udp.ErrAddrNotAvail}}},
		{"broadcast", []bind{{"255.255.255.255:53", false, udp.ErrAddrNotAvail}}},
		{"ipv6", []bind{{"[::1]:53", false, udp.ErrInvalid}}},
		{"ipv4-mapped", []bind{{"[::ffff:10.0.0.1]:53", false, nil}, {"10.0.0.1:53", false, udp.ErrAddrInUse}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := udp.New(config)
			for i, b := range tt.binds {
				id := tab.Open()
				if err := tab.SetReuseAddr(id, b.reuse); err != nil {
					t.Fatal(err)
				}
				err := tab.Bind(id, netip.MustParseAddrPort(b.local))
				if !errors.Is(err, b.want) || (err == nil) != (b.want == nil) {
					t.Fatalf("bind %d (%s, reuse %v) = %v, want %v", i, b.local, b.reuse, err, b.want)
				}
			}
		})
	}
}

func TestBindErrors(t *testing.T) {
	tab := udp.New(config)
	id := open(t, tab, ap(host, 53))
	if err := tab.Bind(id, ap(host, 54)); !errors.Is(err, udp.ErrInvalid) {
		t.Errorf("second Bind = %v, want ErrInvalid", err)
	}
	if err := tab.Bind(99, ap(host, 54)); !errors.Is(err, udp.ErrBadSocket) {
		t.Errorf("Bind on socket 99 = %v, want ErrBadSocket", err)
	}
	// The zero AddrPort binds any address, any port.
	id2 := open(t, tab, netip.AddrPort{})
	if err := tab.Bind(id2, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if got, err := tab.LocalAddr(id2); err != nil || got != ap(any4, 49152) {
		t.Errorf("LocalAddr = %v, %v; want 0.0.0.0:49152", got, err)
	}
}

func TestEphemeral(t *testing.T) {
	tab := udp.New(udp.Config{Addrs: []netip.Addr{host}, EphemeralLo: 5000, EphemeralHi: 5003})
	open(t, tab, ap(any4, 5001))
	var got []uint16
	var ids []udp.SockID
	for range 3 {
		id := open(t, tab, ap(any4, 0))
		a, err := tab.LocalAddr(id)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.Port())
		ids = append(ids, id)
	}
	if want := []uint16{5000, 5002, 5003}; !slicesEqual(got, want) {
		t.Fatalf("ephemeral ports %v, want %v", got, want)
	}
	err := tab.Bind(tab.Open(), ap(any4, 0))
	if !errors.Is(err, udp.ErrAddrInUse) {
		t.Fatalf("Bind with the range exhausted = %v, want ErrAddrInUse", err)
	}
	// Autobinding fails the same way, and leaves the socket unbound.
	id := tab.Open()
	if _, err := sendTo(tab, id, nil, ap(peer, 7)); !errors.Is(err, udp.ErrAddrInUse) {
		t.Fatalf("SendTo with the range exhausted = %v, want ErrAddrInUse", err)
	}
	if err := tab.Connect(id, ap(peer, 7)); !errors.Is(err, udp.ErrAddrInUse) {
		t.Fatalf("Connect with the range exhausted = %v, want ErrAddrInUse", err)
	}
	if _, err := tab.RemoteAddr(id); !errors.Is(err, udp.ErrNotConnected) {
		t.Fatalf("failed Connect left a peer: %v", err)
	}
	// Nor is there one on a specific address: 0.0.0.0 overlaps it.
	if err := tab.Bind(tab.Open(), ap(host, 0)); !errors.Is(err, udp.ErrAddrInUse) {
		t.Fatalf("Bind(10.0.0.1:0) = %v, want ErrAddrInUse (all held on 0.0.0.0)", err)
	}
	// Freed ports come back, in counter order.
	if err := tab.Close(ids[1]); err != nil {
		t.Fatal(err)
	}
	a := open(t, tab, ap(host, 0))
	if got, _ := tab.LocalAddr(a); got != ap(host, 5002) {
		t.Fatalf("after Close: bound to %v, want 10.0.0.1:5002", got)
	}
}

// TestEphemeralDeterministic checks that the same calls give the same
// ports, and that the counter moves on rather than reusing a freed port at
// once.
func TestEphemeralDeterministic(t *testing.T) {
	run := func() []uint16 {
		tab := udp.New(config)
		var ports []uint16
		for i := range 20 {
			id := tab.Open()
			if _, err := sendTo(tab, id, []byte("x"), ap(peer, 9)); err != nil {
				t.Fatal(err)
			}
			a, _ := tab.LocalAddr(id)
			ports = append(ports, a.Port())
			if i%3 == 0 {
				tab.Close(id)
			}
		}
		return ports
	}
	a, b := run(), run()
	if !slicesEqual(a, b) {
		t.Fatalf("two runs chose %v and %v", a, b)
	}
	for i, p := range a {
		if p != uint16(49152+i) {
			t.Fatalf("port %d is %d, want %d", i, p, 49152+i)
		}
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestConnect(t *testing.T) {
	tab := udp.New(config)
	c := tab.Open()
	if err := tab.Connect(c, ap(peer, 53)); err != nil {
		t.Fatal(err)
	}
	local, err := tab.LocalAddr(c)
	if err != nil || local != ap(host, 49152) {
		t.Fatalf("LocalAddr after Connect = %v, %v; want 10.0.0.1:49152", local, err)
	}
	if r, err := tab.RemoteAddr(c); err != nil || r != ap(peer, 53) {
		t.Fatalf("RemoteAddr = %v, %v", r, err)
	}
	// A wildcard socket on the same port catches what the connected one
	// does not accept.
	w := tab.Open()
	tab.SetReuseAddr(c, true)
	tab.SetReuseAddr(w, true)
	if err := tab.Bind(w, ap(any4, 49152)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		from netip.AddrPort
		to   netip.AddrPort
		want udp.SockID
	}{
		{"from the peer", ap(peer, 53), ap(host, 49152), c},
		{"other host", ap(other, 53), ap(host, 49152), w},
		{"other port", ap(peer, 54), ap(host, 49152), w},
		{"other local address", ap(peer, 53), ap(host2, 49152), w},
	}
	for _, tt := range tests {
		got, err := deliver(tab, tt.from, tt.to, []byte(tt.name))
		if err != nil || got != tt.want {
			t.Errorf("%s: Input went to %d (%v), want %d", tt.name, got, err, tt.want)
		}
	}
	// Without the wildcard socket, the rest find no socket.
	tab.Close(w)
	for _, tt := range tests[1:] {
		if _, err := deliver(tab, tt.from, tt.to, nil); !errors.Is(err, udp.ErrNoSocket) {
			t.Errorf("%s without a wildcard socket: %v, want ErrNoSocket", tt.name, err)
		}
	}
	// Send needs no address once connected, and may still name one.
	d, err := sendTo(tab, c, []byte("q"), netip.AddrPort{})
	if err != nil || d.Src != host || d.Dst != peer || binary.BigEndian.Uint16(d.Segment[2:]) != 53 {
		t.Fatalf("SendTo connected = %+v, %v", d, err)
	}
	if d, err = sendTo(tab, c, []byte("q"), ap(other, 7)); err != nil || d.Dst != other {
		t.Fatalf("SendTo elsewhere = %+v, %v", d, err)
	}
	// Dissolving the association accepts everybody again.
	if err := tab.Connect(c, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tab.RemoteAddr(c); !errors.Is(err, udp.ErrNotConnected) {
		t.Fatalf("RemoteAddr after disconnect: %v", err)
	}
	if got, err := deliver(tab, ap(other, 1), ap(host2, 49152), nil); err != nil || got != c {
		t.Fatalf("after disconnect: Input went to %d, %v", got, err)
	}
	if _, err := sendTo(tab, c, nil, netip.AddrPort{}); !errors.Is(err, udp.ErrDestRequired) {
		t.Fatalf("SendTo without address after disconnect: %v", err)
	}
}

func TestConnectSource(t *testing.T) {
	tests := []struct {
		name   string
		addrs  []netip.Addr
		bind   string
		remote string
		want   string // local address after Connect, or "" for an error
		err    error
	}{
		{"remote", config.Addrs, "", "10.0.0.2:53", "10.0.0.1:49152", nil},
		{"loopback", config.Addrs, "", "127.0.0.8:53", "127.0.0.1:49152", nil},
		{"own address", config.Addrs, "", "10.0.0.9:53", "10.0.0.9:49152", nil},
		{"bound address", config.Addrs, "10.0.0.9:7", "10.0.0.2:53", "10.0.0.9:7", nil},
		{"no address", nil, "", "10.0.0.2:53", "", udp.ErrAddrNotAvail},
		{"no address, loopback", nil, "", "127.0.0.1:53", "127.0.0.1:49152", nil},
		{"unspecified", config.Addrs, "", "0.0.0.0:53", "", udp.ErrInvalid},
		{"port 0", config.Addrs, "", "10.0.0.2:0", "", udp.ErrInvalid},
		{"ipv6", config.Addrs, "", "[2001:db8::1]:53", "", udp.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := udp.New(udp.Config{Addrs: tt.addrs})
			id := tab.Open()
			if tt.bind != "" {
				if err := tab.Bind(id, netip.MustParseAddrPort(tt.bind)); err != nil {
					t.Fatal(err)
				}
			}
			err := tab.Connect(id, netip.MustParseAddrPort(tt.remote))
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("Connect = %v, want %v", err, tt.err)
			}
			if tt.err != nil {
				if _, err := tab.RemoteAddr(id); !errors.Is(err, udp.ErrNotConnected) {
					t.Errorf("failed Connect left a peer (%v)", err)
				}
				return
			}
			if got, err := tab.LocalAddr(id); err != nil || got.String() != tt.want {
				t.Errorf("LocalAddr = %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// TestChecksumVector checks Checksum against a segment summed by hand:
// 192.168.0.31:20 to 192.168.0.30:10, payload "Hi".
//
//	pseudo-header  c0a8 001f  c0a8 001e  0011  000a
//	header         0014 000a  000a 0000
//	payload        4869
//	sum  = c0a8+001f+c0a8+001e+0011+000a+0014+000a+000a+4869 = 1ca39
//	fold = ca39 + 1 = ca3a; checksum = ^ca3a = 35c5
func TestChecksumVector(t *testing.T) {
	src, dst := netip.MustParseAddr("192.168.0.31"), netip.MustParseAddr("192.168.0.30")
	seg := []byte{0x00, 0x14, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x00, 'H', 'i'}
	if got := udp.Checksum(src, dst, seg); got != 0x35c5 {
		t.Fatalf("Checksum = %#04x, want 0x35c5", got)
	}
	// SendTo writes it, and the filled-in segment verifies to 0.
	tab := udp.New(udp.Config{Addrs: []netip.Addr{src}})
	id := open(t, tab, ap(src, 20))
	d, err := sendTo(tab, id, []byte("Hi"), ap(dst, 10))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x00, 0x14, 0x00, 0x0a, 0x00, 0x0a, 0x35, 0xc5, 'H', 'i'}
	if !bytes.Equal(d.Segment, want) || d.Src != src || d.Dst != dst {
		t.Fatalf("SendTo = %v %v % x, want % x", d.Src, d.Dst, d.Segment, want)
	}
	if got := udp.Checksum(src, dst, d.Segment); got != 0 {
		t.Fatalf("Checksum over a filled-in segment = %#04x, want 0", got)
	}
	checker.Segment(t, proto.UDP, d.Src, d.Dst, d.Segment,
		checker.UDP(checker.SrcPort(20), checker.DstPort(10), checker.Payload([]byte("Hi"))))
	// The IPv4-mapped form of the addresses sums the same.
	if got := udp.Checksum(netip.AddrFrom16(src.As16()), netip.AddrFrom16(dst.As16()), seg); got != 0x35c5 {
		t.Fatalf("Checksum with IPv4-mapped addresses = %#04x", got)
	}
	// TCP's pseudo-header differs only in the protocol: 0x11 - 6 more.
	if got := checksum.Pseudo(proto.TCP, src, dst, seg); got != 0x35c5+0x11-6 {
		t.Fatalf("Pseudo(TCP) = %#04x, want %#04x", got, 0x35c5+0x11-6)
	}
}

// TestChecksumZero checks that a computed checksum of 0 is sent as 0xffff,
// and that such a segment is accepted.
func TestChecksumZero(t *testing.T) {
	tab := udp.New(config)
	s := open(t, tab, ap(host, 1000))
	r := open(t, tab, ap(host, 2000))
	// Make the payload's last word cancel the rest of the sum.
	payload := make([]byte, 6)
	copy(payload, "zero")
	seg := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(seg[0:], 1000)
	binary.BigEndian.PutUint16(seg[2:], 2000)
	binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	copy(seg[8:], payload)
	binary.BigEndian.PutUint16(payload[4:], udp.Checksum(host, host, seg))
	d, err := sendTo(tab, s, payload, ap(host, 2000))
	if err != nil {
		t.Fatal(err)
	}
	if cs := binary.BigEndian.Uint16(d.Segment[6:]); cs != 0xffff {
		t.Fatalf("checksum field %#04x, want 0xffff", cs)
	}
	checker.Segment(t, proto.UDP, d.Src, d.Dst, d.Segment, checker.UDP(checker.DstPort(2000), checker.Payload(payload)))
	if id, err := input(tab, d.Src, d.Dst, d.Segment); err != nil || id != r {
		t.Fatalf("Input = %d, %v", id, err)
	}
}

func TestRoundTrip(t *testing.T) {
	tab := udp.New(config)
	a := open(t, tab, ap(lo, 0))
	b := open(t, tab, ap(any4, 9000))
	for _, size := range []int{0, 1, 64, 1400, udp.MaxPayload} {
		payload := bytes.Repeat([]byte{byte(size)}, size)
		d, err := sendTo(tab, a, payload, ap(lo, 9000))
		if err != nil {
			t.Fatalf("SendTo %d bytes: %v", size, err)
		}
		if d.Src != lo || d.Dst != lo || len(d.Segment) != 8+size {
			t.Fatalf("SendTo %d bytes = %v -> %v, %d bytes", size, d.Src, d.Dst, len(d.Segment))
		}
		id, err := input(tab, d.Src, d.Dst, d.Segment)
		if err != nil || id != b {
			t.Fatalf("Input = %d, %v; want %d", id, err, b)
		}
		if !tab.Readable(b) {
			t.Fatal("not readable after Input")
		}
		if n, ok := tab.NextLen(b); !ok || n != size {
			t.Fatalf("NextLen = %d, %v; want %d", n, ok, size)
		}
		got, from := recv(t, tab, b)
		if !bytes.Equal(got, payload) || from != ap(lo, 49152) {
			t.Fatalf("RecvFrom = %d bytes from %v", len(got), from)
		}
		// And back.
		d, err = sendTo(tab, b, got, from)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := input(tab, d.Src, d.Dst, d.Segment); err != nil || id != a {
			t.Fatalf("reply: Input = %d, %v; want %d", id, err, a)
		}
		if got2, from2 := recv(t, tab, a); !bytes.Equal(got2, payload) || from2 != ap(lo, 9000) {
			t.Fatalf("reply: %d bytes from %v", len(got2), from2)
		}
	}
	if _, _, _, err := tab.RecvFrom(b, make([]byte, 10)); !errors.Is(err, udp.ErrWouldBlock) {
		t.Fatalf("RecvFrom on an empty queue: %v", err)
	}
	if tab.Readable(b) {
		t.Fatal("readable with an empty queue")
	}
}

func TestSendToErrors(t *testing.T) {
	tab := udp.New(config)
	id := tab.Open()
	tests := []struct {
		name string
		id   udp.SockID
		n    int
		to   string
		want error
	}{
		{"largest", id, udp.MaxPayload, "10.0.0.2:7", nil},
		{"too long", id, udp.MaxPayload + 1, "10.0.0.2:7", udp.ErrMsgSize},
		{"no destination", id, 1, "", udp.ErrDestRequired},
		{"port 0", id, 1, "10.0.0.2:0", udp.ErrInvalid},
		{"unspecified", id, 1, "0.0.0.0:7", udp.ErrInvalid},
		{"ipv6", id, 1, "[::1]:7", udp.ErrInvalid},
		{"bad socket", 42, 1, "10.0.0.2:7", udp.ErrBadSocket},
		{"zero socket", 0, 1, "10.0.0.2:7", udp.ErrBadSocket},
	}
	for _, tt := range tests {
		var to netip.AddrPort
		if tt.to != "" {
			to = netip.MustParseAddrPort(tt.to)
		}
		_, err := sendTo(tab, tt.id, make([]byte, tt.n), to)
		if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("%s: SendTo = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestTruncation(t *testing.T) {
	tab := udp.New(config)
	r := open(t, tab, ap(host, 7))
	from := ap(peer, 1234)
	payload := []byte("0123456789abcdefghij")
	tests := []struct {
		buf       int
		wantN     int
		truncated bool
	}{
		{0, 0, true},
		{5, 5, true},
		{19, 19, true},
		{20, 20, false},
		{100, 20, false},
	}
	for _, tt := range tests {
		if _, err := deliver(tab, from, ap(host, 7), payload); err != nil {
			t.Fatal(err)
		}
		if _, err := deliver(tab, from, ap(host, 7), []byte("next")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, tt.buf)
		n, f, trunc, err := tab.RecvFrom(r, buf)
		if err != nil || n != tt.wantN || trunc != tt.truncated || f != from || !bytes.Equal(buf[:n], payload[:n]) {
			t.Errorf("RecvFrom(%d-byte buffer) = %d %q, %v, truncated %v, %v; want %d, truncated %v",
				tt.buf, n, buf[:n], f, trunc, err, tt.wantN, tt.truncated)
		}
		// The rest was discarded: the next datagram comes next.
		if got, _ := recv(t, tab, r); string(got) != "next" {
			t.Errorf("after a %d-byte read the next datagram is %q", tt.buf, got)
		}
	}
	// An empty datagram is not truncated, whatever the buffer.
	deliver(tab, from, ap(host, 7), nil)
	if n, _, trunc, err := tab.RecvFrom(r, nil); n != 0 || trunc || err != nil {
		t.Errorf("empty datagram: %d, truncated %v, %v", n, trunc, err)
	}
}

func TestQueueBounds(t *testing.T) {
	tests := []struct {
		name     string
		cfg      udp.Config
		size     int
		accepted int // of 10 sent
	}{
		{"datagrams", udp.Config{Addrs: config.Addrs, RecvQueue: 3}, 10, 3},
		{"bytes", udp.Config{Addrs: config.Addrs, RecvBytes: 100}, 40, 2},
		{"bytes exact", udp.Config{Addrs: config.Addrs, RecvBytes: 120}, 40, 3},
		{"empty datagrams", udp.Config{Addrs: config.Addrs, RecvQueue: 4, RecvBytes: 1}, 0, 4},
		{"larger than the queue", udp.Config{Addrs: config.Addrs, RecvBytes: 100}, 101, 0},
		{"defaults", udp.Config{Addrs: config.Addrs}, 1000, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := udp.New(tt.cfg)
			r := open(t, tab, ap(host, 7))
			for i := range 10 {
				id, err := deliver(tab, ap(peer, 1), ap(host, 7), bytes.Repeat([]byte{byte(i)}, tt.size))
				if id != r {
					t.Fatalf("datagram %d went to %d, want %d", i, id, r)
				}
				if accept := i < tt.accepted; accept != (err == nil) {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if err != nil && !errors.Is(err, udp.ErrWouldBlock) {
					t.Fatalf("datagram %d: %v, want ErrWouldBlock", i, err)
				}
				var de *udp.DropError
				if err != nil && (!errors.As(err, &de) || de.Reason != "queue-full") {
					t.Fatalf("datagram %d: %#v, want a queue-full DropError", i, err)
				}
			}
			if n, b := tab.Queued(r); n != tt.accepted || b != tt.accepted*tt.size {
				t.Fatalf("Queued = %d, %d; want %d, %d", n, b, tt.accepted, tt.accepted*tt.size)
			}
			if got := tab.Drops()["queue-full"]; got != uint64(10-tt.accepted) {
				t.Fatalf("queue-full drops %d, want %d", got, 10-tt.accepted)
			}
			// Reading makes room again, in order.
			if tt.accepted > 0 {
				got, _ := recv(t, tab, r)
				if len(got) > 0 && got[0] != 0 {
					t.Fatalf("first datagram read is number %d", got[0])
				}
				if _, err := deliver(tab, ap(peer, 1), ap(host, 7), make([]byte, tt.size)); err != nil {
					t.Fatalf("after a read: %v", err)
				}
			}
		})
	}
}

func TestInputMalformed(t *testing.T) {
	src, dst := ap(peer, 1000), ap(host, 7)
	good := segment(src, dst, []byte("payload"))
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name   string
		src    netip.Addr
		dst    netip.Addr
		seg    []byte
		want   error
		reason string // "" for accepted
		recv   string
	}{
		{"good", peer, host, good, nil, "", "payload"},
		{"empty", peer, host, nil, udp.ErrMalformed, "short", ""},
		{"short", peer, host, good[:7], udp.ErrMalformed, "short", ""},
		{"length below header", peer, host, with(func(b []byte) []byte { b[4], b[5] = 0, 7; return b }), udp.ErrMalformed, "bad-length", ""},
		{"length zero", peer, host, with(func(b []byte) []byte { b[4], b[5] = 0, 0; return b }), udp.ErrMalformed, "bad-length", ""},
		{"length past segment", peer, host, good[:len(good)-1], udp.ErrMalformed, "bad-length", ""},
		{"longer than IPv4", peer, host, append(bytes.Clone(good), make([]byte, 65535)...), udp.ErrMalformed, "bad-length", ""},
		{"trailing bytes ignored", peer, host, append(bytes.Clone(good), 0xde, 0xad), nil, "", "payload"},
		{"bad checksum", peer, host, with(func(b []byte) []byte { b[6] ^= 1; return b }), udp.ErrMalformed, "bad-checksum", ""},
		{"corrupt payload", peer, host, with(func(b []byte) []byte { b[9] ^= 0x80; return b }), udp.ErrMalformed, "bad-checksum", ""},
		{"wrong pseudo-header", other, host, good, udp.ErrMalformed, "bad-checksum", ""},
		{"no checksum", other, host, with(func(b []byte) []byte { b[6], b[7] = 0, 0; return b }), nil, "", "payload"},
		{"ipv6 source", netip.IPv6Loopback(), host, good, udp.ErrInvalid, "bad-address", ""},
		{"invalid destination", peer, netip.Addr{}, good, udp.ErrInvalid, "bad-address", ""},
		{"ipv4-mapped", netip.AddrFrom16(peer.As16()), netip.AddrFrom16(host.As16()), good, nil, "", "payload"},
		{"no socket", peer, host, segment(src, ap(host, 8), nil), udp.ErrNoSocket, "no-socket", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := udp.New(config)
			r := open(t, tab, dst)
			before := tab.Drops()
			id, err := input(tab, tt.src, tt.dst, tt.seg)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Input = %d, %v; want %v", id, err, tt.want)
			}
			after := tab.Drops()
			for k, n := range after {
				want := before[k]
				if k == tt.reason {
					want++
				}
				if n != want {
					t.Errorf("drops[%q] = %d, want %d", k, n, want)
				}
			}
			if tt.reason == "" {
				if got, from := recv(t, tab, r); string(got) != tt.recv || from != netip.AddrPortFrom(tt.src.Unmap(), 1000) {
					t.Errorf("received %q from %v", got, from)
				}
				return
			}
			var de *udp.DropError
			if !errors.As(err, &de) || de.Reason != tt.reason || !strings.Contains(err.Error(), "("+tt.reason+")") {
				t.Errorf("error %v is not a %q DropError", err, tt.reason)
			}
			if id != 0 || tab.Readable(r) {
				t.Errorf("dropped segment went to %d (readable %v)", id, tab.Readable(r))
			}
		})
	}
}

func TestDropsKeys(t *testing.T) {
	got := udp.New(config).Drops()
	for _, k := range []string{"short", "bad-length", "bad-checksum", "bad-address", "queue-full", "no-socket"} {
		if n, ok := got[k]; !ok || n != 0 {
			t.Errorf("Drops()[%q] = %d, %v", k, n, ok)
		}
	}
	if len(got) != 6 {
		t.Errorf("Drops has %d keys: %v", len(got), got)
	}
}

func TestLookupOrder(t *testing.T) {
	tab := udp.New(config)
	ids := map[string]udp.SockID{}
	for _, name := range []string{"any", "host", "any2", "conn"} {
		id := tab.Open()
		tab.SetReuseAddr(id, true)
		ids[name] = id
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tab.Bind(ids["any"], ap(any4, 53)))
	must(tab.Bind(ids["host"], ap(host, 53)))
	must(tab.Bind(ids["any2"], ap(any4, 53)))
	must(tab.Bind(ids["conn"], ap(host, 53)))
	must(tab.Connect(ids["conn"], ap(peer, 5353)))
	tests := []struct {
		from netip.AddrPort
		to   netip.Addr
		want string
	}{
		{ap(peer, 5353), host, "conn"},
		{ap(peer, 5354), host, "host"},
		{ap(other, 5353), host2, "any2"}, // the wildcard bound last
		{ap(peer, 5353), lo, "any2"},
	}
	for _, tt := range tests {
		got, err := deliver(tab, tt.from, ap(tt.to, 53), nil)
		if err != nil || got != ids[tt.want] {
			t.Errorf("%v -> %v:53 went to %d (%v), want %s (%d)", tt.from, tt.to, got, err, tt.want, ids[tt.want])
		}
	}
	tab.Close(ids["any2"])
	if got, _ := deliver(tab, ap(other, 1), ap(host2, 53), nil); got != ids["any"] {
		t.Errorf("after closing any2: went to %d, want any (%d)", got, ids["any"])
	}
}

func TestClose(t *testing.T) {
	tab := udp.New(config)
	a := open(t, tab, ap(host, 53))
	b := tab.Open()
	if n := tab.Sockets(); n != 2 {
		t.Fatalf("Sockets = %d", n)
	}
	deliver(tab, ap(peer, 1), ap(host, 53), []byte("x"))
	if err := tab.Close(a); err != nil {
		t.Fatal(err)
	}
	if err := tab.Close(a); !errors.Is(err, udp.ErrBadSocket) {
		t.Fatalf("second Close = %v", err)
	}
	if n := tab.Sockets(); n != 1 {
		t.Fatalf("Sockets = %d after Close", n)
	}
	if err := tab.Bind(b, ap(host, 53)); err != nil {
		t.Fatalf("port not freed: %v", err)
	}
	for name, err := range map[string]error{
		"Bind":         tab.Bind(a, ap(host, 54)),
		"Connect":      tab.Connect(a, ap(peer, 1)),
		"SetReuseAddr": tab.SetReuseAddr(a, true),
		"RecvFrom":     func() error { _, _, _, err := tab.RecvFrom(a, nil); return err }(),
		"SendTo":       func() error { _, err := sendTo(tab, a, nil, ap(peer, 1)); return err }(),
		"LocalAddr":    func() error { _, err := tab.LocalAddr(a); return err }(),
		"RemoteAddr":   func() error { _, err := tab.RemoteAddr(a); return err }(),
	} {
		if !errors.Is(err, udp.ErrBadSocket) {
			t.Errorf("%s on a closed socket: %v", name, err)
		}
	}
	if tab.Readable(a) {
		t.Error("closed socket readable")
	}
	if n, b := tab.Queued(a); n != 0 || b != 0 {
		t.Errorf("closed socket has %d, %d queued", n, b)
	}
	if _, ok := tab.NextLen(a); ok {
		t.Error("closed socket has a next length")
	}
	if _, err := tab.LocalAddr(tab.Open()); !errors.Is(err, udp.ErrNotBound) {
		t.Errorf("LocalAddr of an unbound socket: %v", err)
	}
}

func TestOpenIDs(t *testing.T) {
	tab := udp.New(config)
	for i := 1; i <= 5; i++ {
		if id := tab.Open(); id != udp.SockID(i) {
			t.Fatalf("Open %d = %d", i, id)
		}
	}
	tab.Close(2)
	if id := tab.Open(); id != 6 {
		t.Fatalf("Open after Close = %d, want 6 (IDs are not reused at once)", id)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  udp.Config
		ok   bool
	}{
		{"zero", udp.Config{}, true},
		{"full", udp.Config{Addrs: []netip.Addr{host}, EphemeralLo: 1024, EphemeralHi: 2047, RecvQueue: 1, RecvBytes: 1}, true},
		{"only low end", udp.Config{EphemeralLo: 60000}, true},
		{"inverted", udp.Config{EphemeralLo: 2000, EphemeralHi: 1000}, false},
		{"ipv6", udp.Config{Addrs: []netip.Addr{netip.IPv6Loopback()}}, false},
		{"unspecified", udp.Config{Addrs: []netip.Addr{any4}}, false},
		{"invalid address", udp.Config{Addrs: []netip.Addr{{}}}, false},
		{"negative queue", udp.Config{RecvQueue: -1}, false},
		{"negative bytes", udp.Config{RecvBytes: -1}, false},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err == nil) != tt.ok || (err != nil && !errors.Is(err, udp.ErrInvalid)) {
			t.Errorf("%s: Validate = %v, want ok %v", tt.name, err, tt.ok)
		}
		// New repairs what Validate refuses.
		tab := udp.New(tt.cfg)
		if _, err := sendTo(tab, tab.Open(), []byte("x"), ap(lo, 9)); err != nil {
			t.Errorf("%s: SendTo on a repaired table: %v", tt.name, err)
		}
	}
	// An inverted range is swapped.
	tab := udp.New(udp.Config{EphemeralLo: 2000, EphemeralHi: 1000})
	id := open(t, tab, ap(any4, 0))
	if a, _ := tab.LocalAddr(id); a.Port() != 1000 {
		t.Errorf("inverted range: first port %d, want 1000", a.Port())
	}
}

// TestPortUnreachable: an ICMP port unreachable reaches only the connected
// socket that sent to that port, as one ErrConnRefused on its next receive.
func TestPortUnreachable(t *testing.T) {
	tb := udp.New(udp.Config{Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.2")}})
	remote := netip.MustParseAddrPort("198.18.0.1:9")
	conn, other := tb.Open(), tb.Open()
	if err := tb.Connect(conn, remote); err != nil {
		t.Fatal(err)
	}
	if err := tb.Bind(other, netip.MustParseAddrPort("0.0.0.0:5000")); err != nil {
		t.Fatal(err)
	}
	local, err := tb.LocalAddr(conn)
	if err != nil {
		t.Fatal(err)
	}
	ok := tb.ICMPError(netip.AddrPortFrom(netip.MustParseAddr("198.18.0.2"), local.Port()), remote, 3, 3)
	var id udp.SockID
	if w := tb.Wakeups(); len(w) == 1 {
		id = w[0]
	}
	if !ok || id != conn {
		t.Fatalf("ICMPError = %v, %v; want the connected socket %v", id, ok, conn)
	}
	buf := make([]byte, 8)
	if _, _, _, err := tb.RecvFrom(conn, buf); !errors.Is(err, udp.ErrConnRefused) {
		t.Fatalf("first receive: %v, want ErrConnRefused", err)
	}
	if _, _, _, err := tb.RecvFrom(conn, buf); !errors.Is(err, udp.ErrWouldBlock) {
		t.Fatalf("second receive: %v, want ErrWouldBlock: the error is reported once", err)
	}
	if ok := tb.ICMPError(netip.MustParseAddrPort("198.18.0.2:5000"), remote, 3, 3); ok {
		t.Fatal("an unconnected socket heard of an ICMP error")
	}
}

// TestICMPErrors: each ICMP error a connected socket's datagram draws
// gives its next receive the error Linux gives (icmp_err_convert, hard
// errors only, no IP_RECVERR), once; a soft one (network or host
// unreachable, source route failed, TOS unreachable, time exceeded) and an
// unknown code are not reported.
func TestICMPErrors(t *testing.T) {
	tests := []struct {
		name      string
		typ, code uint8
		want      error // nil: not reported
	}{
		{"net unreachable", 3, 0, nil},
		{"host unreachable", 3, 1, nil},
		{"protocol unreachable", 3, 2, udp.ErrProtoUnreach},
		{"port unreachable", 3, 3, udp.ErrConnRefused},
		{"fragmentation needed", 3, 4, udp.ErrMsgSize},
		{"source route failed", 3, 5, nil},
		{"network unknown", 3, 6, udp.ErrNetUnreach},
		{"host unknown", 3, 7, udp.ErrHostDown},
		{"host isolated", 3, 8, udp.ErrNoNet},
		{"network prohibited", 3, 9, udp.ErrNetUnreach},
		{"host prohibited", 3, 10, udp.ErrHostUnreach},
		{"net unreachable for TOS", 3, 11, nil},
		{"host unreachable for TOS", 3, 12, nil},
		{"administratively prohibited", 3, 13, udp.ErrHostUnreach},
		{"precedence violation", 3, 14, udp.ErrHostUnreach},
		{"precedence cutoff", 3, 15, udp.ErrHostUnreach},
		{"unknown code", 3, 16, nil},
		{"time exceeded", 11, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := udp.New(config)
			remote := ap(peer, 53)
			id := tab.Open()
			if err := tab.Connect(id, remote); err != nil {
				t.Fatal(err)
			}
			local, err := tab.LocalAddr(id)
			if err != nil {
				t.Fatal(err)
			}
			tab.Wakeups()
			ok := tab.ICMPError(local, remote, tt.typ, tt.code)
			if ok != (tt.want != nil) {
				t.Fatalf("ICMPError = %v, want %v", ok, tt.want != nil)
			}
			if w := tab.Wakeups(); ok != (len(w) == 1) {
				t.Errorf("woke %v", w)
			}
			buf := make([]byte, 8)
			_, _, _, err = tab.RecvFrom(id, buf)
			want := tt.want
			if want == nil {
				want = udp.ErrWouldBlock
			}
			if !errors.Is(err, want) {
				t.Fatalf("receive: %v, want %v", err, want)
			}
			if _, _, _, err := tab.RecvFrom(id, buf); !errors.Is(err, udp.ErrWouldBlock) {
				t.Errorf("second receive: %v, want ErrWouldBlock: reported once", err)
			}
		})
	}
}

package pf_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/newtsim/newtsim/servers/pf"
	"github.com/newtsim/newtsim/servers/proto"
)

func TestDecode(t *testing.T) {
	const a, b = "198.18.0.1", "198.18.0.2"
	set := func(p []byte, f func([]byte)) []byte { f(p); return p }
	tests := []struct {
		name string
		dir  pf.Direction
		in   []byte
		want pf.Packet
		err  string // a part of the error; "" when it decodes
	}{
		{
			name: "tcp",
			dir:  pf.In,
			in:   ipv4(proto.TCP, a, b, tcp(40000, 23, 0, []byte("login"))),
			want: pkt(pf.In, proto.TCP, a, 40000, b, 23),
		},
		{
			name: "tcp with options",
			dir:  pf.Out,
			in:   ipv4(proto.TCP, a, b, tcp(1, 65535, 10, nil)),
			want: pkt(pf.Out, proto.TCP, a, 1, b, 65535),
		},
		{
			name: "udp",
			dir:  pf.Out,
			in:   ipv4(proto.UDP, a, b, udp(5353, 53, []byte("query"))),
			want: pkt(pf.Out, proto.UDP, a, 5353, b, 53),
		},
		{
			name: "udp header only",
			dir:  pf.In,
			in:   ipv4(proto.UDP, a, b, udp(7, 9, nil)),
			want: pkt(pf.In, proto.UDP, a, 7, b, 9),
		},
		{
			name: "icmp has no ports",
			dir:  pf.In,
			in:   ipv4(proto.ICMP, a, b, icmpEcho()),
			want: pkt(pf.In, proto.ICMP, a, 0, b, 0),
		},
		{
			name: "other protocol with empty payload",
			dir:  pf.In,
			in:   ipv4(47, a, b, nil),
			want: pkt(pf.In, 47, a, 0, b, 0),
		},
		{
			name: "header options skipped",
			dir:  pf.In,
			in:   withOptions(ipv4(proto.UDP, a, b, udp(1000, 2000, nil)), 10),
			want: pkt(pf.In, proto.UDP, a, 1000, b, 2000),
		},
		{
			name: "link padding ignored",
			dir:  pf.In,
			in:   append(ipv4(proto.UDP, a, b, udp(1000, 2000, nil)), make([]byte, 18)...),
			want: pkt(pf.In, proto.UDP, a, 1000, b, 2000),
		},
		{
			name: "first fragment has ports",
			dir:  pf.In,
			in:   fragment(ipv4(proto.TCP, a, b, tcp(1234, 80, 0, make([]byte, 8))), 0, true),
			want: pkt(pf.In, proto.TCP, a, 1234, b, 80),
		},
		{
			name: "later fragment has none",
			dir:  pf.In,
			in:   fragment(ipv4(proto.TCP, a, b, tcp(1234, 80, 0, nil)), 1, true),
			want: pkt(pf.In, proto.TCP, a, 0, b, 0),
		},
		{
			name: "last fragment has none, however short",
			dir:  pf.In,
			in:   fragment(ipv4(proto.UDP, a, b, []byte{1}), 185, false),
			want: pkt(pf.In, proto.UDP, a, 0, b, 0),
		},
		{
			name: "don't-fragment flag is no fragment",
			dir:  pf.Out,
			in: set(ipv4(proto.UDP, a, b, udp(1, 2, nil)), func(p []byte) {
				binary.BigEndian.PutUint16(p[6:], 0x4000)
			}),
			want: pkt(pf.Out, proto.UDP, a, 1, b, 2),
		},
		{
			name: "empty",
			in:   nil,
			err:  "0 bytes, shorter than the 20-byte IPv4 header",
		},
		{
			name: "short header",
			in:   ipv4(proto.UDP, a, b, nil)[:19],
			err:  "19 bytes, shorter than the 20-byte IPv4 header",
		},
		{
			name: "IPv6",
			in:   set(ipv4(proto.UDP, a, b, udp(1, 2, nil)), func(p []byte) { p[0] = 6<<4 | 5 }),
			err:  "IP version 6, not 4",
		},
		{
			name: "version 0",
			in:   make([]byte, 40),
			err:  "IP version 0, not 4",
		},
		{
			name: "header length below 20",
			in:   set(ipv4(proto.UDP, a, b, udp(1, 2, nil)), func(p []byte) { p[0] = 4<<4 | 4 }),
			err:  "header length 16 bytes, below 20",
		},
		{
			name: "header length past the end",
			in:   set(ipv4(proto.ICMP, a, b, nil), func(p []byte) { p[0] = 4<<4 | 6 }),
			err:  "header length 24 bytes, past the end of the 20-byte packet",
		},
		{
			name: "total length shorter than the header",
			in: set(ipv4(proto.UDP, a, b, udp(1, 2, nil)), func(p []byte) {
				binary.BigEndian.PutUint16(p[2:], 19)
			}),
			err: "total length 19, shorter than the 20-byte header",
		},
		{
			name: "total length shorter than the header with options",
			in: set(withOptions(ipv4(proto.UDP, a, b, udp(1, 2, nil)), 2), func(p []byte) {
				binary.BigEndian.PutUint16(p[2:], 24)
			}),
			err: "total length 24, shorter than the 28-byte header",
		},
		{
			name: "total length past the end",
			in: set(ipv4(proto.UDP, a, b, udp(1, 2, nil)), func(p []byte) {
				binary.BigEndian.PutUint16(p[2:], 29)
			}),
			err: "total length 29, past the end of the 28-byte packet",
		},
		{
			name: "tcp header cut short",
			in:   ipv4(proto.TCP, a, b, tcp(1, 2, 0, nil)[:19]),
			err:  "TCP header cut short: 19 bytes, below 20",
		},
		{
			name: "tcp cut short by the total length",
			// Total length 24: the 16 bytes after it are the link's padding.
			in:  append(ipv4(proto.TCP, a, b, tcp(1, 2, 0, nil)[:4]), make([]byte, 16)...),
			err: "TCP header cut short: 4 bytes, below 20",
		},
		{
			name: "tcp data offset below 5",
			in: set(ipv4(proto.TCP, a, b, tcp(1, 2, 0, nil)), func(p []byte) {
				p[proto.IPv4HeaderLen+12] = 4 << 4
			}),
			err: "TCP data offset 16 bytes, below 20",
		},
		{
			name: "tcp options cut short",
			in:   ipv4(proto.TCP, a, b, tcp(1, 2, 3, nil)[:28]),
			err:  "TCP header cut short: 28 bytes of its 32",
		},
		{
			name: "first fragment with tcp header cut short",
			in:   fragment(ipv4(proto.TCP, a, b, tcp(1, 2, 0, nil)[:8]), 0, true),
			err:  "TCP header cut short: 8 bytes, below 20",
		},
		{
			name: "udp header cut short",
			in:   ipv4(proto.UDP, a, b, udp(1, 2, nil)[:7]),
			err:  "UDP header cut short: 7 bytes, below 8",
		},
		{
			name: "udp header missing",
			in:   ipv4(proto.UDP, a, b, nil),
			err:  "UDP header cut short: 0 bytes, below 8",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := bytes.Clone(tt.in)
			got, err := pf.Decode(tt.dir, tt.in)
			if !bytes.Equal(tt.in, orig) {
				t.Fatal("Decode changed the packet")
			}
			if tt.err != "" {
				if err == nil {
					t.Fatalf("Decode = %+v, want an error containing %q", got, tt.err)
				}
				if !errors.Is(err, pf.ErrMalformed) {
					t.Errorf("error %q does not wrap ErrMalformed", err)
				}
				if !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %q does not contain %q", err, tt.err)
				}
				if got != (pf.Packet{}) {
					t.Errorf("Decode returned %+v with its error, want the zero Packet", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != tt.want {
				t.Errorf("Decode = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeFrame(t *testing.T) {
	udpPkt := ipv4(proto.UDP, "10.0.0.1", "10.0.0.2", udp(68, 67, nil))
	tests := []struct {
		name  string
		frame []byte
		want  pf.Packet
		isErr error // nil when it decodes
	}{
		{"ipv4", ether(0x0800, udpPkt), pkt(pf.In, proto.UDP, "10.0.0.1", 68, "10.0.0.2", 67), nil},
		{"arp", ether(0x0806, make([]byte, 28)), pf.Packet{}, pf.ErrNotIPv4},
		{"ipv6", ether(0x86dd, make([]byte, 40)), pf.Packet{}, pf.ErrNotIPv4},
		{"short frame", ether(0x0800, nil)[:13], pf.Packet{}, pf.ErrMalformed},
		{"empty frame", nil, pf.Packet{}, pf.ErrMalformed},
		{"header only", ether(0x0800, nil), pf.Packet{}, pf.ErrMalformed},
		{"bad packet", ether(0x0800, udpPkt[:25]), pf.Packet{}, pf.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pf.DecodeFrame(pf.In, tt.frame)
			if !errors.Is(err, tt.isErr) || (err != nil) != (tt.isErr != nil) {
				t.Fatalf("DecodeFrame error = %v, want %v", err, tt.isErr)
			}
			if got != tt.want {
				t.Errorf("DecodeFrame = %+v, want %+v", got, tt.want)
			}
		})
	}
}

package udp_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/newtsim/newtsim/servers/udp"
)

// FuzzInput feeds Input arbitrary segments and addresses, as a hostile
// network would. Input must never panic; every call must be counted under
// exactly one reason or accepted; an accepted datagram must come back from
// RecvFrom whole, with the length its header gave and from the sender its
// header named. With fix set, the harness writes a correct length and
// checksum first, so that the fuzzer reaches delivery.
func FuzzInput(f *testing.F) {
	f.Add(uint32(0x0a000002), uint32(0x0a000001), segment(ap(peer, 1000), ap(host, 53), []byte("query")), false)
	f.Add(uint32(0x0a000002), uint32(0x0a000001), segment(ap(peer, 5353), ap(host, 7), []byte("from the peer")), false)
	f.Add(uint32(0x7f000001), uint32(0x7f000001), segment(ap(lo, 1), ap(lo, 9), nil), false)
	f.Add(uint32(0x0a000003), uint32(0x0a000009), []byte{0, 1, 0, 54, 0, 8, 0, 0}, false)
	f.Add(uint32(0), uint32(0), []byte{}, false)
	f.Add(uint32(1), uint32(2), []byte{0, 1, 0, 2, 0, 7, 0, 0}, false)
	f.Add(uint32(1), uint32(2), []byte{0, 1, 0, 53, 0xff, 0xff, 0, 0, 1}, false)
	f.Add(uint32(0x0a000002), uint32(0x0a000001), []byte{0, 1, 0, 53, 0, 0, 0, 0, 'a', 'b', 'c'}, true)

	f.Fuzz(func(t *testing.T, src, dst uint32, seg []byte, fix bool) {
		tab := udp.New(udp.Config{Addrs: []netip.Addr{host, host2}, RecvQueue: 4, RecvBytes: 4096})
		open(t, tab, ap(any4, 53))
		open(t, tab, ap(host, 54))
		open(t, tab, ap(host2, 54))
		c := open(t, tab, ap(host, 7))
		if err := tab.Connect(c, ap(peer, 5353)); err != nil {
			t.Fatal(err)
		}
		var sb, db [4]byte
		binary.BigEndian.PutUint32(sb[:], src)
		binary.BigEndian.PutUint32(db[:], dst)
		s, d := netip.AddrFrom4(sb), netip.AddrFrom4(db)
		seg = bytes.Clone(seg)
		if fix && len(seg) >= udp.HeaderLen && len(seg) <= 0xffff {
			binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
			binary.BigEndian.PutUint16(seg[6:], 0)
			binary.BigEndian.PutUint16(seg[6:], udp.Checksum(s, d, seg))
		}
		orig := bytes.Clone(seg)
		for range 6 { // past the queue's bounds
			before := tab.Drops()
			id, err := input(tab, s, d, seg)
			if !bytes.Equal(seg, orig) {
				t.Fatal("Input changed the segment")
			}
			after := tab.Drops()
			changed := 0
			for k := range after {
				if after[k] != before[k] {
					changed++
				}
			}
			if err != nil {
				var de *udp.DropError
				if changed != 1 || !errors.As(err, &de) || after[de.Reason] != before[de.Reason]+1 {
					t.Fatalf("refused (%v) but %d counters changed", err, changed)
				}
				if (id != 0) != (de.Reason == "queue-full") {
					t.Fatalf("refused (%v) with socket %d", err, id)
				}
				continue
			}
			if changed != 0 {
				t.Fatalf("accepted but %d counters changed", changed)
			}
			length := int(binary.BigEndian.Uint16(seg[4:]))
			if length < udp.HeaderLen || length > len(seg) {
				t.Fatalf("accepted a length field of %d in %d bytes", length, len(seg))
			}
			if cs := binary.BigEndian.Uint16(seg[6:]); cs != 0 && udp.Checksum(s, d, seg[:length]) != 0 {
				t.Fatal("accepted a bad checksum")
			}
			if n, b := tab.Queued(id); n < 1 || b < length-udp.HeaderLen {
				t.Fatalf("socket %d has %d datagrams, %d bytes queued", id, n, b)
			}
			buf := make([]byte, udp.MaxPayload)
			for {
				n, from, trunc, err := tab.RecvFrom(id, buf)
				if errors.Is(err, udp.ErrWouldBlock) {
					break
				}
				if err != nil || trunc || n != length-udp.HeaderLen || !bytes.Equal(buf[:n], seg[udp.HeaderLen:length]) {
					t.Fatalf("RecvFrom = %d bytes, truncated %v, %v; want %d", n, trunc, err, length-udp.HeaderLen)
				}
				if from != netip.AddrPortFrom(s, binary.BigEndian.Uint16(seg)) {
					t.Fatalf("from %v", from)
				}
			}
			// Keep one queued, so later rounds reach the bound.
			input(tab, s, d, seg)
		}
	})
}

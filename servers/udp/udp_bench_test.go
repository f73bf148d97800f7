package udp_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/newtsim/newtsim/servers/udp"
)

// BenchmarkSendToInput measures one datagram through the table and back
// out: SendTo on one socket, Input of the segment, RecvFrom on the other.
func BenchmarkSendToInput(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			tab := udp.New(udp.Config{Addrs: []netip.Addr{host}})
			s := open(b, tab, ap(host, 1000))
			r := open(b, tab, ap(any4, 2000))
			payload := make([]byte, size)
			buf := make([]byte, 2048)
			to := ap(host, 2000)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				d, err := sendTo(tab, s, payload, to)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := input(tab, d.Src, d.Dst, d.Segment); err != nil {
					b.Fatal(err)
				}
				if _, _, _, err := tab.RecvFrom(r, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkChecksum measures the checksum of a segment.
func BenchmarkChecksum(b *testing.B) {
	for _, size := range []int{64, 1400, 65515} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			seg := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				udp.Checksum(host, peer, seg)
			}
		})
	}
}

package tcp

import (
	"fmt"
	"testing"
)

// BenchmarkAlternatingSegments is the out-of-order worst case: a peer
// sends k one-byte segments with a one-byte hole before each, so that every
// segment makes a range of its own. The receiver's ranges and the SACK
// blocks it sends cost work per segment; without a bound on the ranges
// that work grows with k and the whole burst with k squared.
func BenchmarkAlternatingSegments(b *testing.B) {
	for _, k := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprint(k), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				b.StopTimer()
				n := newNet(b, Config{}, Config{})
				l := n.listen(80, 8)
				_, s := n.dial(l, 80)
				x := n.b.socks[s]
				n.b.Out()
				b.StartTimer()
				for i := range k {
					n.fromPeer(n.b, x, Header{Seq: Seq(2*i + 1), Flags: ACK, Window: 1000}, []byte{'x'})
					n.b.Out()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*k), "ns/segment")
		})
	}
}

// BenchmarkSACKScoreboard is the sender's worst case: a peer SACKs every
// other byte of a large flight, three blocks an ACK, so that the sender's
// scoreboard grows by three ranges with each ACK.
func BenchmarkSACKScoreboard(b *testing.B) {
	for _, k := range []int{1000, 10000} {
		b.Run(fmt.Sprint(k), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				b.StopTimer()
				n := newNet(b, Config{}, Config{})
				l := n.listen(80, 8)
				c, _ := n.dial(l, 80)
				x := n.a.socks[c]
				n.a.SetOption(c, OptNoDelay, 1)
				n.a.Send(n.now, c, make([]byte, 6*k+2))
				n.a.Out()
				x.sndMax = x.sndUna.Add(6*k + 2) // as if all had been sent
				b.StartTimer()
				for i := range k {
					base := x.sndUna.Add(6*i + 1)
					n.fromPeer(n.a, x, Header{Flags: ACK, Window: uint16(x.sndWnd >> x.sndShift), Opts: Options{
						SACK: []Block{{base + 4, base + 5}, {base + 2, base + 3}, {base, base + 1}}}}, nil)
					n.a.Out()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*k), "ns/ack")
		})
	}
}

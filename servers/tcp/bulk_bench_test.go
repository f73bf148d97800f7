package tcp

import (
	"testing"
	"time"
)

// BenchmarkBulkTSO moves 1 MiB an iteration from b's side of a connection
// to a's, with TSO on the sender, over the test network (its simulated
// clock and delays): the engine's whole data path, both ends, for a
// bulk transfer.
func BenchmarkBulkTSO(b *testing.B) {
	n := newNet(b, Config{}, Config{TSOMax: MaxTSO})
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	data := pattern(1<<20, 9)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if got := n.transfer(n.b, s, n.a, c, data, false, 10*time.Second); len(got) != len(data) {
			b.Fatalf("received %d bytes of %d", len(got), len(data))
		}
	}
}

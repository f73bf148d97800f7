package tcp

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// TestLossySlowReader: a receiver that reads 2 kB at a time, now and then,
// over a lossy network: the window closes and opens again many times, its
// updates get lost, and still every byte arrives.
func TestLossySlowReader(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		n := newNet(t, Config{}, Config{RecvBuffer: 16384 << (seed % 3)})
		n.rng = rand.New(rand.NewPCG(seed, seed))
		n.loss, n.dup, n.jitter = 0.05, 0.01, 200*time.Microsecond
		l := n.listen(80, 8)
		c, s := n.dial(l, 80)
		data := pattern(3<<20, seed)
		var got []byte
		sent := 0
		buf := make([]byte, 2048)
		last := n.now
		n.runUntil("slow transfer", 10*time.Minute, func() bool {
			for sent < len(data) {
				k, err := n.a.Send(n.now, c, data[sent:min(sent+2048, len(data))])
				if err != nil {
					break
				}
				sent += k
			}
			// Now and then; and once everything is sent, at every step:
			// the network may then go quiet with the last bytes queued,
			// and no time pass for the reader's turn to come.
			if n.now.Sub(last) >= 200*time.Microsecond || sent == len(data) {
				last = n.now
				for range 8 {
					k, err := n.b.Recv(n.now, s, buf, false)
					if err != nil {
						break
					}
					got = append(got, buf[:k]...)
				}
			}
			return len(got) == len(data)
		})
		if !bytes.Equal(got, data) {
			t.Fatalf("seed %d: data corrupted", seed)
		}
	}
}

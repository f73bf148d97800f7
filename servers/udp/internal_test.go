package udp

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestQueueModel pushes and pops at random against a model, through ring
// growth and wrap-around.
func TestQueueModel(t *testing.T) {
	type dgram struct {
		from    netip.AddrPort
		payload []byte
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, bounds := range []struct{ recs, bytes int }{{1, 1}, {3, 100}, {16, 5000}, {256, 212992}, {1000, 100}} {
		var q queue
		var model []dgram
		bytesIn := 0
		for step := range 20000 {
			if r.IntN(2) == 0 {
				n := r.IntN(min(bounds.bytes, 3000) + 1)
				if r.IntN(8) == 0 {
					n = 0
				}
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(r.Uint32())
				}
				from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(step)}), uint16(step))
				want := len(model) < bounds.recs && bytesIn+n <= bounds.bytes
				if got := q.push(from, p, bounds.recs, bounds.bytes); got != want {
					t.Fatalf("%v step %d: push %d bytes = %v, want %v (%d, %d queued)", bounds, step, n, got, want, len(model), bytesIn)
				}
				if want {
					model = append(model, dgram{from, p})
					bytesIn += n
				}
			} else {
				buf := make([]byte, r.IntN(3000))
				n, from, trunc, ok := q.pop(buf)
				if ok != (len(model) > 0) {
					t.Fatalf("%v step %d: pop ok %v with %d queued", bounds, step, ok, len(model))
				}
				if !ok {
					continue
				}
				d := model[0]
				model = model[1:]
				bytesIn -= len(d.payload)
				wn := min(len(d.payload), len(buf))
				if n != wn || from != d.from || trunc != (len(d.payload) > len(buf)) || !bytes.Equal(buf[:n], d.payload[:wn]) {
					t.Fatalf("%v step %d: pop = %d from %v, truncated %v; want %d from %v", bounds, step, n, from, trunc, wn, d.from)
				}
			}
			if q.rlen != len(model) || q.dlen != bytesIn || len(q.data) > bounds.bytes || len(q.recs) > bounds.recs {
				t.Fatalf("%v step %d: queue %d/%d (rings %d, %d), model %d/%d", bounds, step, q.rlen, q.dlen, len(q.recs), len(q.data), len(model), bytesIn)
			}
		}
	}
}

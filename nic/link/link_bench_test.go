package link_test

import (
	"testing"
	"time"

	"github.com/newtsim/newtsim/nic/link"
)

// BenchmarkSendReceive measures one 1500-byte frame sent and received on
// a 10 Gbit/s link with a 10 us delay, the clock stepping by one frame
// time, with no impairment and with all four.
func BenchmarkSendReceive(b *testing.B) {
	tests := []struct {
		name string
		p    link.Params
	}{
		{"clean", link.Params{Bandwidth: 10e9, Delay: 10 * time.Microsecond}},
		{"impaired", link.Params{Bandwidth: 10e9, Delay: 10 * time.Microsecond, Loss: 0.01, Duplicate: 0.01, Reorder: 0.01, Corrupt: 0.01, Seed: 1}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			l, err := link.New(tt.p)
			if err != nil {
				b.Fatal(err)
			}
			frame := make([]byte, 1500)
			step := 1200 * time.Nanosecond // 1500 B at 10 Gbit/s
			now := t0
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				l.Send(now, frame)
				now = now.Add(step)
				l.Receive(now)
			}
		})
	}
}

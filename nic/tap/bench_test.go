package tap

import (
	"testing"

	"github.com/newtsim/newtsim/sim/netns"
)

// BenchmarkWrite writes one 100-byte TCP segment a time to a TAP device in
// a namespace of its own (Linux drops it: no socket there), with and
// without TSO's virtio-net header: what the nic's every frame down costs
// (-benchmem shows what it allocates). Needs root.
func BenchmarkWrite(b *testing.B) {
	for _, tso := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "tso"}[tso], func(b *testing.B) {
			ns, err := netns.New("nts-tapb-")
			if err != nil {
				b.Fatal(err)
			}
			defer ns.Close()
			d, err := Open("ntstapb%d", tso)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			if err := ns.Adopt(d.Name(), "198.18.0.1/24"); err != nil {
				b.Fatal(err)
			}
			frame := tcpFrame(100)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := d.Write(frame, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package servers

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// BenchmarkPFFrame is pf's cost per frame coming in and allowed: the
// FrameRx handled (checked and forwarded to ip) and, later, the BufFree
// of what it forwarded handled, in batches of 32 frames (the harness's pools hold 64 buffers); an op is one
// frame. It measures what checking and forwarding a copy costs against
// forwarding the nic's buffer itself.
func BenchmarkPFFrame(b *testing.B) {
	for _, size := range []int{64, 1514} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "pf.rules")
			if err := os.WriteFile(path, []byte(pfRules), 0o644); err != nil {
				b.Fatal(err)
			}
			peers, routes := hostRoutes("pf")
			h := systest.New(b, systest.Config{Name: "pf", Procs: hostSlots, Peers: peers, Routes: routes,
				Args: []string{"--rules", path}}, PF)
			payload := size - 14 - 20 - 8
			frame := withEther(b, udpPacket(b, at(peerIP, 1000), at(hostIP, 7), make([]byte, payload)))
			nic := h.Pool("nic")
			const batch = 32
			frames := make([]ipc.Message, batch)
			frees := make([]ipc.Message, 0, batch)
			b.SetBytes(int64(len(frame)))
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				b.StopTimer()
				for i := range frames {
					frames[i] = systest.FrameRx(h.Buffer("nic", frame))
				}
				b.StartTimer()
				h.Deliver("driver", frames...)
				sent := h.Sent()
				frees = frees[:0]
				for _, m := range sent {
					if m.Type == ipc.FrameRx {
						frees = append(frees, systest.BufFree(systest.Ref(m)))
					}
				}
				h.Deliver("ip", frees...)
				b.StopTimer()
				for _, m := range append(sent, h.Sent()...) { // the nic's buffers, on their way back
					if m.Type == ipc.BufFree && systest.Ref(m).Pool() == nic.ID() {
						nic.Free(systest.Ref(m))
					}
				}
				if n := h.InUse("nic") + h.InUse("pf"); n != 0 {
					b.Fatalf("%d buffers still in use", n)
				}
				b.StartTimer()
			}
		})
	}
}

package servers

import (
	"testing"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

func TestDriverForwards(t *testing.T) {
	tests := []struct {
		name     string
		from     string
		msg      func(pool.Ref) ipc.Message
		to       string // "": nothing sent
		wantType ipc.Type
	}{
		{"a frame up", "nic", systest.FrameRx, "pf", ipc.FrameRx},
		{"a frame down", "pf", systest.FrameTx, "nic", ipc.FrameTx},
		{"anything else", "pf", systest.Unreachable, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newRole(t, "driver", Driver)
			ref := h.Buffer("nic", []byte("a frame"))
			h.Deliver(tt.from, tt.msg(ref))
			if tt.to == "" {
				if out := h.Sent(); len(out) != 0 {
					t.Fatalf("sent %v, want nothing", out)
				}
				return
			}
			out := h.SentTo(tt.to)
			if len(out) != 1 || out[0].Type != tt.wantType || systest.Ref(out[0]) != ref {
				t.Fatalf("sent %v, want one %v to %s with the same buffer %v", out, tt.wantType, tt.to, ref)
			}
			if h.InUse("nic") != 1 {
				t.Error("the driver freed or copied the frame's buffer")
			}
		})
	}
}

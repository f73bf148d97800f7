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

// A peer that died (pf, restarting) loses the frame, whose buffer goes
// back to the nic; the driver keeps forwarding.
func TestDriverSurvivesADeadPeer(t *testing.T) {
	h := newRole(t, "driver", Driver)
	h.T.Refuse(h.Endpoint("pf"), ipc.ErrDeadEndpoint)
	ref := h.Buffer("nic", []byte("a frame"))
	h.Deliver("nic", systest.FrameRx(ref))
	out := h.SentTo("nic")
	if len(out) != 1 || out[0].Type != ipc.BufFree || systest.Ref(out[0]) != ref {
		t.Fatalf("sent %v, want the frame's buffer back to the nic", out)
	}
	if got := h.Metric("newtsim_server_send_failures_total", "peer", "pf", "reason", "dead"); got != 1 {
		t.Errorf("send failures to pf = %v, want 1", got)
	}
	h.T.Refuse(h.Endpoint("pf"), nil)
	down := h.Buffer("pf", []byte("another"))
	h.Deliver("pf", systest.FrameTx(down))
	if out := h.SentTo("nic"); len(out) != 1 || out[0].Type != ipc.FrameTx {
		t.Fatalf("sent %v after the failure, want the next frame forwarded", out)
	}
}

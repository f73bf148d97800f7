package servers

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/servers/sys/systest"
)

// pfRules drops UDP to port 9 coming in, allows the rest.
const pfRules = `drop in proto udp to any port 9
allow in
allow out
`

func newPF(t *testing.T) *systest.Harness {
	path := filepath.Join(t.TempDir(), "pf.rules")
	if err := os.WriteFile(path, []byte(pfRules), 0o644); err != nil {
		t.Fatal(err)
	}
	return newRole(t, "pf", PF, "--rules", path)
}

func TestPF(t *testing.T) {
	local := at(hostIP, 7)
	tests := []struct {
		name      string
		from      string // ip sends frames down, driver up
		frame     func(t *testing.T) []byte
		forwardTo string // "": dropped, the buffer given back
		dir       string
		verdict   string
		rule      string // the rule that matched, "": none counted
	}{
		{"a rule drops", "driver", func(t *testing.T) []byte {
			return withEther(t, udpPacket(t, at(peerIP, 1000), at(hostIP, 9), []byte("discard")))
		}, "", "in", "drop", "0"},
		{"a pass forwards", "driver", func(t *testing.T) []byte {
			return withEther(t, udpPacket(t, at(peerIP, 1000), local, []byte("echo")))
		}, "ip", "in", "allow", "1"},
		{"out forwards", "ip", func(t *testing.T) []byte {
			return withEther(t, udpPacket(t, local, at(peerIP, 9), []byte("out")))
		}, "driver", "out", "allow", "2"},
		{"ARP passes unchecked", "driver", func(t *testing.T) []byte {
			return arpFrame(t, layers.ARPRequest, peerMAC, peerIP, [6]byte{}, hostIP)
		}, "ip", "in", "not-ipv4", ""},
		{"a malformed packet drops", "driver", func(t *testing.T) []byte {
			return withEther(t, []byte{0x45, 0, 0, 99})
		}, "", "in", "malformed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newPF(t)
			owner := "nic"
			msg := systest.FrameRx
			if tt.from == "ip" {
				owner, msg = "ip", systest.FrameTx
			}
			frame := tt.frame(t)
			ref := h.Buffer(owner, frame)
			h.Deliver(tt.from, msg(ref))
			out := h.Sent()
			// The frame's buffer goes back towards its owner, one hop,
			// forwarded or not: pf checked its own copy.
			if len(out) == 0 || out[0].Type != ipc.BufFree || out[0].Dst != h.Endpoint(tt.from) || systest.Ref(out[0]) != ref {
				t.Fatalf("sent %v, want the buffer given back to %s first", out, tt.from)
			}
			out = out[1:]
			switch {
			case tt.forwardTo != "":
				if len(out) != 1 || out[0].Dst != h.Endpoint(tt.forwardTo) || systest.Ref(out[0]).Pool() != uint8(hostSlots["pf"]) {
					t.Fatalf("sent %v, want a copy in pf's pool forwarded to %s", out, tt.forwardTo)
				}
				if got := h.Bytes(systest.Ref(out[0])); !bytes.Equal(got, frame) {
					t.Fatalf("forwarded % x, want the frame % x", got, frame)
				}
			default: // dropped: the copy freed
				if len(out) != 0 || h.InUse("pf") != 0 {
					t.Fatalf("sent %v and %d of pf's buffers in use, want nothing more", out, h.InUse("pf"))
				}
			}
			if got := h.Metric("newtsim_pf_frames_total", "direction", tt.dir, "verdict", tt.verdict); got != 1 {
				t.Errorf("frames %s %s = %v, want 1", tt.dir, tt.verdict, got)
			}
			if got := h.Metric("newtsim_pf_frames_total"); got != 1 {
				t.Errorf("frames counted %v times, want once", got)
			}
			for _, r := range []string{"0", "1", "2"} {
				want := 0.0
				if r == tt.rule {
					want = 1
				}
				if got := h.Metric("newtsim_pf_rule_hits_total", "rule", r); got != want {
					t.Errorf("rule %s hits = %v, want %v", r, got, want)
				}
			}
		})
	}
}

func TestPFRefusesBadBuffer(t *testing.T) {
	h := newPF(t)
	tests := []struct {
		name string
		ref  pool.Ref
	}{
		{"out of bounds", pool.MakeRef(uint8(hostSlots["nic"]), 1<<30, 60)},
		{"no such pool", pool.MakeRef(40, 0, 60)},
		{"empty", 0},
	}
	for i, tt := range tests {
		h.Deliver("driver", systest.FrameRx(tt.ref))
		if out := h.Sent(); len(out) != 0 {
			t.Errorf("%s: sent %v, want nothing", tt.name, out)
		}
		if got := h.Metric("newtsim_server_bad_buffer_refs_total", "type", "frame-rx"); got != float64(i+1) {
			t.Errorf("%s: bad refs %v, want %d", tt.name, got, i+1)
		}
	}
	if got := h.Metric("newtsim_pf_frames_total"); got != 0 {
		t.Errorf("%v frames checked, want none", got)
	}
}

// TestPFForwardsWhatItChecked: the frame's owner (the nic; on the wire
// backend the far host's nic) rewrites the frame after pf's verdict, to
// what the rules drop. What pf forwarded must still be what it checked:
// its own copy. (The old code forwarded the owner's buffer: ip would have
// read the rewritten frame, to port 9, which the rules drop.)
func TestPFForwardsWhatItChecked(t *testing.T) {
	h := newPF(t)
	allowed := withEther(t, udpPacket(t, at(peerIP, 1000), at(hostIP, 7), []byte("echo")))
	dropped := withEther(t, udpPacket(t, at(peerIP, 1000), at(hostIP, 9), []byte("echo")))
	ref := h.Buffer("nic", allowed)
	h.Deliver("driver", systest.FrameRx(ref))
	var fwd ipc.Message
	for _, m := range h.Sent() {
		if m.Type == ipc.FrameRx {
			fwd = m
		}
	}
	if fwd.Dst != h.Endpoint("ip") {
		t.Fatal("the allowed frame was not forwarded to ip")
	}
	nic := h.Pool("nic")
	b, err := nic.Bytes(ref, nic.Owner())
	if err != nil {
		t.Fatal(err)
	}
	copy(b, dropped) // after the verdict, before ip reads it
	if got := h.Bytes(systest.Ref(fwd)); !bytes.Equal(got, allowed) {
		t.Fatalf("ip reads % x, want the frame pf checked % x", got, allowed)
	}
	if got := h.Metric("newtsim_pf_frames_total", "direction", "in", "verdict", "allow"); got != 1 {
		t.Fatalf("allowed %v frames, want 1", got)
	}
}

// TestPFNoBuffer: with every buffer of its pool held, pf drops a frame it
// cannot copy, gives the owner's buffer back and counts it (no-buffer).
func TestPFNoBuffer(t *testing.T) {
	h := newPF(t)
	for range h.Pool("pf").Count() {
		if _, _, err := h.Pool("pf").Alloc(); err != nil {
			t.Fatal(err)
		}
	}
	ref := h.Buffer("nic", withEther(t, udpPacket(t, at(peerIP, 1000), at(hostIP, 7), []byte("echo"))))
	h.Deliver("driver", systest.FrameRx(ref))
	if out := h.Sent(); len(out) != 1 || out[0].Type != ipc.BufFree || systest.Ref(out[0]) != ref {
		t.Fatalf("sent %v, want only the frame's buffer given back", out)
	}
	if got := h.Metric("newtsim_pf_frames_total", "direction", "in", "verdict", "no-buffer"); got != 1 {
		t.Fatalf("no-buffer drops %v, want 1", got)
	}
}

package ip_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
)

// pattern returns n bytes of datagram seed's payload from offset off: the
// same offset always holds the same byte, so fragments agree with each
// other and a reassembled payload can be checked.
func pattern(off, n int, seed uint16) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((off+i)%251) ^ byte(seed)
	}
	return b
}

// fragPacket returns an IPv4 fragment from src to the host: datagram id of
// protocol proto, data at byte offset off, more fragments to follow if
// more.
func fragPacket(src netip.Addr, id uint16, proto uint8, off int, more bool, data []byte) []byte {
	p := make([]byte, 20+len(data))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], id)
	fo := uint16(off / 8)
	if more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(p[6:], fo)
	p[8], p[9] = 64, proto
	copy(p[12:], src.AsSlice())
	copy(p[16:], host.AsSlice())
	binary.BigEndian.PutUint16(p[10:], inetSum(p[:20]))
	copy(p[20:], data)
	return p
}

// fragFrame returns fragPacket in a frame from the peer.
func fragFrame(src netip.Addr, id uint16, proto uint8, off int, more bool, data []byte) []byte {
	return inFrame(peerMAC, hostMAC, fragPacket(src, id, proto, off, more, data))
}

// fragStep is one step of a reassembly test: a fragment of datagram id at
// time at, or a Tick then.
type fragStep struct {
	at   time.Duration
	id   uint16
	off  int
	n    int
	more bool
	tick bool
}

// fr returns a step: a fragment of datagram 1 at time 0.
func fr(off, n int, more bool) fragStep { return fragStep{id: 1, off: off, n: n, more: more} }

// byID returns the step for datagram id.
func (s fragStep) byID(id uint16) fragStep { s.id = id; return s }

// after returns the step at time d.
func (s fragStep) after(d time.Duration) fragStep { s.at = d; return s }

// tickAt returns a Tick at time d.
func tickAt(d time.Duration) fragStep { return fragStep{at: d, tick: true} }

// whole returns the fragments of a datagram of n payload bytes from id,
// each of size bytes (a multiple of 8) but the last.
func whole(id uint16, n, size int) []fragStep {
	var steps []fragStep
	for off := 0; off < n; off += size {
		m := min(size, n-off)
		steps = append(steps, fragStep{id: id, off: off, n: m, more: off+m < n})
	}
	return steps
}

func TestReassembly(t *testing.T) {
	type datagram struct {
		id uint16
		n  int
	}
	tests := []struct {
		name  string
		mod   func(*ip.Config)
		steps []fragStep
		want  []datagram // delivered, in order
		drops map[string]uint64
		held  int // ReasmBytes at the end
	}{
		{name: "in order", steps: []fragStep{fr(0, 16, true), fr(16, 16, true), fr(32, 10, false)}, want: []datagram{{1, 42}}},
		{name: "out of order", steps: []fragStep{fr(32, 10, false), fr(0, 16, true), fr(16, 16, true)}, want: []datagram{{1, 42}}},
		{name: "last first", steps: []fragStep{fr(16, 3, false), fr(8, 8, true), fr(0, 8, true)}, want: []datagram{{1, 19}}},
		{name: "many", steps: whole(1, 9000, 64), want: []datagram{{1, 9000}}},
		{name: "largest", steps: whole(1, 65515, 1480), want: []datagram{{1, 65515}}},
		{
			name:  "interleaved",
			steps: []fragStep{fr(0, 8, true), fr(0, 8, true).byID(2), fr(8, 3, false), fr(8, 4, false).byID(2)},
			want:  []datagram{{1, 11}, {2, 12}},
		},
		{
			name:  "duplicate",
			steps: []fragStep{fr(0, 16, true), fr(0, 16, true), fr(16, 5, false)},
			want:  []datagram{{1, 21}}, drops: map[string]uint64{"reasm-duplicate": 1},
		},
		{
			name:  "duplicate last",
			steps: []fragStep{fr(16, 5, false), fr(16, 5, false), fr(0, 16, true)},
			want:  []datagram{{1, 21}}, drops: map[string]uint64{"reasm-duplicate": 1},
		},
		{name: "overlap at start", steps: []fragStep{fr(0, 16, true), fr(8, 16, true)}, drops: map[string]uint64{"reasm-overlap": 1}},
		{name: "overlap at end", steps: []fragStep{fr(8, 16, true), fr(0, 16, true)}, drops: map[string]uint64{"reasm-overlap": 1}},
		{name: "overlap in a hole", steps: []fragStep{fr(0, 8, true), fr(16, 8, true), fr(8, 16, true)}, drops: map[string]uint64{"reasm-overlap": 1}},
		{name: "same start, longer", steps: []fragStep{fr(0, 8, true), fr(0, 16, true)}, drops: map[string]uint64{"reasm-overlap": 1}},
		{name: "covers two", steps: []fragStep{fr(8, 8, true), fr(24, 8, true), fr(0, 40, true)}, drops: map[string]uint64{"reasm-overlap": 1}},
		{
			name:  "overlap, then a new datagram",
			steps: []fragStep{fr(0, 16, true), fr(8, 16, true), fr(24, 4, false)},
			drops: map[string]uint64{"reasm-overlap": 1}, held: 24,
		},
		{name: "two ends", steps: []fragStep{fr(16, 5, false), fr(16, 8, false)}, drops: map[string]uint64{"reasm-inconsistent": 1}},
		{name: "past the end", steps: []fragStep{fr(16, 5, false), fr(24, 8, true)}, drops: map[string]uint64{"reasm-inconsistent": 1}},
		{name: "end before data", steps: []fragStep{fr(32, 8, true), fr(16, 5, false)}, drops: map[string]uint64{"reasm-inconsistent": 1}},
		{name: "too big", steps: []fragStep{fr(0, 8, true), fr(65512, 24, false)}, drops: map[string]uint64{"reasm-too-big": 1}},
		{name: "one byte too big", steps: whole(1, 65516, 1480), drops: map[string]uint64{"reasm-too-big": 1}},
		{
			name:  "timed out",
			steps: []fragStep{fr(0, 16, true), tickAt(30 * time.Second)},
			drops: map[string]uint64{"reasm-timeout": 1},
		},
		{
			name:  "not yet timed out",
			steps: []fragStep{fr(0, 16, true), tickAt(30*time.Second - 1), fr(16, 1, false).after(30*time.Second - 1)},
			want:  []datagram{{1, 17}},
		},
		{
			name:  "timed out on arrival",
			steps: []fragStep{fr(0, 16, true), fr(16, 5, false).after(30 * time.Second)},
			drops: map[string]uint64{"reasm-timeout": 1}, held: 25,
		},
		{
			name:  "configured timeout",
			mod:   func(c *ip.Config) { c.ReasmTimeout = time.Second },
			steps: []fragStep{fr(0, 16, true), tickAt(time.Second), fr(16, 5, false).after(time.Second)},
			drops: map[string]uint64{"reasm-timeout": 1}, held: 25,
		},
		{
			name: "over the bound",
			mod:  func(c *ip.Config) { c.ReasmMaxBytes = 100 },
			steps: []fragStep{
				fr(0, 40, true),                   // 60 bytes held
				fr(0, 40, true).byID(2),           // 120: the first datagram goes
				fr(40, 8, false).byID(2),          // 88
				fr(40, 8, false).after(time.Hour), // datagram 1 again, alone
			},
			want:  []datagram{{2, 48}},
			drops: map[string]uint64{"reasm-overflow": 1}, held: 28,
		},
		{
			name:  "own datagram oldest",
			mod:   func(c *ip.Config) { c.ReasmMaxBytes = 100 },
			steps: []fragStep{fr(0, 40, true), fr(40, 40, true)},
			drops: map[string]uint64{"reasm-overflow": 1},
		},
		{
			name:  "fragment over the bound",
			mod:   func(c *ip.Config) { c.ReasmMaxBytes = 50 },
			steps: []fragStep{fr(0, 40, true)},
			drops: map[string]uint64{"reasm-overflow": 1},
		},
		{
			name: "default bound",
			steps: slices.Concat(whole(1, 60000, 1480)[:40], whole(2, 60000, 1480)[:40], whole(3, 60000, 1480)[:40],
				whole(4, 60000, 1480)[:40], whole(5, 60000, 1480)[:40]), // 1500 bytes each, 40 a datagram
			drops: map[string]uint64{"reasm-overflow": 1}, held: 4 * 40 * 1500,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*ip.Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			s := newStack(t, mods...)
			var got []datagram
			for _, st := range tt.steps {
				if st.tick {
					s.Tick(at(st.at))
				} else {
					s.FrameIn(at(st.at), fragFrame(peer, st.id, 17, st.off, st.more, pattern(st.off, st.n, st.id)))
				}
				for _, ev := range s.Out() {
					if ev.Kind != ip.Deliver {
						continue
					}
					id := binary.BigEndian.Uint16(ev.Packet[4:])
					checkPacket(t, ev.Packet, checker.InIPv4(checker.Addrs(peer, host), checker.Protocol(proto.UDP), checker.IPPayload(pattern(0, len(ev.Payload), id))))
					if ev.Proto != 17 || ev.Src != peer || ev.Dst != host || !bytes.Equal(ev.Payload, ev.Packet[20:]) {
						t.Errorf("Deliver proto %d %v -> %v", ev.Proto, ev.Src, ev.Dst)
					}
					got = append(got, datagram{id, len(ev.Payload)})
				}
				if held := s.Stats().ReasmBytes; held > 256<<10 {
					t.Fatalf("%d bytes held", held)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("delivered %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("delivered %v, want %v", got, tt.want)
				}
			}
			checkDrops(t, s, tt.drops)
			st := s.Stats()
			if st.ReasmBytes != tt.held {
				t.Errorf("ReasmBytes = %d, want %d", st.ReasmBytes, tt.held)
			}
			if st.Reassembled != uint64(len(tt.want)) {
				t.Errorf("Reassembled = %d, want %d", st.Reassembled, len(tt.want))
			}
		})
	}
}

func TestReassemblyTimeExceeded(t *testing.T) {
	s := newStack(t)
	resolve(t, s, t0, peerMAC, peer)
	first := fragPacket(peer, 9, 17, 0, true, pattern(0, 32, 9))
	s.FrameIn(t0, inFrame(peerMAC, hostMAC, first))
	s.FrameIn(t0, fragFrame(peer, 10, 17, 8, false, pattern(8, 8, 10))) // no first fragment: no error
	none(t, s.Out())
	if d, ok := s.Deadline(); !ok || !d.Equal(at(30*time.Second)) {
		t.Fatalf("Deadline() = %v, %v; want 30s", d.Sub(t0), ok)
	}
	s.Tick(at(30 * time.Second))
	ev := only(t, s.Out(), ip.FrameOut)
	checkFrame(t, ev.Frame, checker.Ethernet(hostMAC, peerMAC, layers.EthernetTypeIPv4),
		checker.InIPv4(checker.Addrs(host, peer), checker.ICMP(11, 1, checker.Quotes(first[:28]))))
	checkDrops(t, s, map[string]uint64{"reasm-timeout": 2})
	if st := s.Stats(); st.ICMPErrorsSent != 1 || st.ReasmBytes != 0 || st.FragmentsReceived != 2 {
		t.Errorf("Stats() = %+v", st)
	}
}

func TestReassembledPing(t *testing.T) {
	for _, n := range []int{1400, 1472, 3000} {
		t.Run("", func(t *testing.T) {
			s := newStack(t)
			resolve(t, s, t0, peerMAC, peer)
			data := pattern(0, n, 0)
			pkt := echoFrame(t, peerMAC, peer, host, 3, 4, data)[14:]
			m := pkt[20:]
			for off := 0; off < len(m); off += 1024 {
				end := min(off+1024, len(m))
				s.FrameIn(t0, fragFrame(peer, 0x1234, 1, off, end < len(m), m[off:end]))
			}
			evs := s.Out()
			if n+8 > ip.MaxPayload { // the reply goes in fragments: TestPingFragmentedReply
				if len(evs) != 3 {
					t.Fatalf("events %v, want the reply in 3 fragments", kinds(evs))
				}
				checkDrops(t, s, nil)
				return
			}
			ev := only(t, evs, ip.FrameOut)
			checkFrame(t, ev.Frame, checker.InIPv4(checker.Addrs(host, peer), checker.ICMP(0, 0, checker.Echo(3, 4, data))))
			checkDrops(t, s, nil)
		})
	}
}

func TestReassembledUnreachable(t *testing.T) {
	s := newStack(t)
	resolve(t, s, t0, peerMAC, peer)
	s.FrameIn(t0, fragFrame(peer, 5, 17, 0, true, pattern(0, 16, 5)))
	s.FrameIn(t0, fragFrame(peer, 5, 17, 16, false, pattern(16, 4, 5)))
	ev := only(t, s.Out(), ip.Deliver)
	s.Unreachable(t0, ev.Packet, proto.CodePortUnreachable)
	out := only(t, s.Out(), ip.FrameOut)
	want := fragPacket(peer, 5, 17, 0, false, pattern(0, 20, 5))[:28] // the whole datagram's header
	checkFrame(t, out.Frame, checker.InIPv4(checker.Addrs(host, peer), checker.ICMP(3, 3, checker.Quotes(want))))
}

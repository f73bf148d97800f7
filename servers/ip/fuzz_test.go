package ip_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora under testdata/fuzz")

// checkEvents checks that every event the Stack emitted is well-formed:
// frames from the host, of a legal size, carrying a correct ARP or IPv4
// packet; deliveries of correct, whole IPv4 packets for the host.
func checkEvents(t *testing.T, evs []ip.Event) {
	t.Helper()
	for i, ev := range evs {
		switch ev.Kind {
		case ip.FrameOut:
			f := ev.Frame
			if len(f) < ip.MinFrameLen || len(f) > ip.MaxFrameLen {
				t.Fatalf("event %d: frame of %d bytes", i, len(f))
			}
			if !bytes.Equal(f[6:12], hostMAC[:]) {
				t.Fatalf("event %d: frame from % x", i, f[6:12])
			}
			switch typ := binary.BigEndian.Uint16(f[12:]); typ {
			case 0x0806:
				a := f[14:]
				if !bytes.Equal(a[:6], []byte{0, 1, 8, 0, 6, 4}) || a[6] != 0 || a[7] != 1 && a[7] != 2 ||
					!bytes.Equal(a[8:14], hostMAC[:]) || !bytes.Equal(a[14:18], host.AsSlice()) {
					t.Fatalf("event %d: bad ARP packet % x", i, a[:28])
				}
			case 0x0800:
				p := checkIPv4(t, i, f[14:])
				if src := netip.AddrFrom4([4]byte(p[12:16])); src != host {
					t.Fatalf("event %d: frame from %v", i, src)
				}
				if p[8] != 64 && p[8] != 1 {
					t.Fatalf("event %d: TTL %d", i, p[8])
				}
				if len(p) > ip.MTU {
					t.Fatalf("event %d: %d-byte packet", i, len(p))
				}
				if p[9] == proto.ICMP && inetSum(p[20:]) != 0 {
					t.Fatalf("event %d: ICMP checksum does not verify", i)
				}
			default:
				t.Fatalf("event %d: EtherType %#04x", i, typ)
			}
		case ip.Deliver:
			p := checkIPv4(t, i, ev.Packet)
			if len(p) != len(ev.Packet) {
				t.Fatalf("event %d: packet of %d bytes, total length %d", i, len(ev.Packet), len(p))
			}
			hl := int(p[0]&0xf) * 4
			if ev.Proto != p[9] || ev.Src != netip.AddrFrom4([4]byte(p[12:16])) || ev.Dst != netip.AddrFrom4([4]byte(p[16:20])) ||
				!bytes.Equal(ev.Payload, p[hl:]) {
				t.Fatalf("event %d: Deliver fields disagree with its packet", i)
			}
			if d := ev.Dst; d != host && d != subnetBC && d != allBC && !d.IsLoopback() {
				t.Fatalf("event %d: delivered for %v", i, d)
			}
			if binary.BigEndian.Uint16(p[6:])&0x3fff != 0 {
				t.Fatalf("event %d: delivered a fragment", i)
			}
			if p[9] == proto.ICMP && (len(ev.Payload) < 8 || inetSum(ev.Payload) != 0) {
				t.Fatalf("event %d: delivered a bad ICMP message", i)
			}
		case ip.ICMPError:
			p := checkIPv4(t, i, ev.Packet)
			hl := int(p[0]&0xf) * 4
			if p[9] != proto.ICMP || !bytes.Equal(ev.Payload, p[hl:]) || inetSum(ev.Payload) != 0 {
				t.Fatalf("event %d: ICMPError not in a correct ICMP packet", i)
			}
			if ev.Type != 3 && ev.Type != 11 || ev.Type != ev.Payload[0] || ev.Code != ev.Payload[1] {
				t.Fatalf("event %d: ICMPError of type %d code %d", i, ev.Type, ev.Code)
			}
			if len(ev.Quote) < 8 || ev.Src != host && !ev.Src.IsLoopback() || ev.From != netip.AddrFrom4([4]byte(p[12:16])) {
				t.Fatalf("event %d: ICMPError %+v", i, ev)
			}
		default:
			t.Fatalf("event %d: kind %v", i, ev.Kind)
		}
	}
}

// checkIPv4 checks an IPv4 packet's header and returns the packet trimmed
// to its total length.
func checkIPv4(t *testing.T, i int, p []byte) []byte {
	t.Helper()
	if len(p) < 20 || p[0]>>4 != 4 || p[0]&0xf < 5 || int(p[0]&0xf)*4 > len(p) {
		t.Fatalf("event %d: bad IPv4 header % x", i, p[:min(len(p), 20)])
	}
	hl := int(p[0]&0xf) * 4
	if inetSum(p[:hl]) != 0 {
		t.Fatalf("event %d: IPv4 header checksum does not verify", i)
	}
	total := int(binary.BigEndian.Uint16(p[2:]))
	if total < hl || total > len(p) {
		t.Fatalf("event %d: total length %d in %d bytes", i, total, len(p))
	}
	return p[:total]
}

// frameSeeds are the seed corpus of FuzzFrameIn, by name.
func frameSeeds(t testing.TB) map[string][]byte {
	seeds := map[string][]byte{
		"arp-request":                        arpRequestFrom(t, peerMAC, peer, host),
		"arp-reply":                          arpReplyFrom(t, peerMAC, peer),
		"arp-other":                          arpRequestFrom(t, peerMAC, peer, peer2),
		"echo":                               echoFrame(t, peerMAC, peer, host, 1, 2, []byte("ping data")),
		"echo-off-link":                      echoFrame(t, gwMAC, remote, host, 1, 2, nil),
		"udp":                                udpFrame(t, []byte("hello")),
		"udp-broadcast":                      inFrame(peerMAC, bcast, udpPacket(t, peer, subnetBC, 68, 67, []byte("bc"))),
		"first-fragment":                     fragFrame(peer, 3, 17, 0, true, pattern(0, 16, 3)),
		"last-fragment":                      fragFrame(peer, 3, 17, 16, false, pattern(16, 5, 3)),
		"icmp-fragment":                      fragFrame(peer, 4, 1, 0, true, pattern(0, 8, 4)),
		"options":                            inFrame(peerMAC, hostMAC, rawPacket(peer, host, 17, 60, 0, pattern(0, 8, 1))),
		"icmp-unreachable":                   inFrame(peerMAC, hostMAC, rawPacket(peer, host, 1, 20, 0, icmpMsg(3))),
		"icmp-error-udp":                     icmpErrorFrame(t, peer, 3, 3, 0, udpPacket(t, host, peer, 5000, 53, nil)),
		"icmp-error-tcp-mtu":                 icmpErrorFrame(t, gw, 3, 4, 1400, tcpPacket(t, host, remote, 40000, 80, 1)[:28]),
		"icmp-error-time-exceeded":           icmpErrorFrame(t, gw, 11, 0, 0, tcpPacket(t, host, remote, 40000, 80, 1)[:28]),
		"icmp-error-short-quote":             icmpErrorFrame(t, peer, 3, 3, 0, udpPacket(t, host, peer, 5000, 53, nil)[:27]),
		"icmp-error-quoted-ihl-past-the-end": icmpErrorFrame(t, peer, 3, 3, 0, append([]byte{0x4f}, udpPacket(t, host, peer, 5000, 53, nil)[1:28]...)),
		"empty":                              {},
		"unknown-protocol":                   inFrame(peerMAC, hostMAC, rawPacket(peer, host, 47, 20, 0, pattern(0, 30, 1))),
		"unknown-protocol-in-a-broadcast":    inFrame(peerMAC, bcast, rawPacket(peer, host, 47, 20, 0, nil)),
		"unknown-protocol-fragment":          fragFrame(peer, 9, 47, 0, true, pattern(0, 16, 9)),
	}
	for _, c := range malformedCases {
		seeds["malformed-"+c.name] = c.frame(t)
	}
	return seeds
}

// FuzzFrameIn feeds the Stack arbitrary frames, as a hostile link would.
// It must never panic or change the frame, and everything it emits must be
// well-formed (checkEvents). Each frame goes in twice, as a duplicating
// link would send it, and then the timers run out.
func FuzzFrameIn(f *testing.F) {
	for _, seed := range frameSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		s := newStack(t, func(c *ip.Config) { c.ReasmMaxBytes = 2048 })
		resolve(t, s, t0, peerMAC, peer)
		orig := bytes.Clone(frame)
		for i := range 2 {
			s.FrameIn(at(time.Duration(i)*time.Second), frame)
			if !bytes.Equal(frame, orig) {
				t.Fatal("FrameIn changed the frame")
			}
			evs := s.Out()
			checkEvents(t, evs)
			for _, ev := range evs {
				if ev.Kind == ip.Deliver { // as if no socket wanted it
					s.Unreachable(at(time.Duration(i)*time.Second), ev.Packet, proto.CodePortUnreachable)
					checkEvents(t, s.Out())
				}
			}
		}
		for i := range 5 { // long enough for every retry and timeout
			s.Tick(at(time.Hour + time.Duration(i)*time.Second))
			checkEvents(t, s.Out())
		}
		if st := s.Stats(); st.ReasmBytes != 0 || st.Neighbors != 0 {
			t.Fatalf("after an hour: %+v", st)
		}
		if _, ok := s.Deadline(); ok {
			t.Fatal("a deadline after an hour")
		}
	})
}

// reasmMax is FuzzReassembly's ReasmMaxBytes.
const reasmMax = 3000

// FuzzReassembly feeds the Stack a sequence of fragments, each described
// by 6 bytes of the input: flags (bits 0-1 the datagram's ID, bit 2 the
// source, bit 3 more fragments, bit 4 a Tick first, bit 5 ICMP rather than
// UDP), the offset in 8-byte units (2 bytes), the length (2 bytes, modulo
// 1500) and the time advanced, in 100 ms. Whatever the sequence, the Stack
// must not panic, must hold at most ReasmMaxBytes, must emit well-formed
// events, and must deliver only datagrams whose every byte is the one its
// fragments carried.
func FuzzReassembly(f *testing.F) {
	for _, seed := range reasmSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		s := newStack(t, func(c *ip.Config) { c.ReasmMaxBytes = reasmMax; c.ReasmTimeout = 5 * time.Second })
		resolve(t, s, t0, peerMAC, peer)
		resolve(t, s, t0, peerMAC, peer2)
		now := t0
		for ; len(ops) >= 6; ops = ops[6:] {
			flags := ops[0]
			off := int(binary.BigEndian.Uint16(ops[1:])&0x1fff) * 8
			n := int(binary.BigEndian.Uint16(ops[3:]) % 1500)
			now = now.Add(time.Duration(ops[5]) * 100 * time.Millisecond)
			id := uint16(flags & 3)
			src, prot := peer, uint8(proto.UDP)
			if flags&4 != 0 {
				src = peer2
			}
			if flags&32 != 0 {
				prot = proto.ICMP
			}
			if flags&16 != 0 {
				s.Tick(now)
				checkEvents(t, s.Out())
			}
			s.FrameIn(now, fragFrame(src, id, prot, off, flags&8 != 0, pattern(off, n, id)))
			evs := s.Out()
			checkEvents(t, evs)
			for _, ev := range evs {
				if ev.Kind == ip.Deliver && !bytes.Equal(ev.Payload, pattern(0, len(ev.Payload), binary.BigEndian.Uint16(ev.Packet[4:]))) {
					t.Fatalf("reassembled a datagram of %d bytes with the wrong content", len(ev.Payload))
				}
			}
			if held := s.Stats().ReasmBytes; held < 0 || held > reasmMax {
				t.Fatalf("%d bytes held, bound %d", held, reasmMax)
			}
		}
	})
}

// reasmSeeds are the seed corpus of FuzzReassembly, by name.
func reasmSeeds() map[string][]byte {
	op := func(flags byte, off8, n int, dt byte) []byte {
		return []byte{flags, byte(off8 >> 8), byte(off8), byte(n >> 8), byte(n), dt}
	}
	cat := func(ops ...[]byte) []byte { return bytes.Join(ops, nil) }
	return map[string][]byte{
		"in-order":     cat(op(8, 0, 16, 0), op(8, 2, 16, 0), op(0, 4, 5, 0)),
		"out-of-order": cat(op(0, 4, 5, 0), op(8, 0, 16, 1), op(8, 2, 16, 1)),
		"duplicate":    cat(op(8, 0, 16, 0), op(8, 0, 16, 0), op(0, 2, 5, 0)),
		"overlap":      cat(op(8, 0, 16, 0), op(8, 1, 16, 0), op(0, 3, 5, 0)),
		"timeout":      cat(op(8, 0, 16, 0), op(16, 2, 8, 60)),
		"overflow":     cat(op(8, 0, 1400, 0), op(9, 0, 1400, 0), op(10, 0, 1400, 0), op(1, 175, 8, 0)),
		"icmp-echo":    cat(op(8|32, 0, 8, 0), op(32, 1, 8, 0)),
		"two-sources":  cat(op(8, 0, 8, 0), op(8|4, 0, 8, 0), op(4, 1, 3, 0), op(0, 1, 3, 0)),
		"too-big":      cat(op(8, 0, 8, 0), op(0, 8190, 1400, 0)),
		"inconsistent": cat(op(0, 4, 5, 0), op(0, 4, 9, 0)),
	}
}

// unreachSeeds are the seed corpus of FuzzUnreachable, by name: a code,
// then the packet.
func unreachSeeds(t testing.TB) map[string][]byte {
	udp := udpPacket(t, peer, host, 5000, 9, pattern(0, 20, 1))
	with := func(code byte, pkt []byte) []byte { return append([]byte{code}, pkt...) }
	mut := func(f func(p []byte)) []byte { p := bytes.Clone(udp); f(p); return with(3, p) }
	return map[string][]byte{
		"port":                      with(3, udp),
		"protocol":                  with(2, udp),
		"loopback":                  with(3, udpPacket(t, lo, lo, 5000, 9, nil)),
		"from-the-host":             with(3, udpPacket(t, host, peer, 5000, 9, nil)),
		"from-a-peer-to-loopback":   with(3, udpPacket(t, peer, lo, 5000, 9, nil)),
		"from-a-remote-host":        with(3, udpPacket(t, remote, host, 5000, 9, nil)),
		"options":                   with(3, rawPacket(peer, host, 17, 60, 0, pattern(0, 8, 1))),
		"header-only":               with(3, udp[:20]),
		"short":                     with(3, udp[:19]),
		"empty":                     {},
		"IHL-0":                     mut(func(p []byte) { p[0] = 0x40 }),
		"IHL-past-the-end":          with(3, append([]byte{0x4f}, udp[1:30]...)),
		"total-length-0":            mut(func(p []byte) { p[2], p[3] = 0, 0 }),
		"total-length-65535":        mut(func(p []byte) { p[2], p[3] = 0xff, 0xff }),
		"total-length-below-header": mut(func(p []byte) { p[2], p[3] = 0, 19 }),
		"later-fragment":            with(3, rawPacket(peer, host, 17, 20, 0x0003, pattern(24, 8, 1))),
		"about-an-echo-request":     with(3, rawPacket(peer, host, 1, 20, 0, icmpMsg(8))),
		"about-an-unreachable":      with(3, rawPacket(peer, host, 1, 20, 0, icmpMsg(3))),
	}
}

// FuzzUnreachable asks the Stack for an ICMP error about arbitrary bytes,
// as a confused or hostile transport might pass back: the first byte is
// the code. It must never panic or change the bytes, and what it emits
// must be well-formed (checkEvents).
func FuzzUnreachable(f *testing.F) {
	for _, seed := range unreachSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		s := newStack(t)
		resolve(t, s, t0, peerMAC, peer)
		resolve(t, s, t0, gwMAC, gw)
		orig := bytes.Clone(in)
		s.Unreachable(t0, in[1:], in[0])
		if !bytes.Equal(in, orig) {
			t.Fatal("Unreachable changed the packet")
		}
		checkEvents(t, s.Out())
	})
}

// sendSeeds are the seed corpus of FuzzSend, by name: the payload's
// length (2 bytes), then flags (bit 0 DF, bits 1-2 the destination).
func sendSeeds() map[string][]byte {
	op := func(n int, flags byte) []byte { return []byte{byte(n >> 8), byte(n), flags} }
	return map[string][]byte{
		"empty":           op(0, 0),
		"1480":            op(1480, 0),
		"1481":            op(1481, 0),
		"1481-DF":         op(1481, 1),
		"3000":            op(3000, 0),
		"3000-off-link":   op(3000, 2),
		"3000-broadcast":  op(3000, 4),
		"3000-loopback":   op(3000, 6),
		"65515":           op(65515, 0),
		"65516":           op(65516, 0),
		"65535-loopback":  op(65535, 6),
		"1488-DF-offlink": op(1488, 3),
	}
}

// FuzzSend sends a datagram of any length to a peer, through the gateway,
// to broadcast or over loopback, with or without DF. Send must fail
// exactly when the datagram cannot go, emit well-formed frames, and what
// it sends to the peer must reassemble, at a Stack there, into the
// payload, byte for byte.
func FuzzSend(f *testing.F) {
	for _, seed := range sendSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 3 {
			return
		}
		n, df := int(binary.BigEndian.Uint16(in)), in[2]&1 != 0
		dst := []netip.Addr{peer, remote, subnetBC, lo}[in[2]>>1&3]
		s := newStack(t)
		resolve(t, s, t0, peerMAC, peer)
		resolve(t, s, t0, gwMAC, gw)
		payload := pattern(0, n, uint16(n))
		send := s.Send
		if df {
			send = s.SendDF
		}
		err := send(t0, proto.UDP, netip.Addr{}, dst, payload)
		tooBig := n > ip.MaxLoopback || df && dst != lo && n > ip.MaxPayload
		if tooBig != errors.Is(err, ip.ErrTooBig) || !tooBig && err != nil {
			t.Fatalf("Send(%d bytes to %v, DF %v) = %v", n, dst, df, err)
		}
		evs := s.Out()
		if dst == lo || tooBig {
			return
		}
		checkEvents(t, evs)
		at := peer // the receiver's address: the destination, or a peer for broadcast
		if dst == remote {
			at = remote
		}
		peerStack := newStack(t, func(c *ip.Config) { c.MAC, c.Addr, c.Gateway = peerMAC, netip.PrefixFrom(at, 24), netip.Addr{} })
		var got []ip.Event
		for _, ev := range evs {
			f := bytes.Clone(ev.Frame)
			copy(f[0:6], peerMAC[:]) // as if the peer were the gateway
			peerStack.FrameIn(t0, f)
			got = append(got, peerStack.Out()...)
		}
		if len(got) != 1 || got[0].Kind != ip.Deliver || !bytes.Equal(got[0].Payload, payload) {
			t.Fatalf("%d bytes to %v: the peer got %v", n, dst, kinds(got))
		}
	})
}

// TestWriteSeedCorpus writes the seed corpora to testdata/fuzz when run
// with -update-corpus; otherwise it checks that they are there.
func TestWriteSeedCorpus(t *testing.T) {
	corpora := map[string]map[string][]byte{
		"FuzzFrameIn":     frameSeeds(t),
		"FuzzReassembly":  reasmSeeds(),
		"FuzzUnreachable": unreachSeeds(t),
		"FuzzSend":        sendSeeds(),
	}
	for fuzz, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if *updateCorpus {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		stale := 0
		for name, b := range seeds {
			file := filepath.Join(dir, seedFileName(name))
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if *updateCorpus {
				if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if got, err := os.ReadFile(file); err != nil || string(got) != want {
				stale++
			}
		}
		if stale > 0 {
			t.Errorf("%d seeds of %s missing or stale: run go test ./servers/ip -run TestWriteSeedCorpus -args -update-corpus", stale, dir)
		}
	}
}

// seedFileName makes a corpus file name from a seed's name.
func seedFileName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

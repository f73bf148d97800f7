package checker_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/newtsim/newtsim/servers/checker"
	"github.com/newtsim/newtsim/servers/proto"
)

var (
	src = netip.MustParseAddr("198.18.0.1")
	dst = netip.MustParseAddr("198.18.0.2")
)

// recorder is a testing.TB that notes failures instead of failing, so that
// a test can check that a checker fails.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
}
func (r *recorder) Fatal(args ...any) { r.failed, r.msg = true, fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fails reports whether check fails, run the way a test runs it.
func fails(t *testing.T, check func(testing.TB)) (bool, string) {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r)
	}()
	<-done
	return r.failed, r.msg
}

// segment builds a transport segment with gopacket, checksum filled in.
func segment(t *testing.T, l interface {
	gopacket.SerializableLayer
	SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
}, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	if err := l.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, l, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCheckers(t *testing.T) {
	syn := segment(t, &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Ack: 7, SYN: true, ACK: true, Window: 65535}, nil)
	data := segment(t, &layers.UDP{SrcPort: 53, DstPort: 5353}, []byte("answer"))
	corrupt := append([]byte(nil), data...)
	corrupt[len(corrupt)-1] ^= 1
	tests := []struct {
		name  string
		check func(testing.TB)
		fail  bool
	}{
		{"a SYN-ACK as it is", func(t testing.TB) {
			checker.Segment(t, proto.TCP, src, dst, syn, checker.Src(src), checker.Dst(dst), checker.Protocol(proto.TCP),
				checker.TCP(checker.Flags(checker.SYN|checker.ACK), checker.SeqNum(1000), checker.AckNum(7),
					checker.SrcPort(40000), checker.DstPort(80), checker.Window(65535), checker.Payload(nil)))
		}, false},
		{"wrong flags", func(t testing.TB) {
			checker.Segment(t, proto.TCP, src, dst, syn, checker.TCP(checker.Flags(checker.SYN)))
		}, true},
		{"flags under a mask", func(t testing.TB) {
			checker.Segment(t, proto.TCP, src, dst, syn, checker.TCP(checker.FlagsMasked(checker.ACK, checker.ACK|checker.RST)))
		}, false},
		{"wrong sequence number", func(t testing.TB) {
			checker.Segment(t, proto.TCP, src, dst, syn, checker.TCP(checker.SeqNum(1001)))
		}, true},
		{"a TCP checksum over other addresses", func(t testing.TB) {
			checker.Segment(t, proto.TCP, src, netip.MustParseAddr("198.18.0.9"), syn, checker.TCP())
		}, true},
		{"not TCP", func(t testing.TB) {
			checker.Segment(t, proto.UDP, src, dst, data, checker.TCP())
		}, true},
		{"a UDP datagram as it is", func(t testing.TB) {
			checker.Segment(t, proto.UDP, src, dst, data, checker.Addrs(src, dst), checker.TTL(64), checker.DontFragment(),
				checker.UDP(checker.SrcPort(53), checker.DstPort(5353), checker.Payload([]byte("answer"))))
		}, false},
		{"wrong payload", func(t testing.TB) {
			checker.Segment(t, proto.UDP, src, dst, data, checker.UDP(checker.Payload([]byte("question"))))
		}, true},
		{"corrupt UDP", func(t testing.TB) {
			checker.Segment(t, proto.UDP, src, dst, corrupt, checker.UDP())
		}, true},
		{"wrong address", func(t testing.TB) {
			checker.Segment(t, proto.UDP, src, dst, data, checker.Src(dst))
		}, true},
		{"wrong protocol", func(t testing.TB) {
			checker.Segment(t, proto.UDP, src, dst, data, checker.Protocol(proto.ICMP))
		}, true},
		{"a short TCP header", func(t testing.TB) {
			checker.Segment(t, proto.TCP, src, dst, syn[:12], checker.TCP())
		}, true},
		{"a short TCP header, not looked at", func(t testing.TB) {
			checker.Segment(t, proto.TCP, src, dst, syn[:12], checker.Protocol(proto.TCP), checker.IPPayload(syn[:12]))
		}, false},
		{"a bad IPv4 header checksum", func(t testing.TB) {
			pkt := make([]byte, 28)
			pkt[0], pkt[3], pkt[9] = 0x45, 28, proto.UDP
			checker.IPv4(t, pkt)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if failed, msg := fails(t, tt.check); failed != tt.fail {
				t.Errorf("failed %v (%s), want %v", failed, msg, tt.fail)
			}
		})
	}
}

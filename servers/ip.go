package servers

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
	"github.com/newtsim/newtsim/servers/sys"
)

// ipServer is the IPv4 server: the ip engine (package servers/ip) fed with
// the frames coming up, its frames going down in buffers of its own pool,
// its timers run on kernel alarms.
type ipServer struct {
	down    string
	st      *ip.Stack
	alarm   sys.Deadline
	udp     string
	tcp     string
	undeliv *prometheus.CounterVec
	nobuf   prometheus.Counter
	drops   *drops
}

// IP starts the ip role: ARP, IPv4, ICMP and routing, over the ip engine.
func IP(s *sys.Server) (sys.Handler, error) {
	p := &ipServer{}
	fs := flag.NewFlagSet("ip", flag.ContinueOnError)
	addr := fs.String("addr", "198.18.0.2/24", "the host's address and subnet")
	mac := fs.String("mac", "02:00:5e:00:00:02", "the interface's MAC address")
	fs.StringVar(&p.down, "down", "pf", "the server below")
	fs.StringVar(&p.udp, "udp", "udp", "the UDP server")
	fs.StringVar(&p.tcp, "tcp", "tcp", "the TCP server")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	a, err := netip.ParsePrefix(*addr)
	if err != nil {
		return nil, fmt.Errorf("ip: --addr: %w", err)
	}
	hw, err := net.ParseMAC(*mac)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("ip: --mac %q: %v", *mac, err)
	}
	c := ip.Config{Addr: a}
	copy(c.MAC[:], hw)
	rand.Read(c.IDKey[:]) // the IP ID hash's secret; never fails
	if p.st, err = ip.New(c); err != nil {
		return nil, err
	}
	p.undeliv = counter(s, "ip", "undelivered_packets_total", "Packets for a transport not wired yet, by protocol.", "proto")
	p.nobuf = counter(s, "ip", "no_buffer_total", "Frames and datagrams not passed on for want of a buffer.").WithLabelValues()
	p.drops = newDrops(s, "ip", p.st.Drops)
	return p, nil
}

func (p *ipServer) Handle(s *sys.Server, m *ipc.Message) error {
	now := time.Now()
	switch m.Type {
	case ipc.FrameRx:
		return p.doFrame(s, now, m)
	case ipc.Alarm:
		p.alarm.Expired()
		p.st.Tick(now)
		return p.events(s, now)
	case ipc.Datagram:
		return p.doDatagram(s, now, m)
	case ipc.Unreachable:
		return p.doUnreachable(s, now, m)
	}
	return nil
}

// doFrame takes a frame from below.
func (p *ipServer) doFrame(s *sys.Server, now time.Time, m *ipc.Message) error {
	var f packet.Frame
	f.Decode(m)
	b, err := s.Buffer(m, f.Buf)
	if err != nil {
		return nil
	}
	p.st.FrameIn(now, b)
	return p.eventsThenRelease(s, now, f.Buf)
}

// doDatagram sends a transport's segment.
func (p *ipServer) doDatagram(s *sys.Server, now time.Time, m *ipc.Message) error {
	var d packet.Datagram
	d.Decode(m)
	b, err := s.Buffer(m, d.Buf)
	if err != nil {
		return nil
	}
	if seg, ok := segmentAt(b, uint64(d.Off)); ok {
		p.st.SendSegmented(now, d.Proto, d.Src, d.Dst, seg, int(d.SegSize)) // errors are counted as drops
	}
	return p.eventsThenRelease(s, now, d.Buf)
}

// doUnreachable answers the source of a datagram of ours no socket
// wanted.
func (p *ipServer) doUnreachable(s *sys.Server, now time.Time, m *ipc.Message) error {
	var u packet.Unreachable
	u.Decode(m)
	b, err := s.Buffer(m, u.Buf)
	if err != nil {
		return nil
	}
	p.st.Unreachable(now, b, proto.CodePortUnreachable)
	return p.eventsThenRelease(s, now, u.Buf)
}

// eventsThenRelease handles the engine's events, which may point into the
// buffer, before the buffer goes back.
func (p *ipServer) eventsThenRelease(s *sys.Server, now time.Time, ref pool.Ref) error {
	err := p.events(s, now)
	if rerr := s.Release(ref); err == nil {
		err = rerr
	}
	return err
}

// icmpError passes an ICMP error about one of our datagrams to its
// transport (RFC 1122: errors go to the transport), with the addresses
// and ports of the datagram it quotes, which the engine has checked: to
// tcp with the quoted sequence number, to udp as well. Errors about other
// protocols are counted, not used.
func (p *ipServer) icmpError(s *sys.Server, ev ip.Event) {
	local, remote := netip.AddrPortFrom(ev.Src, ev.SrcPort), netip.AddrPortFrom(ev.Dst, ev.DstPort)
	var m ipc.Message
	switch {
	case ev.Proto == proto.TCP && p.tcp != "":
		packet.ICMPError{Local: local, Remote: remote, Seq: binary.BigEndian.Uint32(ev.Quote[4:]),
			Type: ev.Type, Code: ev.Code, MTU: ev.MTU}.Encode(&m) // the engine quotes 8 bytes at least
		s.SendTo(p.tcp, &m)
	case ev.Proto == proto.UDP && p.udp != "":
		packet.ICMPError{Local: local, Remote: remote, Type: ev.Type, Code: ev.Code, MTU: ev.MTU}.Encode(&m)
		s.SendTo(p.udp, &m)
	default:
		p.undeliv.WithLabelValues("1").Inc()
	}
}

// events sends what the engine produced and keeps its alarm set.
func (p *ipServer) events(s *sys.Server, now time.Time) error {
	p.drops.update(now)
	for _, ev := range p.st.Out() {
		switch ev.Kind {
		case ip.FrameOut:
			var m ipc.Message
			packet.Frame{Type: ipc.FrameTx, SegSize: ev.SegSize}.Encode(&m)
			// A send that fails is a drop, counted by sys.
			if err := s.SendCopy(p.down, &m, ev.Frame); errors.Is(err, sys.ErrNoBuffer) {
				p.nobuf.Inc()
			}
		case ip.ICMPError:
			p.icmpError(s, ev)
		case ip.Deliver:
			if ev.Proto == proto.ICMP { // echo replies and the like: no one asks for them
				p.undeliv.WithLabelValues("1").Inc()
				continue
			}
			up := ""
			switch ev.Proto {
			case proto.UDP:
				up = p.udp
			case proto.TCP:
				up = p.tcp
			}
			if up == "" {
				p.undeliv.WithLabelValues(strconv.Itoa(int(ev.Proto))).Inc()
				continue
			}
			// The whole packet goes up, so udp can hand it back for an
			// ICMP error without ip keeping anything.
			var m ipc.Message
			packet.Datagram{Off: len(ev.Packet) - len(ev.Payload)}.Encode(&m)
			err := s.SendCopy(up, &m, ev.Packet)
			switch {
			case errors.Is(err, sys.ErrNoBuffer):
				p.nobuf.Inc()
			case err != nil:
				p.undeliv.WithLabelValues(strconv.Itoa(int(ev.Proto))).Inc()
			}
		}
	}
	if at, ok := p.st.Deadline(); ok {
		return p.alarm.Set(s, now, at)
	}
	return nil
}

// segmentAt returns b from off, a transport's offset of its segment in
// its buffer, and whether off is within b.
func segmentAt(b []byte, off uint64) ([]byte, bool) {
	if off > uint64(len(b)) { // compared unsigned: no int conversion to go negative
		return nil, false
	}
	return b[off:], true
}

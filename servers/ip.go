package servers

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/ipc"
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
	alarmAt time.Time
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
		b, ref, err := s.Buffer(m, 0)
		if err != nil {
			return nil
		}
		p.st.FrameIn(now, b)
		// Events may point into the frame: handle them before the buffer
		// goes back.
		err = p.events(s, now)
		if rerr := s.Release(ref); err == nil {
			err = rerr
		}
		return err
	case ipc.Alarm:
		p.alarmAt = time.Time{}
		p.st.Tick(now)
		return p.events(s, now)
	case ipc.Datagram:
		// A transport's segment to send: Arg[2], Arg[3] the source and
		// destination addresses, Arg[4] the protocol.
		b, ref, err := s.Buffer(m, 0)
		if err != nil {
			return nil
		}
		off := int(m.Arg[1])
		if off <= len(b) {
			src := netip.AddrFrom4(u32(m.Arg[2]))
			dst := netip.AddrFrom4(u32(m.Arg[3]))
			p.st.Send(now, uint8(m.Arg[4]), src, dst, b[off:]) // errors are counted as drops
		}
		err = p.events(s, now)
		if rerr := s.Release(ref); err == nil {
			err = rerr
		}
		return err
	case ipc.Unreachable:
		// A datagram of ours no socket wanted: answer its source.
		b, ref, err := s.Buffer(m, 0)
		if err != nil {
			return nil
		}
		p.st.Unreachable(now, b, ip.CodePortUnreachable)
		err = p.events(s, now)
		if rerr := s.Release(ref); err == nil {
			err = rerr
		}
		return err
	}
	return nil
}

// icmp passes an ICMP port unreachable about one of our UDP datagrams to
// the udp server (RFC 1122: errors go to the transport), with the addresses
// and ports of the datagram it quotes. Other ICMP is counted, not used.
func (p *ipServer) icmp(s *sys.Server, msg []byte) {
	const hdr = 8 // type, code, checksum, unused
	if len(msg) < hdr+20 || msg[0] != 3 || msg[1] != ip.CodePortUnreachable || p.udp == "" {
		p.undeliv.WithLabelValues("1").Inc()
		return
	}
	orig := msg[hdr:]
	ihl := int(orig[0]&0xf) * 4
	if ihl < 20 || len(orig) < ihl+4 || orig[9] != proto.UDP {
		p.undeliv.WithLabelValues("1").Inc()
		return
	}
	local := netip.AddrFrom4([4]byte(orig[12:16]))
	remote := netip.AddrFrom4([4]byte(orig[16:20]))
	m := ipc.Message{Type: ipc.PortUnreachable, Arg: [ipc.NumArgs]uint64{0,
		Addr4(local), uint64(orig[ihl])<<8 | uint64(orig[ihl+1]),
		Addr4(remote), uint64(orig[ihl+2])<<8 | uint64(orig[ihl+3])}}
	s.SendTo(p.udp, &m)
}

// events sends what the engine produced and keeps its alarm set.
func (p *ipServer) events(s *sys.Server, now time.Time) error {
	p.drops.update(now, p.st.Drops)
	for _, ev := range p.st.Out() {
		switch ev.Kind {
		case ip.FrameOut:
			ref, buf, err := s.Pool.Alloc()
			if err != nil {
				p.nobuf.Inc()
				continue
			}
			n := copy(buf, ev.Frame)
			m := ipc.Message{Type: ipc.FrameTx, Arg: [ipc.NumArgs]uint64{uint64(s.Pool.Slice(ref, n))}}
			if err := s.SendTo(p.down, &m); err != nil {
				s.Pool.Free(ref)
				if !errors.Is(err, ipc.ErrDeadEndpoint) {
					return err
				}
			}
		case ip.Deliver:
			if ev.Proto == proto.ICMP {
				p.icmp(s, ev.Payload)
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
			ref, buf, err := s.Pool.Alloc()
			if err != nil {
				p.nobuf.Inc()
				continue
			}
			n := copy(buf, ev.Packet)
			m := ipc.Message{Type: ipc.Datagram, Arg: [ipc.NumArgs]uint64{uint64(s.Pool.Slice(ref, n)),
				uint64(len(ev.Packet) - len(ev.Payload))}}
			if err := s.SendTo(up, &m); err != nil {
				s.Pool.Free(ref)
				p.undeliv.WithLabelValues(strconv.Itoa(int(ev.Proto))).Inc()
			}
		}
	}
	if at, ok := p.st.Deadline(); ok && (p.alarmAt.IsZero() || at.Before(p.alarmAt)) {
		p.alarmAt = at
		d := max(time.Until(at), time.Millisecond)
		return s.K.Send(&ipc.Message{Dst: ipc.Kernel, Type: ipc.SetAlarm, Arg: [ipc.NumArgs]uint64{uint64(d)}})
	}
	return nil
}

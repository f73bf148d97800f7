package servers

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/nic/link"
	"github.com/newtsim/newtsim/nic/pcap"
	"github.com/newtsim/newtsim/nic/tap"
	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/pf"
	"github.com/newtsim/newtsim/servers/udp"
)

// The packet path's roles (docs/PACKET_PATH.md): nic, driver, pf and ip
// pass frames up and down as buffer references; none copies a frame but the
// nic, from the device into its pool, and ip, when it builds one.
func init() {
	Register("nic", newNIC)
	Register("driver", newDriver)
	Register("pf", newPF)
	Register("ip", newIP)
}

// counter makes a counter vector registered with the server.
func counter(s *Server, subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: subsystem,
		Name: name, Help: help}, labels)
	s.Registry.MustRegister(c)
	return c
}

// forward sends the message on to the named peer, unchanged but for its
// destination.
func forward(s *Server, to string, m *ipc.Message) error {
	f := *m
	return s.SendTo(to, &f)
}

// nic is the device model: with the `tap` backend a reader goroutine puts
// every frame from the TAP device into a buffer of the nic's pool and hands
// it up (FrameRx); frames coming down (FrameTx) are written to the device
// and their buffers go back. With no backend the cable is unplugged: frames
// down are counted and dropped.
type nic struct {
	up      string
	dev     *tap.Device
	pcap    *pcap.Writer
	frames  *prometheus.CounterVec
	dropped *prometheus.CounterVec
	// The wire backend: frames going down pass through the link model
	// and come up at the peer nic.
	peer   string
	linkMu sync.Mutex
	link   *link.Link
	kick   chan struct{}
}

func newNIC(s *Server) (Handler, error) {
	n := &nic{}
	fs := flag.NewFlagSet("nic", flag.ContinueOnError)
	backend := fs.String("backend", "none", "none (no cable) or tap")
	ifname := fs.String("ifname", "nts%d", "the TAP device's name")
	nsPath := fs.String("netns", "", "attach to the TAP device in this network namespace (a file such as /var/run/netns/NAME)")
	pcapPath := fs.String("pcap", "", "record every frame in this pcap file")
	fs.StringVar(&n.up, "up", "driver", "the driver above the device")
	fs.StringVar(&n.peer, "wire-peer", "", "wire backend: the nic at the other end of the wire")
	linkParams := fs.String("link", "", "wire backend: the link model, e.g. bw=100Mbit,delay=200us,loss=0.1,seed=1 (docs/LINK.md)")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	n.frames = counter(s, "nic", "frames_total", "Frames the device moved, by direction.", "direction")
	n.dropped = counter(s, "nic", "dropped_frames_total", "Frames the device dropped, by reason.", "reason")
	if *pcapPath != "" {
		w, err := pcap.Create(*pcapPath)
		if err != nil {
			return nil, err
		}
		n.pcap = w
	}
	switch *backend {
	case "none":
	case "wire":
		p, err := link.ParseParams(*linkParams)
		if err != nil {
			return nil, err
		}
		if n.link, err = link.New(p); err != nil {
			return nil, err
		}
		if n.peer == "" {
			return nil, fmt.Errorf("nic: the wire backend needs --wire-peer")
		}
		n.kick = make(chan struct{}, 1)
	case "tap":
		open := func() (*tap.Device, error) { return tap.Open(*ifname) }
		if *nsPath != "" {
			open = func() (*tap.Device, error) { return tap.OpenIn(*nsPath, *ifname) }
		}
		d, err := open()
		if err != nil {
			return nil, err
		}
		n.dev = d
		s.Log.Printf("tap device %s", d.Name())
	default:
		return nil, fmt.Errorf("nic: backend %q: want none, tap or wire", *backend)
	}
	return n, nil
}

// Run starts the device's receive side, then serves.
func (n *nic) Run(s *Server) error {
	if n.dev != nil {
		s.SendFromGoroutines()
		go n.receive(s)
	}
	if n.link != nil {
		s.SendFromGoroutines()
		go n.wire(s)
	}
	return s.Serve(n)
}

// wire delivers the frames the link model lets through, when they arrive,
// to the nic at the other end, in buffers of this nic's pool.
func (n *nic) wire(s *Server) {
	timer := time.NewTimer(time.Hour)
	for {
		n.linkMu.Lock()
		at, ok := n.link.NextArrival()
		n.linkMu.Unlock()
		wait := time.Hour
		if ok {
			wait = max(time.Until(at), 0)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-n.kick:
			continue
		}
		n.linkMu.Lock()
		frames := n.link.Receive(time.Now())
		n.linkMu.Unlock()
		for _, f := range frames {
			ref, buf, err := s.Pool.Alloc()
			if err != nil {
				n.dropped.WithLabelValues("no-buffer").Inc()
				continue
			}
			k := copy(buf, f)
			m := ipc.Message{Type: ipc.FrameRx, Arg: [ipc.NumArgs]uint64{uint64(s.Pool.Slice(ref, k))}}
			if err := s.TrySendTo(n.peer, &m); err != nil {
				s.Pool.Free(ref) // the far end's ring is full: the frame is lost, as on a wire
				n.dropped.WithLabelValues("send").Inc()
				continue
			}
			n.frames.WithLabelValues("wire").Inc()
		}
	}
}

func (n *nic) receive(s *Server) {
	scratch := make([]byte, tap.MaxFrame)
	for {
		ref, buf, err := s.Pool.Alloc()
		if err != nil {
			// No buffer: the frame is read and dropped, as a NIC with an
			// empty RX ring drops.
			if _, err := n.dev.Read(scratch); err != nil {
				s.Log.Printf("tap: %v", err)
				os.Exit(1)
			}
			n.dropped.WithLabelValues("no-buffer").Inc()
			continue
		}
		k, err := n.dev.Read(buf[:tap.MaxFrame])
		if err != nil {
			s.Log.Printf("tap: %v", err)
			os.Exit(1) // the kernel restarts the nic
		}
		if n.pcap != nil {
			n.pcap.Write(time.Now(), buf[:k])
			n.pcap.Flush()
		}
		n.frames.WithLabelValues("rx").Inc()
		m := ipc.Message{Type: ipc.FrameRx, Arg: [ipc.NumArgs]uint64{uint64(s.Pool.Slice(ref, k))}}
		if err := s.SendTo(n.up, &m); err != nil {
			s.Pool.Free(ref)
			n.dropped.WithLabelValues("send").Inc()
		}
	}
}

func (n *nic) Handle(s *Server, m *ipc.Message) error {
	if m.Type == ipc.FrameRx && n.link != nil {
		// A frame off the wire, in the other nic's buffer: up it goes.
		if b, _, err := s.Buffer(m, 0); err == nil && n.pcap != nil {
			n.pcap.Write(time.Now(), b)
			n.pcap.Flush()
		}
		n.frames.WithLabelValues("rx").Inc()
		return forward(s, n.up, m)
	}
	if m.Type != ipc.FrameTx {
		return nil
	}
	b, ref, err := s.Buffer(m, 0)
	if err != nil {
		return nil // counted by Buffer
	}
	switch {
	case n.link != nil:
		if n.pcap != nil {
			n.pcap.Write(time.Now(), b)
			n.pcap.Flush()
		}
		n.linkMu.Lock()
		n.link.Send(time.Now(), b) // the link keeps a copy
		n.linkMu.Unlock()
		n.frames.WithLabelValues("tx").Inc()
		select {
		case n.kick <- struct{}{}:
		default:
		}
	case n.dev == nil:
		n.dropped.WithLabelValues("no-cable").Inc()
	default:
		if n.pcap != nil {
			n.pcap.Write(time.Now(), b)
			n.pcap.Flush()
		}
		if err := n.dev.Write(b); err != nil {
			n.dropped.WithLabelValues("device").Inc()
		} else {
			n.frames.WithLabelValues("tx").Inc()
		}
	}
	return s.Release(ref)
}

// driver moves descriptors between the device and the stack: FrameRx up,
// FrameTx down. It copies nothing.
type driver struct{ up, down string }

func newDriver(s *Server) (Handler, error) {
	d := &driver{}
	fs := flag.NewFlagSet("driver", flag.ContinueOnError)
	fs.StringVar(&d.up, "up", "pf", "the server above")
	fs.StringVar(&d.down, "down", "nic", "the device below")
	return d, fs.Parse(s.Opts.Args)
}

func (d *driver) Handle(s *Server, m *ipc.Message) error {
	switch m.Type {
	case ipc.FrameRx:
		return forward(s, d.up, m)
	case ipc.FrameTx:
		return forward(s, d.down, m)
	}
	return nil
}

// pfServer checks every frame passing through against the rules in force;
// a dropped frame's buffer goes back to its owner.
type pfServer struct {
	up, down string
	filter   *pf.Filter
	verdicts *prometheus.CounterVec
}

func newPF(s *Server) (Handler, error) {
	p := &pfServer{}
	fs := flag.NewFlagSet("pf", flag.ContinueOnError)
	fs.StringVar(&p.up, "up", "ip", "the server above")
	fs.StringVar(&p.down, "down", "driver", "the server below")
	rules := fs.String("rules", "", "rules file (default: allow everything)")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	rs := &pf.Ruleset{}
	if *rules != "" {
		f, err := os.Open(*rules)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if rs, err = pf.Parse(f, *rules); err != nil {
			return nil, err
		}
	}
	p.filter = pf.NewFilter(rs)
	p.verdicts = counter(s, "pf", "frames_total", "Frames checked, by direction and verdict.", "direction", "verdict")
	s.Registry.MustRegister(&pfHits{p.filter})
	if *rules != "" {
		go p.reloadOnHangup(s, *rules)
	}
	return p, nil
}

// reloadOnHangup reloads the rules file on SIGHUP, without a restart. A
// file that does not parse is refused, with its line and reason in the log,
// and the rules in force stay. Filter.Reload is safe beside the loop's
// checks: it swaps the rules and their counters in one atomic step.
func (p *pfServer) reloadOnHangup(s *Server, path string) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for range hup {
		f, err := os.Open(path)
		if err == nil {
			err = p.filter.Reload(f, path)
			f.Close()
		}
		if err != nil {
			s.Log.Printf("rules not reloaded: %v", err)
			continue
		}
		s.Log.Printf("rules reloaded from %s: %d rules", path, len(p.filter.Ruleset().Rules))
	}
}

func (p *pfServer) Handle(s *Server, m *ipc.Message) error {
	var dir pf.Direction
	var next string
	switch m.Type {
	case ipc.FrameRx:
		dir, next = pf.In, p.up
	case ipc.FrameTx:
		dir, next = pf.Out, p.down
	default:
		return nil
	}
	b, ref, err := s.Buffer(m, 0)
	if err != nil {
		return nil
	}
	// The action decides; the error only says why (a frame that is not
	// IPv4, such as ARP, is allowed unchecked; a malformed one dropped).
	act, err := p.filter.CheckFrame(dir, b)
	verdict := act.String()
	switch {
	case errors.Is(err, pf.ErrNotIPv4):
		verdict = "not-ipv4"
	case err != nil:
		verdict = "malformed"
	}
	p.verdicts.WithLabelValues(dir.String(), verdict).Inc()
	if act != pf.Allow {
		return s.Release(ref)
	}
	return forward(s, next, m)
}

// pfHits exports the rule counters of the filter in force.
type pfHits struct{ f *pf.Filter }

var (
	descRuleHits = prometheus.NewDesc("newtsim_pf_rule_hits_total",
		"Packets each rule matched (rule -1: the default).", []string{"rule", "line", "action"}, nil)
	descReloads = prometheus.NewDesc("newtsim_pf_reloads_total",
		"Rules file reloads, by result (ok, or refused with the rules in force kept).", []string{"result"}, nil)
)

func (h *pfHits) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRuleHits
	ch <- descReloads
}

func (h *pfHits) Collect(ch chan<- prometheus.Metric) {
	st := h.f.Stats()
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(st.Reloads), "ok")
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(st.FailedReloads), "refused")
	for _, r := range h.f.Hits() {
		ch <- prometheus.MustNewConstMetric(descRuleHits, prometheus.CounterValue, float64(r.Hits),
			strconv.Itoa(r.Index), strconv.Itoa(r.Line), r.Action.String())
	}
}

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

func newIP(s *Server) (Handler, error) {
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

func (p *ipServer) Handle(s *Server, m *ipc.Message) error {
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
func (p *ipServer) icmp(s *Server, msg []byte) {
	const hdr = 8 // type, code, checksum, unused
	if len(msg) < hdr+20 || msg[0] != 3 || msg[1] != ip.CodePortUnreachable || p.udp == "" {
		p.undeliv.WithLabelValues("1").Inc()
		return
	}
	orig := msg[hdr:]
	ihl := int(orig[0]&0xf) * 4
	if ihl < 20 || len(orig) < ihl+4 || orig[9] != udp.ProtoUDP {
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

// u32 unpacks an IPv4 address carried in a message word.
func u32(w uint64) [4]byte { return [4]byte{byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w)} }

// Addr4 packs an IPv4 address into a message word; anything else (the zero
// Addr of an unbound socket or an end of file, say) packs as 0.
func Addr4(a netip.Addr) uint64 {
	if !a.Unmap().Is4() {
		return 0
	}
	b := a.Unmap().As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// events sends what the engine produced and keeps its alarm set.
func (p *ipServer) events(s *Server, now time.Time) error {
	p.drops.update(now, p.st.Drops)
	for _, ev := range p.st.Events() {
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
			if ev.Proto == ip.ProtoICMP {
				p.icmp(s, ev.Payload)
				continue
			}
			up := ""
			switch ev.Proto {
			case udp.ProtoUDP:
				up = p.udp
			case udp.ProtoTCP:
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
	if at, ok := p.st.NextDeadline(); ok && (p.alarmAt.IsZero() || at.Before(p.alarmAt)) {
		p.alarmAt = at
		d := max(time.Until(at), time.Millisecond)
		return s.K.Send(&ipc.Message{Dst: ipc.Kernel, Type: ipc.SetAlarm, Arg: [ipc.NumArgs]uint64{uint64(d)}})
	}
	return nil
}

// drops exports an engine's drop counters, by reason. An engine belongs to
// its server's loop, so the loop copies the counters here at most every
// 100 ms and a scrape reads the copy.
type drops struct {
	desc  *prometheus.Desc
	mu    sync.Mutex
	by    map[string]uint64
	taken time.Time
}

func newDrops(s *Server, engine string, read func() map[string]uint64) *drops {
	d := &drops{desc: prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, engine, "dropped_total"),
		"What the "+engine+" engine dropped, by reason.", []string{"reason"}, nil), by: read()}
	s.Registry.MustRegister(d)
	return d
}

func (d *drops) update(now time.Time, read func() map[string]uint64) {
	if now.Sub(d.taken) < 100*time.Millisecond {
		return
	}
	by := read()
	d.mu.Lock()
	d.by, d.taken = by, now
	d.mu.Unlock()
}

func (d *drops) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

func (d *drops) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for r, n := range d.by {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(n), r)
	}
}

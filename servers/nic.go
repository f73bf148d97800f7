package servers

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/nic/link"
	"github.com/newtsim/newtsim/nic/pcap"
	"github.com/newtsim/newtsim/nic/tap"
	"github.com/newtsim/newtsim/servers/sys"
)

// nic is the device model: with the `tap` backend a reader goroutine puts
// every frame from the TAP device into a buffer of the nic's pool and hands
// it up (FrameRx); frames coming down (FrameTx) are written to the device
// and their buffers go back. With TSO (the default on a TAP), a frame
// coming down with a segment size (packet.Frame.SegSize) is a TCP segment
// of up to 64 KiB that Linux cuts into segments of that size, as a
// virtio-net device's (docs/PACKET_PATH.md). With no backend the cable is
// unplugged: frames down are counted and dropped.
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

// NIC starts the nic role: the network card, on a TAP device, a simulated wire or none.
func NIC(s *sys.Server) (sys.Handler, error) {
	n := &nic{}
	fs := flag.NewFlagSet("nic", flag.ContinueOnError)
	backend := fs.String("backend", "none", "none (no cable) or tap")
	ifname := fs.String("ifname", "nts%d", "the TAP device's name")
	nsPath := fs.String("netns", "", "attach to the TAP device in this network namespace (a file such as /var/run/netns/NAME)")
	pcapPath := fs.String("pcap", "", "record every frame in this pcap file")
	tso := fs.Bool("tso", true, "tap backend: TCP segmentation offload (frames carry virtio-net headers; Linux cuts the large "+
		"segments tcp sends with --tso); false: the TAP as before, every frame at most the MTU")
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
		open := func() (*tap.Device, error) { return tap.Open(*ifname, *tso) }
		if *nsPath != "" {
			open = func() (*tap.Device, error) { return tap.OpenIn(*nsPath, *ifname, *tso) }
		}
		d, err := open()
		if err != nil {
			return nil, err
		}
		n.dev = d
		s.Log.Printf("tap device %s (TSO %v)", d.Name(), d.TSO())
	default:
		return nil, fmt.Errorf("nic: backend %q: want none, tap or wire", *backend)
	}
	return n, nil
}

// Run starts the device's receive side, then serves.
func (n *nic) Run(s *sys.Server) error {
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
func (n *nic) wire(s *sys.Server) {
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
			var m ipc.Message
			packet.Frame{Type: ipc.FrameRx}.Encode(&m)
			switch err := s.TrySendCopy(n.peer, &m, f); {
			case errors.Is(err, sys.ErrNoBuffer):
				n.dropped.WithLabelValues("no-buffer").Inc()
			case err != nil: // the far end's ring is full: the frame is lost, as on a wire
				n.dropped.WithLabelValues("send").Inc()
			default:
				n.frames.WithLabelValues("wire").Inc()
			}
		}
	}
}

func (n *nic) receive(s *sys.Server) {
	scratch := make([]byte, tap.MaxFrame)
	var dropped uint64 // the device's Dropped, counted
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
		if d := n.dev.Dropped(); d != dropped {
			n.dropped.WithLabelValues("vnet-header").Add(float64(d - dropped))
			dropped = d
		}
		if trace.On() {
			// A segment with data from the client, taken from outside
			// (docs/LATENCY.md).
			if port, ok := clientPort(buf[:k], true); ok {
				trace.Record(trace.Take, uint16(ipc.FrameRx), trace.Outside, s.Opts.Endpoint.Slot(), uint32(port))
			}
		}
		if n.pcap != nil {
			n.pcap.Write(time.Now(), buf[:k])
			n.pcap.Flush()
		}
		n.frames.WithLabelValues("rx").Inc()
		var m ipc.Message
		packet.Frame{Type: ipc.FrameRx, Buf: s.Pool.Slice(ref, k)}.Encode(&m)
		if err := s.SendTo(n.up, &m); err != nil { // dropped: the buffer is freed
			n.dropped.WithLabelValues("send").Inc()
		}
	}
}

func (n *nic) Handle(s *sys.Server, m *ipc.Message) error {
	var f packet.Frame
	f.Decode(m)
	if m.Type == ipc.FrameRx && n.link != nil {
		// A frame off the wire, in the other nic's buffer: up it goes.
		if b, err := s.Buffer(m, f.Buf); err == nil && n.pcap != nil {
			n.pcap.Write(time.Now(), b)
			n.pcap.Flush()
		}
		n.frames.WithLabelValues("rx").Inc()
		return forward(s, n.up, m)
	}
	if m.Type != ipc.FrameTx {
		return nil
	}
	b, err := s.Buffer(m, f.Buf)
	if err != nil {
		return nil // counted by Buffer
	}
	switch {
	case f.SegSize != 0 && len(b) > tap.MaxFrame && (n.dev == nil || !n.dev.TSO()):
		n.dropped.WithLabelValues("no-tso").Inc() // tcp has TSO on, this device not: a mismatch of flags
	case n.link != nil:
		if n.pcap != nil {
			n.pcap.Write(time.Now(), b)
			n.pcap.Flush()
		}
		n.linkMu.Lock()
		why := n.link.Send(time.Now(), b) // the link keeps a copy
		n.linkMu.Unlock()
		if why != "" { // what the wire's model drops is the device's drop, counted
			n.dropped.WithLabelValues("wire-" + why).Inc()
		}
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
		var stamp uint64
		if trace.On() {
			stamp = trace.Stamp() // before the write: the client may read it before Write returns
		}
		if err := n.dev.Write(b, int(f.SegSize)); err != nil {
			n.dropped.WithLabelValues("device").Inc()
		} else {
			n.frames.WithLabelValues("tx").Inc()
			if stamp != 0 {
				if port, ok := clientPort(b, false); ok {
					trace.RecordAt(stamp, trace.Put, uint16(ipc.FrameTx), s.Opts.Endpoint.Slot(), trace.Outside, uint32(port))
				}
			}
		}
	}
	return s.Release(f.Buf)
}

// clientPort returns the client's port of an Ethernet frame that holds an
// IPv4 TCP segment with data: the source port of a frame from the device
// (in), the destination port of one to it. The trace names the frames the
// nic exchanges with a benchmark's client so, as the client names its
// requests and responses (trace.Outside). Anything else (no data, another
// protocol, a short frame) is false.
func clientPort(f []byte, in bool) (uint16, bool) {
	const ether = 14
	if len(f) < ether+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return 0, false
	}
	ip := f[ether:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != 6 || len(ip) < ihl+20 {
		return 0, false
	}
	seg := ip[ihl:]
	total, hdr := int(binary.BigEndian.Uint16(ip[2:])), ihl+int(seg[12]>>4)*4
	if total > len(ip) || total <= hdr {
		return 0, false
	}
	if in {
		return binary.BigEndian.Uint16(seg), true
	}
	return binary.BigEndian.Uint16(seg[2:]), true
}

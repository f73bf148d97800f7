// Package host is a whole simulated host in one process: the ip, udp and
// tcp engines linked directly to each other and to a NIC backend (a
// monolithic stack). It stands in for the remote machines of the NewtOS
// evaluation, and it tests the protocol engines against real Linux peers
// before they are split into server processes. It runs a UDP echo service
// when asked, and its applications use it through the socket library's API
// (API, in api.go: TCP and UDP sockets), as they use the multiserver stack.
// The benchmarks' monolith rows (bench http's httpd-monolith, bench tcp's
// and bench udp's monolith) measure the engines this way, in one process,
// beside the same engines split into servers; Register exports its tcp
// engine's counters for them.
package host

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/newtsim/newtsim/nic/pcap"
	"github.com/newtsim/newtsim/servers/ip"
	"github.com/newtsim/newtsim/servers/proto"
	"github.com/newtsim/newtsim/servers/tcp"
	"github.com/newtsim/newtsim/servers/udp"
)

// Config describes a host.
type Config struct {
	MAC      [6]byte
	Addr     netip.Prefix // the host's address and subnet, such as 198.18.0.2/24
	Gateway  netip.Addr   // optional
	EchoPort uint16       // a UDP echo service on this port; 0 for none
	Pcap     *pcap.Writer // records every frame in and out; nil for none
	TCP      tcp.Config   // the tcp engine's settings (its Addrs are the host's, its Secret the host's)
	// TSO says that the device behind the host cuts the TCP segments it
	// is given with a segment size (a tap.Device opened with TSO): the
	// host's tcp then sends segments of up to tcp.MaxTSO bytes to the
	// link (TCP.TSOMax), as the multiserver host's does with nic --tso.
	TSO bool
	// Secret keys the host's IP IDs (ip.Config.IDKey) and its TCP's
	// initial sequence numbers, timestamps, ports and SYN cookies
	// (tcp.Config.Secret). Zero, the default, draws both at random, so
	// that neither can be predicted; set it only where a run must repeat
	// (tests).
	Secret uint64
}

// Host is a running host. Its methods may be called from several
// goroutines.
type Host struct {
	mu   sync.Mutex
	c    Config
	ip   *ip.Stack
	udp  *udp.Stack
	tcp  *tcp.Stack
	echo udp.SockID
	// changed is closed and replaced whenever the host handled something
	// that may make a socket ready: waiting applications watch it.
	changed chan struct{}
	out     func(frame []byte, segSize int) error
	buf     []byte
}

// New makes a host whose frames go to out, each with the TCP segment size
// the device is to cut it into (0: none; see Config.TCP).
func New(c Config, out func(frame []byte, segSize int) error) (*Host, error) {
	ic := ip.Config{MAC: c.MAC, Addr: c.Addr, Gateway: c.Gateway}
	if c.Secret != 0 {
		k := sha256.Sum256(binary.LittleEndian.AppendUint64([]byte("newtsim ip id "), c.Secret))
		copy(ic.IDKey[:], k[:])
	} else {
		rand.Read(ic.IDKey[:]) // never fails
	}
	st, err := ip.New(ic)
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	tc := c.TCP
	tc.Addrs = []netip.Addr{c.Addr.Addr()}
	tc.Secret = c.Secret // zero: tcp draws its own
	if c.TSO {
		tc.TSOMax = tcp.MaxTSO
	}
	h := &Host{c: c, ip: st, udp: udp.New(udp.Config{Addrs: []netip.Addr{c.Addr.Addr()}}), tcp: tcp.New(tc), out: out,
		buf: make([]byte, 65536), changed: make(chan struct{})}
	if c.EchoPort != 0 {
		h.echo = h.udp.Open()
		if err := h.udp.Bind(h.echo, netip.AddrPortFrom(netip.IPv4Unspecified(), c.EchoPort)); err != nil {
			return nil, fmt.Errorf("host: echo service: %w", err)
		}
	}
	return h, nil
}

// Input hands the host a frame its NIC received at now.
func (h *Host) Input(now time.Time, frame []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.record(now, frame)
	h.ip.FrameIn(now, frame)
	return h.process(now)
}

// Tick runs the host's timers (ARP retries, reassembly time-outs).
func (h *Host) Tick(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ip.Tick(now)
	h.tcp.Tick(now)
	return h.process(now)
}

// NextDeadline says when Tick must next run.
func (h *Host) NextDeadline() (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deadline()
}

// deadline is NextDeadline; h.mu is held.
func (h *Host) deadline() (time.Time, bool) {
	a, aok := h.ip.Deadline()
	b, bok := h.tcp.Deadline()
	switch {
	case aok && bok:
		if b.Before(a) {
			return b, true
		}
		return a, true
	case bok:
		return b, true
	}
	return a, aok
}

// Open opens a UDP socket on the host, for an application of the host.
func (h *Host) Open(local netip.AddrPort) (udp.SockID, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := h.udp.Open()
	return id, h.udp.Bind(id, local)
}

// SendTo sends a datagram from socket id.
func (h *Host) SendTo(now time.Time, id udp.SockID, payload []byte, to netip.AddrPort) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.sendTo(now, id, payload, to); err != nil {
		return err
	}
	return h.process(now)
}

// RecvFrom takes a datagram queued on socket id (udp.ErrWouldBlock if none).
func (h *Host) RecvFrom(id udp.SockID, b []byte) (int, netip.AddrPort, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, from, _, err := h.udp.RecvFrom(id, b)
	return n, from, err
}

// Drops reports what the host's engines dropped, by engine and reason.
func (h *Host) Drops() map[string]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.drops()
}

// drops is Drops; h.mu is held.
func (h *Host) drops() map[string]uint64 {
	d := map[string]uint64{}
	for r, n := range h.ip.Drops() {
		if n > 0 {
			d["ip/"+r] = n
		}
	}
	for r, n := range h.udp.Drops() {
		if n > 0 {
			d["udp/"+r] = n
		}
	}
	for r, n := range h.tcp.Drops() {
		if n > 0 {
			d["tcp/"+r] = n
		}
	}
	return d
}

// stateConns bounds the connections WriteState lists one by one.
const stateConns = 64

// WriteState writes what the host holds, for whoever must find out why it
// stopped serving: its drops by reason, its connections and sockets by
// state, when its timers next run (none: the loop waits for a frame or a
// call), and the first stateConns connections not in TIME-WAIT, listeners
// first, as the tcp server logs them on SIGUSR1.
func (h *Host) WriteState(w io.Writer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(w, "host: drops %v\n", h.drops())
	fmt.Fprintf(w, "host: connections by state %v\n", h.tcp.ByState())
	if at, ok := h.deadline(); ok {
		fmt.Fprintf(w, "host: next timer in %v\n", time.Until(at).Round(time.Microsecond))
	} else {
		fmt.Fprintf(w, "host: no timer\n")
	}
	n := 0
	for _, c := range h.tcp.Conns() {
		if c.State == tcp.TimeWait {
			continue
		}
		if n == stateConns {
			fmt.Fprintf(w, "host: more connections not listed\n")
			break
		}
		fmt.Fprintf(w, "host: conn %v\n", c)
		n++
	}
}

func (h *Host) sendTo(now time.Time, id udp.SockID, payload []byte, to netip.AddrPort) error {
	if err := h.udp.SendTo(id, payload, to); err != nil {
		return err
	}
	return h.flushUDP(now)
}

// flushUDP hands ip the datagrams the udp engine made; what ip refuses it
// also counts as dropped.
func (h *Host) flushUDP(now time.Time) error {
	var errs []error
	for _, dg := range h.udp.Out() {
		errs = append(errs, h.ip.Send(now, proto.UDP, dg.Src, dg.Dst, dg.Segment))
	}
	return errors.Join(errs...)
}

func (h *Host) record(now time.Time, frame []byte) {
	if h.c.Pcap != nil {
		h.c.Pcap.Write(now, frame) // a failed capture does not stop the host
	}
}

// process drains the ip engine's events until there are none. An event's
// slices are valid only until the next call into the engine, so each batch
// is handled in two passes: first what only reads them (frames out,
// datagrams into udp), then the calls back into the engine.
func (h *Host) process(now time.Time) error {
	defer h.signal()
	for {
		for _, seg := range h.tcp.Out() {
			h.ip.SendSegmented(now, proto.TCP, seg.Src, seg.Dst, seg.Data, seg.SegSize) // errors are counted as drops
		}
		h.tcp.Wakeups() // waiting applications look again after every change
		evs := h.ip.Out()
		if len(evs) == 0 {
			return nil
		}
		var segs []Segment // tcp's: the engine is called after this batch
		var unreachable [][]byte
		echo := false
		for _, ev := range evs {
			switch ev.Kind {
			case ip.FrameOut:
				h.record(now, ev.Frame)
				if err := h.out(ev.Frame, int(ev.SegSize)); err != nil {
					return fmt.Errorf("host: send frame: %w", err)
				}
			case ip.ICMPError:
				h.icmpError(now, ev)
			case ip.Deliver:
				if ev.Proto == proto.TCP {
					segs = append(segs, Segment{Src: ev.Src, Dst: ev.Dst, Data: append([]byte(nil), ev.Payload...)})
					continue
				}
				if ev.Proto != proto.UDP {
					continue // ICMP other than echo, which ip answers itself
				}
				if err := h.udp.Input(ev.Src, ev.Dst, ev.Payload); errors.Is(err, udp.ErrNoSocket) {
					unreachable = append(unreachable, append([]byte(nil), ev.Packet...))
				}
			}
		}
		for _, id := range h.udp.Wakeups() {
			echo = echo || (id == h.echo && h.c.EchoPort != 0)
		}
		for _, pkt := range unreachable {
			h.ip.Unreachable(now, pkt, 3) // code 3: port unreachable
		}
		for _, seg := range segs {
			h.tcp.Input(now, seg.Src, seg.Dst, seg.Data)
		}
		for echo {
			n, from, _, err := h.udp.RecvFrom(h.echo, h.buf)
			if err != nil {
				break
			}
			if err := h.sendTo(now, h.echo, h.buf[:n], from); err != nil && !errors.Is(err, udp.ErrWouldBlock) {
				return err
			}
		}
	}
}

// icmpError passes an ICMP error about one of the host's datagrams to
// its transport, as the ip server does. Neither calls back into ip.
func (h *Host) icmpError(now time.Time, ev ip.Event) {
	local, remote := netip.AddrPortFrom(ev.Src, ev.SrcPort), netip.AddrPortFrom(ev.Dst, ev.DstPort)
	switch {
	case ev.Proto == proto.TCP:
		h.tcp.ICMPError(now, local, remote, tcp.Seq(binary.BigEndian.Uint32(ev.Quote[4:])), ev.Type, ev.Code, int(ev.MTU))
	case ev.Proto == proto.UDP:
		h.udp.ICMPError(local, remote, ev.Type, ev.Code)
	}
}

// Device is a NIC backend a host can run on. Write's segSize is as New's
// out has it.
type Device interface {
	Read(b []byte) (int, error)
	Write(frame []byte, segSize int) error
}

// Serve runs the host on dev until ctx is done: frames in as they arrive,
// timers when due. With dev nil the host has no wire: its applications
// talk over its loopback.
//
// The frames a device received before a timer is due go in before the
// timer runs (input.catchUp): a process that did not run for a while (a
// loaded machine) finds its timer due and the peer's ACKs waiting at
// once, and a retransmission timer run first would send again what the
// peer has.
func Serve(ctx context.Context, h *Host, dev Device) error {
	in := &input{frames: make(chan []byte, 256), dev: dev}
	errc := make(chan error, 1)
	if dev != nil {
		go in.read(ctx, errc)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// The deadline and the channel are read under one lock: an
		// application's call that sets an earlier timer after this closes
		// the channel, and the loop reads the deadline again.
		h.mu.Lock()
		at, ok := h.deadline()
		changed := h.changed
		h.mu.Unlock()
		if ok {
			timer.Reset(time.Until(at))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case f := <-in.frames:
			if err := in.take(h, f); err != nil {
				return err
			}
		case <-timer.C:
			if err := in.catchUp(ctx, h); err != nil {
				return err
			}
			if err := h.Tick(time.Now()); err != nil {
				return err
			}
		}
	}
}

// catchUpWait bounds how long a due timer waits for the frames its device
// holds to be read.
const catchUpWait = 10 * time.Millisecond

// pendingDevice is a device that can tell whether a frame waits to be
// read (tap.Device can).
type pendingDevice interface {
	Pending() bool
}

// input is the frames a host's device receives: a goroutine reads them
// and passes them on in frames; got counts those it has read, taken those
// the loop has handed the host.
type input struct {
	frames chan []byte
	dev    Device
	got    atomic.Int64
	taken  int64
	// wait bounds catchUp's wait for the reader (0: catchUpWait).
	wait time.Duration
}

// take hands the host a frame from frames.
func (in *input) take(h *Host, f []byte) error {
	in.taken++
	return h.Input(time.Now(), f)
}

// catchUp hands the host every frame the device had received: those in
// frames, those read and on their way there, and those the device still
// holds, waiting up to catchUpWait for the reader to bring them. A frame
// between the device's read and the reader's count is in neither place
// and missed, a window of a few instructions unless the reader is
// preempted there.
func (in *input) catchUp(ctx context.Context, h *Host) error {
	p, canAsk := in.dev.(pendingDevice)
	bound := in.wait
	if bound == 0 {
		bound = catchUpWait
	}
	until := time.Now().Add(bound)
	for {
		select {
		case f := <-in.frames:
			if err := in.take(h, f); err != nil {
				return err
			}
			continue
		default:
		}
		if in.taken >= in.got.Load() && !(canAsk && p.Pending()) {
			return nil
		}
		wait := time.Until(until)
		if wait <= 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case f := <-in.frames:
			t.Stop()
			if err := in.take(h, f); err != nil {
				return err
			}
		case <-t.C:
			return nil
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// read passes the frames the device receives to frames until ctx is done,
// and its error to errc.
func (in *input) read(ctx context.Context, errc chan<- error) {
	for {
		b := make([]byte, 1514)
		n, err := in.dev.Read(b)
		if err != nil {
			errc <- err
			return
		}
		in.got.Add(1)
		select {
		case in.frames <- b[:n]:
		case <-ctx.Done():
			return
		}
	}
}

// Segment is a transport segment with its addresses.
type Segment = tcp.Segment

// signal wakes the applications waiting for a change; h.mu is held.
func (h *Host) signal() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// Package ip is the network layer of one simulated host: Ethernet II
// framing, ARP (RFC 826), IPv4 (RFC 791) with fragment reassembly, ICMP
// echo and destination unreachable (RFC 792, RFC 1122), and a loopback
// interface, as the ip server of a multiserver network stack runs them.
//
// The package is pure protocol logic. It does no I/O, starts no goroutines
// and reads no clock: the ip server feeds a Stack frames from the driver
// (FrameIn), segments from the transports (Send, Unreachable) and the time
// (Tick), each with the current time, and then drains what the Stack wants
// done, in the shape every engine (ip, tcp, udp) has:
//
//   - Out: what to pass on now, oldest first (here Events: frames for the
//     driver and packets for the transports);
//   - Deadline: when Tick must next run.
//
// tcp and udp add Wakeups, the sockets whose readiness changed; ip has no
// sockets. Given the same inputs, a Stack always produces the same outputs.
// A Stack is not safe for concurrent use: one server loop owns it.
//
// The host is not a router: it never forwards. It fragments what it sends
// that does not fit the MTU. See docs/IP.md.
package ip

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/servers/proto"
)

// Errors returned by New and Send. Returned errors wrap them with context:
// test with errors.Is. The errno each stands for is given beside it.
var (
	ErrConfig  = errors.New("ip: invalid config")   // (New only)
	ErrNoRoute = errors.New("ip: no route to host") // ENETUNREACH
	ErrTooBig  = errors.New("ip: datagram too big") // EMSGSIZE
	ErrBadAddr = errors.New("ip: bad address")      // EADDRNOTAVAIL, EINVAL
	ErrSegSize = errors.New("ip: bad segment size") // EINVAL (SendSegmented only)
)

// Limits of the link and of IPv4.
const (
	MTU          = 1500                // the Ethernet link's MTU
	HeaderLen    = proto.IPv4HeaderLen // an IPv4 header without options, as the host sends it
	MaxPayload   = MTU - HeaderLen     // 1480: the most Send puts in one frame
	MaxLoopback  = 65535 - HeaderLen   // 65515: the most Send puts in one loopback packet
	EthHeaderLen = proto.EthHeaderLen  // an Ethernet II header
	MinFrameLen  = 60                  // the Ethernet minimum without FCS; shorter frames are padded
	MaxFrameLen  = EthHeaderLen + MTU  // 1514: the longest frame the host sends
)

// Defaults and internal limits.
const (
	defaultTTL    = 64                         // Linux's ip_default_ttl
	defaultARPTO  = 60 * time.Second           // Config.ARPTimeout
	defaultHold   = 8                          // Config.ARPHold
	defaultReasmT = 30 * time.Second           // Config.ReasmTimeout
	defaultReasmB = 256 << 10                  // Config.ReasmMaxBytes
	multicastTTL  = 1                          // Linux's IP_MULTICAST_TTL default
	arpRetries    = 3                          // ARP requests after the first, one a second
	arpRetryEvery = time.Second                // interval between ARP requests
	maxNeighbors  = 1024                       // ARP cache entries, resolved and pending
	maxDatagram   = 65535                      // the IPv4 total length limit
	arenaChunk    = 64 << 10                   // bytes of output buffer allocated at a time
	loopbackFirst = 127                        // first octet of 127.0.0.0/8
	loopbackAddr  = loopbackFirst<<24 | 0x0001 // 127.0.0.1
	broadcastAll  = 0xffffffff                 // 255.255.255.255
)

// Config describes the host. Zero fields take their defaults; MAC and Addr
// are required.
type Config struct {
	// MAC is the host's Ethernet address: unicast, not zero.
	MAC [6]byte
	// Addr is the host's IPv4 address and its on-link subnet, e.g.
	// 198.18.0.2/24. The prefix length is 8 to 32; for /31 and /32 there is
	// no subnet broadcast address (RFC 3021).
	Addr netip.Prefix
	// Gateway is the default gateway, which must be on-link. The zero Addr
	// means none: off-link destinations are then unreachable.
	Gateway netip.Addr
	// ARPTimeout is how long a learned address stays in the ARP cache
	// (default 60s). A request for an unresolved address is sent at once
	// and retried every second, 3 times; a second after the last, the
	// packets held for it are dropped.
	ARPTimeout time.Duration
	// ARPHold is how many packets are held per unresolved address (default
	// 8); more are dropped.
	ARPHold int
	// ReasmTimeout is how long the fragments of a datagram are kept,
	// counted from its first fragment (default 30s).
	ReasmTimeout time.Duration
	// ReasmMaxBytes bounds the bytes of fragments held for reassembly, each
	// fragment counted with its IP header (default 256 KiB). To make room,
	// the oldest datagrams are dropped.
	ReasmMaxBytes int
	// TTL is the time to live of the datagrams the host sends (default 64).
	// Multicast datagrams go with TTL 1.
	TTL uint8
	// IDKey is the secret key of the hash that picks an IP ID counter for
	// each destination (see docs/IP.md), so that the IDs sent to one
	// destination say nothing about those sent to another. The server
	// sets a random one (crypto/rand); the zero key works, but anyone
	// knowing it can predict the IDs. Given the key, IDs are
	// deterministic.
	IDKey [16]byte
}

// Validate reports what is wrong with c. New calls it.
func (c Config) Validate() error {
	if c.MAC[0]&1 != 0 || c.MAC == ([6]byte{}) {
		return fmt.Errorf("ip: config: MAC %s is not a unicast address: %w", macString(c.MAC), ErrConfig)
	}
	a := c.Addr.Addr()
	if !c.Addr.IsValid() || !a.Is4() {
		return fmt.Errorf("ip: config: address %v is not an IPv4 prefix: %w", c.Addr, ErrConfig)
	}
	if c.Addr.Bits() < 8 {
		return fmt.Errorf("ip: config: prefix %v is shorter than /8: %w", c.Addr, ErrConfig)
	}
	host := addrU32(a)
	net := newSubnet(c.Addr)
	if !unicast(host) || host>>24 == loopbackFirst || net.broadcast(host) || (c.Addr.Bits() <= 30 && host == net.network) {
		return fmt.Errorf("ip: config: %v is not a unicast host address of its subnet: %w", c.Addr, ErrConfig)
	}
	if c.Gateway.IsValid() {
		g := c.Gateway.Unmap()
		if !g.Is4() {
			return fmt.Errorf("ip: config: gateway %v is not IPv4: %w", c.Gateway, ErrConfig)
		}
		gu := addrU32(g)
		if !net.contains(gu) || gu == host || net.broadcast(gu) || !unicast(gu) {
			return fmt.Errorf("ip: config: gateway %v is not another unicast host of %v: %w", c.Gateway, c.Addr.Masked(), ErrConfig)
		}
	}
	if c.ARPTimeout < 0 || c.ReasmTimeout < 0 || c.ARPHold < 0 || c.ReasmMaxBytes < 0 {
		return fmt.Errorf("ip: config: negative timeout or bound: %w", ErrConfig)
	}
	return nil
}

// EventKind says what an Event asks of the server.
type EventKind uint8

// Event kinds.
const (
	// FrameOut: send Frame, an Ethernet frame, to the driver.
	FrameOut EventKind = iota + 1
	// Deliver: hand Payload, from Src to Dst, to the transport of
	// protocol Proto. Packet is the whole IPv4 packet, to pass back to
	// Unreachable when no socket wants it.
	Deliver
	// ICMPError: an ICMP destination unreachable or time exceeded came
	// about a datagram the host sent, for the transport of Proto (RFC 1122
	// 3.2.2.1 and 3.2.2.4: errors go to the transport). Src, Dst, SrcPort
	// and DstPort are those of the datagram it quotes (Src is the
	// host's), Type and Code the error's, MTU the next-hop MTU of a
	// fragmentation needed (RFC 1191; 0 from an older router), Quote the
	// quoted datagram's first payload bytes (at least 8: for TCP, the
	// ports and the sequence number, RFC 5927), From the error's sender,
	// Packet and Payload the ICMP packet and message.
	ICMPError
)

// String returns the kind's name.
func (k EventKind) String() string {
	switch k {
	case FrameOut:
		return "FrameOut"
	case Deliver:
		return "Deliver"
	case ICMPError:
		return "ICMPError"
	}
	return fmt.Sprintf("EventKind(%d)", k)
}

// An Event is something the Stack asks its server to do.
//
// The slices stay valid until the next input call (FrameIn, Send,
// Unreachable, Tick) after the Out call that returned them. Those of a
// Deliver event for a packet that arrived in one frame alias that frame,
// which the caller must leave alone as long as it uses them; the others are
// the Stack's.
type Event struct {
	Kind             EventKind
	Frame            []byte     // FrameOut: the Ethernet frame, 60 to 1514 bytes (up to 65549 with a SegSize)
	SegSize          uint16     // FrameOut: the TCP segment size the NIC cuts a frame larger than the MTU into (SendSegmented); 0: none
	Proto            uint8      // Deliver: the IP protocol number; ICMPError: the quoted datagram's
	Src, Dst         netip.Addr // Deliver: the packet's addresses; ICMPError: the quoted datagram's
	Payload          []byte     // Deliver: the packet's payload (e.g. a UDP header and data); ICMPError: the ICMP message
	Packet           []byte     // Deliver, ICMPError: the whole IPv4 packet, header and payload
	SrcPort, DstPort uint16     // ICMPError: the quoted datagram's ports, for TCP and UDP
	Type, Code       uint8      // ICMPError: the ICMP type and code
	MTU              uint16     // ICMPError: the next-hop MTU of a fragmentation needed
	Quote            []byte     // ICMPError: the quoted datagram's payload, at least 8 bytes
	From             netip.Addr // ICMPError: who sent the error (the destination, or a router)
}

// Stats counts what the Stack has done. Counters only grow, except
// ReasmBytes and Neighbors, which say what is held now.
type Stats struct {
	FramesIn            uint64 // frames given to FrameIn
	FramesOut           uint64 // FrameOut events
	PacketsDelivered    uint64 // Deliver events
	LoopbackPackets     uint64 // packets sent over the loopback interface
	ARPRequestsSent     uint64
	ARPRepliesSent      uint64
	ARPRequestsReceived uint64 // well-formed requests, for us or not
	ARPRepliesReceived  uint64
	EchoRepliesSent     uint64 // ICMP echo replies, on the wire or over loopback
	ICMPErrorsSent      uint64 // destination unreachable and time exceeded
	ICMPErrorsIn        uint64 // ICMPError events: errors about the host's datagrams
	ICMPErrorsIgnored   uint64 // errors received and not passed on: bad quote or unknown code (delivered as ICMP)
	Segmented           uint64 // TCP segments sent whole for the NIC to cut (SendSegmented)
	Fragmented          uint64 // datagrams sent in fragments
	FragmentsCreated    uint64 // the fragments they were sent in
	FragmentsReceived   uint64 // fragments accepted for reassembly
	Reassembled         uint64 // datagrams reassembled from fragments
	ReasmBytes          int    // bytes held for reassembly now
	Neighbors           int    // ARP cache entries now, resolved and pending
}

// Stack is the network layer of one host.
type Stack struct {
	mac      [6]byte
	addr     uint32 // the host's address
	subnet   subnet
	gw       uint32 // default gateway; 0 for none
	ttl      uint8
	arpTO    time.Duration
	arpHold  int
	reasmTO  time.Duration
	reasmMax int

	events []Event
	arena  arena
	ids    *idents // IP ID counters

	neigh    map[uint32]*neighbor
	resolved nlist // resolved entries, soonest expiry first
	pending  nlist // entries being resolved

	reasm      map[fragKey]*reasmEntry
	reasmList  rlist // datagrams being reassembled, oldest first
	reasmBytes int

	limit limiter // ICMP error rate limits

	stats Stats
	drops [numReasons]uint64
}

// New returns a Stack for the host c describes, or an error wrapping
// ErrConfig if c is invalid.
func New(c Config) (*Stack, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Stack{
		mac:      c.MAC,
		addr:     addrU32(c.Addr.Addr()),
		subnet:   newSubnet(c.Addr),
		ttl:      c.TTL,
		arpTO:    c.ARPTimeout,
		arpHold:  c.ARPHold,
		reasmTO:  c.ReasmTimeout,
		reasmMax: c.ReasmMaxBytes,
		neigh:    make(map[uint32]*neighbor),
		reasm:    make(map[fragKey]*reasmEntry),
		ids:      new(idents),
	}
	s.ids.init(c.IDKey)
	if c.Gateway.IsValid() {
		s.gw = addrU32(c.Gateway.Unmap())
	}
	if s.ttl == 0 {
		s.ttl = defaultTTL
	}
	if s.arpTO == 0 {
		s.arpTO = defaultARPTO
	}
	if s.arpHold == 0 {
		s.arpHold = defaultHold
	}
	if s.reasmTO == 0 {
		s.reasmTO = defaultReasmT
	}
	if s.reasmMax == 0 {
		s.reasmMax = defaultReasmB
	}
	return s, nil
}

// Out returns the events pending since the last call, oldest first, and
// clears them. See Event for how long their slices stay valid.
func (s *Stack) Out() []Event {
	ev := s.events
	s.events = s.events[:0]
	return ev
}

// Stats returns the Stack's counters.
func (s *Stack) Stats() Stats {
	st := s.stats
	st.ReasmBytes = s.reasmBytes
	st.Neighbors = len(s.neigh)
	return st
}

// begin starts an input call. Once the events of earlier calls have been
// drained, their buffers are reused.
func (s *Stack) begin() {
	if len(s.events) == 0 {
		s.arena.reset()
	}
}

// emitFrame queues a FrameOut event.
func (s *Stack) emitFrame(frame []byte, segSize uint16) {
	s.stats.FramesOut++
	s.events = append(s.events, Event{Kind: FrameOut, Frame: frame, SegSize: segSize})
}

// deliver queues a Deliver event for pkt, an IPv4 packet with a header of
// hlen bytes, trimmed to its total length.
func (s *Stack) deliver(pkt []byte, hlen int) {
	s.stats.PacketsDelivered++
	s.events = append(s.events, Event{
		Kind:    Deliver,
		Proto:   pkt[9],
		Src:     netip.AddrFrom4([4]byte(pkt[12:16])),
		Dst:     netip.AddrFrom4([4]byte(pkt[16:20])),
		Payload: pkt[hlen:],
		Packet:  pkt,
	})
}

// Deadline returns when Tick next has work to do: an ARP request to
// retry, a cache entry to expire, or a datagram whose reassembly times out.
// ok is false when nothing is pending. Calling Tick earlier does no harm.
func (s *Stack) Deadline() (deadline time.Time, ok bool) {
	consider := func(t time.Time) {
		if !ok || t.Before(deadline) {
			deadline, ok = t, true
		}
	}
	if n := s.resolved.head; n != nil {
		consider(n.deadline)
	}
	for n := s.pending.head; n != nil; n = n.next {
		consider(n.deadline)
	}
	if e := s.reasmList.head; e != nil {
		consider(e.deadline)
	}
	return deadline, ok
}

// Tick runs the timers due at now: ARP requests retried or given up (their
// held packets dropped as "arp-unresolved"), cache entries expired, and
// reassemblies timed out ("reasm-timeout", with an ICMP time exceeded to
// the sender when the first fragment had come).
func (s *Stack) Tick(now time.Time) {
	s.begin()
	s.arpTick(now)
	s.reasmTick(now)
}

// arena hands out output buffers carved from large chunks, so that the hot
// paths allocate nothing once warm. Every chunk is reused from its start
// once the events pointing into it have been drained: a call that emits
// several large frames (TCP segments of up to 64 KiB, with TSO) fills
// several chunks, and the next call reuses them all rather than allocating
// (and zeroing) a new chunk a frame.
type arena struct {
	chunks [][]byte // the chunks, carved in order
	cur    int      // the chunk being carved
	off    int      // where in it the next buffer starts
}

// arenaKeep is how many chunks a reset keeps: a burst larger than this
// many chunks (each at least arenaChunk) lets the rest go to the
// collector.
const arenaKeep = 16

// alloc returns n bytes, not zeroed.
func (a *arena) alloc(n int) []byte {
	for {
		if a.cur == len(a.chunks) {
			a.chunks = append(a.chunks, make([]byte, max(arenaChunk, n)))
			a.off = 0
		}
		c := a.chunks[a.cur]
		if n <= len(c)-a.off {
			b := c[a.off : a.off+n : a.off+n]
			a.off += n
			return b
		}
		if a.off == 0 { // too small even empty: a larger one instead
			a.chunks[a.cur] = make([]byte, max(arenaChunk, n))
			continue
		}
		a.cur, a.off = a.cur+1, 0
	}
}

// reset makes every chunk available again.
func (a *arena) reset() {
	if len(a.chunks) > arenaKeep {
		clear(a.chunks[arenaKeep:])
		a.chunks = a.chunks[:arenaKeep]
	}
	a.cur, a.off = 0, 0
}

// Package tcp is the TCP of one host (RFC 9293), as the tcp server of a
// multiserver network stack runs it: connection set-up and tear-down in
// every state, reliable in-order delivery whatever the network does, flow
// control, RFC 6298 retransmission timing, NewReno congestion control
// (RFC 5681, RFC 6582), delayed ACKs, Nagle, zero-window probes,
// keep-alive, window scaling and timestamps (RFC 7323), SACK (RFC 2018),
// the RFC 5961 defences against blind resets, SYNs and data, SYN cookies
// (RFC 4987), ICMP errors and path MTU discovery (RFC 1122 4.2.3.9, RFC
// 5461, RFC 5927, RFC 1191), and caps on TIME-WAIT, orphans and buffer
// memory.
//
// The package is pure protocol logic: it does no I/O, starts no
// goroutines and reads no clock. A Stack is fed user calls (Open, Bind,
// Listen, Connect, Accept, Send, Recv, Shutdown, Close), segments from ip
// (Input), the ICMP errors ip passes on (ICMPError) and the time (Tick); it answers each call with a result, and
// after every call its server drains the rest, in the shape every engine
// (ip, tcp, udp) has: Out, the segments for ip; Wakeups, the sockets whose
// readiness changed; Deadline, when Tick must next run. The congestion
// control is chosen per Stack (CongestionControl; NewReno by default).
// Given the same Config (its Secret set) and the same inputs at the same
// times, a Stack always gives the same outputs; left zero, the Secret is
// drawn at random. A Stack is not safe for concurrent use. See
// docs/TCP.md.
package tcp

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Defaults.
const (
	DefaultMTU              = 1500
	DefaultLoopbackMTU      = MaxIPPacket // Linux's lo has MTU 65536; its connections announce MSS 65495, an IPv4 packet's most less 40
	MaxIPPacket             = 65535       // the most an IPv4 packet holds
	DefaultBuffer           = 256 << 10   // send and receive buffers, bytes
	DefaultMinRTO           = 200 * time.Millisecond
	DefaultMaxRTO           = 120 * time.Second
	DefaultInitialRTO       = time.Second // RFC 6298 2.1
	DefaultDelayedAck       = 40 * time.Millisecond
	DefaultTimeWait         = 60 * time.Second // 2 MSL, as Linux
	DefaultFinWait2         = 60 * time.Second // an orphan's FIN-WAIT-2, as Linux
	DefaultSynRetries       = 6
	DefaultSynAckRetries    = 5 // as Linux's tcp_synack_retries
	DefaultRetries          = 15
	DefaultMaxBacklog       = 4096
	DefaultMaxTimeWait      = 262144                 // as Linux's tcp_max_tw_buckets on a host of a few GB
	DefaultMaxOrphans       = 262144                 // as Linux's tcp_max_orphans there
	DefaultMaxMemory        = 1 << 30                // buffer bytes, about Linux's tcp_mem hard limit there
	DefaultInvalidRateLimit = 500 * time.Millisecond // a socket's challenge ACKs at most this often, as Linux's tcp_invalid_ratelimit
	DefaultKeepIdle         = 7200 * time.Second     // as Linux's tcp_keepalive_time
	DefaultKeepIntvl        = 75 * time.Second       // tcp_keepalive_intvl
	DefaultKeepCnt          = 9                      // tcp_keepalive_probes
	DefaultMaxBufferOption  = 212992                 // as Linux's net.core.rmem_max and wmem_max
	minBuffer               = 2048
	maxBuffer               = 16 << 20
	defaultEphLo            = 49152
	defaultEphHi            = 65535
	initialWindowSegs       = 10  // RFC 6928
	minMSS                  = 88  // RFC 9293: at least this much room per segment
	defaultMSS              = 536 // RFC 9293 3.7.1: the MSS when the peer names none
	maxQuickAcks            = 16  // Linux's TCP_MAX_QUICKACKS
)

// Config describes the host a Stack serves. Zero fields take defaults.
type Config struct {
	// Addrs are the host's IPv4 addresses; 127.0.0.0/8 is always local.
	// The first is the source of connections from unbound sockets.
	Addrs []netip.Addr
	// MTU is the link MTU; the MSS announced is MTU - 40.
	MTU int
	// LoopbackMTU is the MTU towards the host's own addresses (the
	// loopback interface's), DefaultLoopbackMTU unless set: a connection
	// within the host announces LoopbackMTU - 40 as its MSS, as Linux's
	// does over lo. It is at least MTU.
	LoopbackMTU int
	// TSOMax, when positive, turns TCP segmentation offload on: towards
	// a destination on the link (not the host's own addresses), the
	// segments of a whole MSS a connection sends back to back go to ip as
	// one of up to TSOMax data bytes, which the NIC cuts into segments of
	// the MSS it is tagged with (Segment.SegSize; see tso.go). Set it
	// only when the NIC can: 0, the default, is off. It is at most MaxTSO.
	TSOMax int
	// SendBuffer and RecvBuffer are a socket's buffer sizes in bytes
	// before SO_SNDBUF and SO_RCVBUF change them.
	SendBuffer, RecvBuffer int
	// MaxBufferOption caps the value SO_SNDBUF and SO_RCVBUF take before
	// it is doubled (Linux's net.core.wmem_max and rmem_max, 212992 by
	// default): a larger one is cut to it, silently, as Linux does.
	MaxBufferOption int
	// MinRTO, MaxRTO and InitialRTO bound the retransmission timeout
	// (RFC 6298; the minimum defaults to Linux's 200 ms, not the RFC's
	// 1 s).
	MinRTO, MaxRTO, InitialRTO time.Duration
	// DelayedAck is the most an ACK is delayed (default 40 ms, Linux's
	// minimum; RFC 9293 allows up to 500 ms).
	DelayedAck time.Duration
	// TimeWait is how long a connection stays in TIME-WAIT (2 MSL).
	TimeWait time.Duration
	// FinWait2 is how long a closed socket's connection waits in
	// FIN-WAIT-2 for the peer's FIN.
	FinWait2 time.Duration
	// SynRetries and Retries are how many times a SYN and data are
	// retransmitted before the connection fails with ETIMEDOUT.
	SynRetries, Retries int
	// SynAckRetries is how many times a listener's connection sends its
	// SYN-ACK again before it is dropped (Linux's tcp_synack_retries).
	SynAckRetries int
	// NoSynCookies turns SYN cookies off: a SYN that finds a listener's
	// queue of half-open connections full is dropped rather than answered
	// with a cookie (Linux's tcp_syncookies = 0).
	NoSynCookies bool
	// KeepIdle, KeepIntvl and KeepCnt are a keep-alive socket's defaults
	// (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT): how long a connection
	// is idle before the first probe, the time between probes, and how
	// many go unanswered before it fails with ETIMEDOUT.
	KeepIdle, KeepIntvl time.Duration
	KeepCnt             int
	// MaxBacklog caps listen's backlog.
	MaxBacklog int
	// MaxTimeWait caps the connections in TIME-WAIT: one that would be
	// one more is closed at once (Linux's tcp_max_tw_buckets). MaxOrphans
	// caps the connections their users closed that are still finishing:
	// a close that would make one more resets the connection (Linux's
	// tcp_max_orphans). MaxMemory caps the bytes of send and receive
	// buffers the Stack holds: past it, data that needs a buffer is
	// dropped, a send that needs one fails with ENOBUFS, and a close
	// resets rather than leaving an orphan (Linux's tcp_mem).
	MaxTimeWait, MaxOrphans, MaxMemory int
	// InvalidRateLimit is the least time between two challenge ACKs of
	// one connection (RFC 5961 7; Linux's tcp_invalid_ratelimit, 500 ms).
	InvalidRateLimit time.Duration
	// ChallengeACKs, when positive, also caps the challenge ACKs the
	// whole Stack sends each second, at a budget drawn afresh each second
	// between half and one and a half times it (Linux's
	// tcp_challenge_ack_limit). Zero, the default, is no such cap, as in
	// Linux since 6.0: a global count is a side channel (CVE-2016-5696).
	ChallengeACKs int
	// NoWindowScale, NoTimestamps and NoSACK turn those options off.
	NoWindowScale, NoTimestamps, NoSACK bool
	// NoDSACK stops the receiver reporting segments it received twice in
	// D-SACK blocks (RFC 2883; Linux's net.ipv4.tcp_dsack = 0). The
	// sender still reads the peer's.
	NoDSACK bool
	// EphemeralLo and EphemeralHi bound the ports chosen for port 0.
	EphemeralLo, EphemeralHi uint16
	// Secret keys initial sequence numbers (RFC 6528), timestamp
	// offsets, ephemeral port choice (RFC 6056) and SYN cookies. Zero, the
	// default, is never used: New draws a random secret in its place. Set
	// it only where the same inputs must give the same outputs (tests).
	Secret uint64
	// CongestionControl makes each connection's congestion control; nil
	// means NewReno.
	CongestionControl func() CongestionControl
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MTU, DefaultMTU)
	c.MTU = max(c.MTU, HeaderLen+20+minMSS)
	def(&c.LoopbackMTU, DefaultLoopbackMTU)
	c.LoopbackMTU = min(max(c.LoopbackMTU, c.MTU), MaxIPPacket)
	c.TSOMax = min(max(c.TSOMax, 0), MaxTSO)
	def(&c.SendBuffer, DefaultBuffer)
	def(&c.RecvBuffer, DefaultBuffer)
	c.SendBuffer = min(max(c.SendBuffer, minBuffer), maxBuffer)
	c.RecvBuffer = min(max(c.RecvBuffer, minBuffer), maxBuffer)
	def(&c.MaxBufferOption, DefaultMaxBufferOption)
	defD(&c.MinRTO, DefaultMinRTO)
	defD(&c.MaxRTO, DefaultMaxRTO)
	defD(&c.InitialRTO, DefaultInitialRTO)
	defD(&c.DelayedAck, DefaultDelayedAck)
	defD(&c.TimeWait, DefaultTimeWait)
	defD(&c.FinWait2, DefaultFinWait2)
	def(&c.SynRetries, DefaultSynRetries)
	def(&c.Retries, DefaultRetries)
	def(&c.SynAckRetries, DefaultSynAckRetries)
	defD(&c.KeepIdle, DefaultKeepIdle)
	defD(&c.KeepIntvl, DefaultKeepIntvl)
	def(&c.KeepCnt, DefaultKeepCnt)
	def(&c.MaxBacklog, DefaultMaxBacklog)
	def(&c.MaxTimeWait, DefaultMaxTimeWait)
	def(&c.MaxOrphans, DefaultMaxOrphans)
	def(&c.MaxMemory, DefaultMaxMemory)
	defD(&c.InvalidRateLimit, DefaultInvalidRateLimit)
	if c.EphemeralLo == 0 {
		c.EphemeralLo = defaultEphLo
	}
	if c.EphemeralHi == 0 {
		c.EphemeralHi = defaultEphHi
	}
	if c.EphemeralLo > c.EphemeralHi {
		c.EphemeralLo, c.EphemeralHi = c.EphemeralHi, c.EphemeralLo
	}
}

// SockID names a socket of a Stack; 0 is never one.
type SockID int32

// Segment is what the Stack hands ip: a TCP segment with its checksum
// filled in, and the addresses of the IPv4 packet that carries it.
type Segment struct {
	Src, Dst netip.Addr
	Data     []byte
	// SegSize, when not 0, is the MSS the NIC is to cut Data into
	// (Config.TSOMax): Data then holds more than one segment's data, a
	// whole number of SegSize but for the last.
	SegSize int
}

// tuple names a connection.
type tuple struct{ local, remote netip.AddrPort }

// Stats are a Stack's counters since New.
type Stats struct {
	SegmentsIn, SegmentsOut uint64
	Retransmits             uint64 // segments sent again
	RTOExpiries             uint64 // retransmission timer expiries
	SpuriousRTOs            uint64 // timeouts found spurious and undone (F-RTO, RFC 5682, or timestamps, RFC 3522)
	FastRetransmits         uint64
	DSACKsSent              uint64 // D-SACK blocks sent: segments received twice, below RCV.NXT or out of order (Linux's TCPDSACKOldSent and TCPDSACKOfoSent)
	DSACKsReceived          uint64 // valid D-SACK blocks received (Linux's TCPDSACKRecv and TCPDSACKOfoRecv)
	DSACKUndos              uint64 // reductions undone, every retransmission of the episode D-SACKed (RFC 3708; Linux's TCPDSACKUndo)
	BytesIn, BytesOut       uint64 // payload bytes delivered to and taken from users
	ChallengeACKs           uint64
	ActiveOpens             uint64
	PassiveOpens            uint64
	Resets                  uint64 // RSTs sent
	SynCookiesSent          uint64 // SYN-ACKs carrying a cookie
	SynCookiesValidated     uint64 // ACKs whose cookie made a connection
	SynCookiesFailed        uint64 // ACKs with a cookie that was not ours or too old
	TimeWaitOverflows       uint64 // connections closed at once, TIME-WAIT being full
	OrphanResets            uint64 // closes that reset, for MaxOrphans or MaxMemory
	ICMPErrors              uint64 // ICMP errors acted on (ICMPError)
	ICMPOutOfWindow         uint64 // ICMP errors ignored: the sequence number quoted not in flight (RFC 5927)
	ICMPIgnored             uint64 // ICMP errors ignored: no connection, TIME-WAIT, or a type not used
}

// Stack holds the TCP sockets and connections of one host.
type Stack struct {
	c       Config
	addrs   []netip.Addr
	socks   map[SockID]*tcb
	conns   map[tuple]*tcb
	ports   map[uint16][]*tcb // sockets holding a local port, bound or connected
	lports  map[uint16][]*tcb // listening sockets by port
	all     map[*tcb]struct{} // every live tcb, including orphans
	nextID  SockID
	epNext  uint32
	timers  timerHeap
	out     []Segment
	wakes   []SockID
	woken   map[SockID]bool
	stats   Stats
	drops   map[string]uint64
	chalSec int64 // the second challenge ACKs are counted in
	chalN   int   // challenge ACKs left in it
	rng     *rand.Rand
	scratch []byte                   // a segment's payload on its way to emit (payloadBuf)
	mem     ringMem                  // buffers: those held, and spares
	arena   []byte                   // the bytes of the segments of Out (segBuf)
	tso     tsoRun                   // the segment of Out the next may extend (tso.go)
	orphans int                      // connections their users closed, still finishing
	tw      int                      // connections in TIME-WAIT
	pmtus   map[netip.Addr]pmtuEntry // learned path MTUs (pmtu.go)
}

// New returns a Stack for the host c describes.
func New(c Config) *Stack {
	c.defaults()
	for c.Secret == 0 {
		c.Secret = randomSecret()
	}
	s := &Stack{c: c, socks: map[SockID]*tcb{}, conns: map[tuple]*tcb{}, ports: map[uint16][]*tcb{}, lports: map[uint16][]*tcb{},
		all: map[*tcb]struct{}{}, woken: map[SockID]bool{}, drops: map[string]uint64{},
		rng: rand.New(rand.NewPCG(c.Secret, c.Secret^0x9e3779b97f4a7c15))}
	s.chalSec = -1
	for _, a := range c.Addrs {
		if a = a.Unmap(); a.Is4() && !a.IsUnspecified() {
			s.addrs = append(s.addrs, a)
		}
	}
	return s
}

// randomSecret returns 64 random bits from the system's generator.
func randomSecret() uint64 {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic("tcp: no randomness for the ISN secret: " + err.Error())
	}
	return binary.LittleEndian.Uint64(b[:])
}

// linkMTU is the MTU of the link towards dst: the loopback interface's
// for one of the host's own addresses, the Ethernet link's otherwise.
func (s *Stack) linkMTU(dst netip.Addr) int {
	if s.isLocal(dst) {
		return s.c.LoopbackMTU
	}
	return s.c.MTU
}

// isLocal reports whether a is one of the host's addresses.
func (s *Stack) isLocal(a netip.Addr) bool {
	if a.Is4() && a.IsLoopback() {
		return true
	}
	for _, b := range s.addrs {
		if a == b {
			return true
		}
	}
	return false
}

// Stats returns the Stack's counters.
func (s *Stack) Stats() Stats { return s.stats }

// Memory returns the bytes of send and receive buffers the Stack holds.
func (s *Stack) Memory() int { return s.mem.held }

// memRoom reports whether n more bytes of buffers fit under MaxMemory.
func (s *Stack) memRoom(n int) bool { return s.mem.held+n <= s.c.MaxMemory }

// Drops returns how many segments Input refused, by reason.
func (s *Stack) Drops() map[string]uint64 {
	m := make(map[string]uint64, len(s.drops))
	for k, v := range s.drops {
		m[k] = v
	}
	return m
}

func (s *Stack) drop(reason string) { s.drops[reason]++ }

// ByState counts the live connections and sockets by state, orphans
// included.
func (s *Stack) ByState() map[State]int {
	m := map[State]int{}
	for c := range s.all {
		m[c.state]++
	}
	return m
}

// Out returns the segments made since the last call, for ip. They stay
// valid until the next call into the Stack.
func (s *Stack) Out() []Segment {
	out := s.out
	for i := range out {
		out[i].checksum() // once each, its run made
	}
	s.out = s.out[:0]
	s.arena = s.arena[:0] // the segments' bytes are reused from the next call on
	s.tso = tsoRun{}
	return out
}

// payloadBuf returns n bytes for a payload that emit copies into its
// segment: the same bytes every time.
func (s *Stack) payloadBuf(n int) []byte {
	if cap(s.scratch) < n {
		s.scratch = make([]byte, n)
	}
	return s.scratch[:n]
}

// arenaSize is the size of the block segBuf cuts segments from.
const arenaSize = 256 << 10

// segBuf returns n bytes for a segment of Out, cut from the arena: the
// segments of one Out are valid until the next call into the Stack, so
// their bytes are reused after it, and a segment costs no allocation. A
// burst that outgrows the arena gets a new one; the segments already cut
// keep the old.
func (s *Stack) segBuf(n int) []byte {
	k := len(s.arena)
	if k+n > cap(s.arena) {
		s.arena = make([]byte, 0, max(arenaSize, n))
		k = 0
	}
	s.arena = s.arena[:k+n]
	return s.arena[k : k+n : k+n]
}

// Wakeups returns the sockets whose readiness may have changed since the
// last call: a server retries the calls waiting on them.
func (s *Stack) Wakeups() []SockID {
	w := s.wakes
	s.wakes = s.wakes[:0]
	clear(s.woken)
	return w
}

func (s *Stack) wake(c *tcb) {
	if c.id != 0 && !s.woken[c.id] {
		s.woken[c.id] = true
		s.wakes = append(s.wakes, c.id)
	}
	if c.parent != nil && c.parent.id != 0 && c.state >= Established && !s.woken[c.parent.id] {
		s.woken[c.parent.id] = true
		s.wakes = append(s.wakes, c.parent.id)
	}
}

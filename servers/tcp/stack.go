// Package tcp is the TCP of one host (RFC 9293), as the tcp server of a
// multiserver network stack runs it: connection set-up and tear-down in
// every state, reliable in-order delivery whatever the network does, flow
// control, RFC 6298 retransmission timing, NewReno congestion control
// (RFC 5681, RFC 6582), delayed ACKs, Nagle, zero-window probes, window
// scaling and timestamps (RFC 7323), SACK-permitted negotiation and SACK
// blocks sent as a receiver (RFC 2018), and the RFC 5961 defences against
// blind resets, SYNs and data.
//
// The package is pure protocol logic: it does no I/O, starts no
// goroutines and reads no clock. A Stack is fed user calls (Open, Bind,
// Listen, Connect, Accept, Send, Recv, Shutdown, Close), segments from ip
// (Input) and the time (Tick); it answers with results, segments for ip
// (Output), sockets whose readiness changed (Wakeups) and the time it next
// needs a Tick (NextDeadline). Given the same inputs at the same times, a
// Stack always gives the same outputs. A Stack is not safe for concurrent
// use. See docs/TCP.md.
package tcp

import (
	"errors"
	"hash/fnv"
	"net/netip"
	"time"
)

// Errors, each standing for one errno (beside it). Returned errors may wrap
// them: test with errors.Is.
var (
	ErrWouldBlock   = errors.New("tcp: operation would block")           // EAGAIN
	ErrInProgress   = errors.New("tcp: connection in progress")          // EINPROGRESS
	ErrAlready      = errors.New("tcp: connection already in progress")  // EALREADY
	ErrIsConnected  = errors.New("tcp: socket already connected")        // EISCONN
	ErrNotConnected = errors.New("tcp: socket not connected")            // ENOTCONN
	ErrConnRefused  = errors.New("tcp: connection refused")              // ECONNREFUSED
	ErrConnReset    = errors.New("tcp: connection reset by peer")        // ECONNRESET
	ErrTimedOut     = errors.New("tcp: connection timed out")            // ETIMEDOUT
	ErrAddrInUse    = errors.New("tcp: address already in use")          // EADDRINUSE
	ErrAddrNotAvail = errors.New("tcp: address not available")           // EADDRNOTAVAIL
	ErrInvalid      = errors.New("tcp: invalid argument")                // EINVAL
	ErrBadSocket    = errors.New("tcp: bad socket")                      // EBADF
	ErrShutdown     = errors.New("tcp: socket shut down for sending")    // EPIPE
	ErrNoOption     = errors.New("tcp: option not supported")            // ENOPROTOOPT
	ErrNoBuffers    = errors.New("tcp: no buffer space")                 // ENOBUFS
	ErrAborted      = errors.New("tcp: connection aborted by the stack") // ECONNABORTED
)

// Defaults.
const (
	DefaultMTU        = 1500
	DefaultBuffer     = 256 << 10 // send and receive buffers, bytes
	DefaultMinRTO     = 200 * time.Millisecond
	DefaultMaxRTO     = 120 * time.Second
	DefaultInitialRTO = time.Second // RFC 6298 2.1
	DefaultDelayedAck = 40 * time.Millisecond
	DefaultTimeWait   = 60 * time.Second // 2 MSL, as Linux
	DefaultFinWait2   = 60 * time.Second // an orphan's FIN-WAIT-2, as Linux
	DefaultSynRetries = 6
	DefaultRetries    = 15
	DefaultMaxBacklog = 4096
	DefaultChallenges = 1000 // challenge ACKs a second, RFC 5961 7
	minBuffer         = 2048
	maxBuffer         = 16 << 20
	defaultEphLo      = 49152
	defaultEphHi      = 65535
	initialWindowSegs = 10 // RFC 6928
	minMSS            = 88 // RFC 9293: at least this much room per segment
)

// Config describes the host a Stack serves. Zero fields take defaults.
type Config struct {
	// Addrs are the host's IPv4 addresses; 127.0.0.0/8 is always local.
	// The first is the source of connections from unbound sockets.
	Addrs []netip.Addr
	// MTU is the link MTU; the MSS announced is MTU - 40.
	MTU int
	// SendBuffer and RecvBuffer are a socket's buffer sizes in bytes
	// before SO_SNDBUF and SO_RCVBUF change them.
	SendBuffer, RecvBuffer int
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
	// MaxBacklog caps listen's backlog.
	MaxBacklog int
	// ChallengeACKs caps the challenge ACKs sent each second.
	ChallengeACKs int
	// NoWindowScale, NoTimestamps and NoSACK turn those options off.
	NoWindowScale, NoTimestamps, NoSACK bool
	// EphemeralLo and EphemeralHi bound the ports chosen for port 0.
	EphemeralLo, EphemeralHi uint16
	// Secret keys initial sequence numbers (RFC 6528) and ephemeral
	// port choice (RFC 6056).
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
	def(&c.SendBuffer, DefaultBuffer)
	def(&c.RecvBuffer, DefaultBuffer)
	c.SendBuffer = min(max(c.SendBuffer, minBuffer), maxBuffer)
	c.RecvBuffer = min(max(c.RecvBuffer, minBuffer), maxBuffer)
	defD(&c.MinRTO, DefaultMinRTO)
	defD(&c.MaxRTO, DefaultMaxRTO)
	defD(&c.InitialRTO, DefaultInitialRTO)
	defD(&c.DelayedAck, DefaultDelayedAck)
	defD(&c.TimeWait, DefaultTimeWait)
	defD(&c.FinWait2, DefaultFinWait2)
	def(&c.SynRetries, DefaultSynRetries)
	def(&c.Retries, DefaultRetries)
	def(&c.MaxBacklog, DefaultMaxBacklog)
	def(&c.ChallengeACKs, DefaultChallenges)
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
}

// tuple names a connection.
type tuple struct{ local, remote netip.AddrPort }

// Stats are a Stack's counters since New.
type Stats struct {
	SegmentsIn, SegmentsOut uint64
	Retransmits             uint64 // segments sent again
	RTOExpiries             uint64 // retransmission timer expiries
	FastRetransmits         uint64
	BytesIn, BytesOut       uint64 // payload bytes delivered to and taken from users
	ChallengeACKs           uint64
	ActiveOpens             uint64
	PassiveOpens            uint64
	Resets                  uint64 // RSTs sent
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
	chalN   int
	scratch []byte
}

// New returns a Stack for the host c describes.
func New(c Config) *Stack {
	c.defaults()
	s := &Stack{c: c, socks: map[SockID]*tcb{}, conns: map[tuple]*tcb{}, ports: map[uint16][]*tcb{}, lports: map[uint16][]*tcb{},
		all: map[*tcb]struct{}{}, woken: map[SockID]bool{}, drops: map[string]uint64{}}
	for _, a := range c.Addrs {
		if a = a.Unmap(); a.Is4() && !a.IsUnspecified() {
			s.addrs = append(s.addrs, a)
		}
	}
	return s
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

// Output returns the segments made since the last call, for ip. They stay
// valid until the next call into the Stack.
func (s *Stack) Output() []Segment {
	out := s.out
	s.out = s.out[:0]
	return out
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

// isn returns an initial sequence number for a connection (RFC 6528): a
// keyed hash of the connection's addresses plus a clock ticking every 4 us.
func (s *Stack) isn(now time.Time, t tuple) Seq {
	return Seq(s.hash(t, 1) + uint32(now.UnixNano()/4000))
}

// tsOffset returns a connection's timestamp offset (RFC 7323 5.4).
func (s *Stack) tsOffset(t tuple) uint32 { return s.hash(t, 2) }

func (s *Stack) hash(t tuple, salt byte) uint32 {
	h := fnv.New32a()
	var b [8 + 1 + 12]byte
	for i := range 8 {
		b[i] = byte(s.c.Secret >> (8 * i))
	}
	b[8] = salt
	la, ra := as4(t.local.Addr()), as4(t.remote.Addr())
	copy(b[9:], la[:])
	copy(b[13:], ra[:])
	b[17], b[18] = byte(t.local.Port()>>8), byte(t.local.Port())
	b[19], b[20] = byte(t.remote.Port()>>8), byte(t.remote.Port())
	h.Write(b[:])
	return h.Sum32()
}

func as4(a netip.Addr) [4]byte {
	if a.Is4() {
		return a.As4()
	}
	return [4]byte{}
}

// get returns the user's socket id.
func (s *Stack) get(id SockID) (*tcb, error) {
	c, ok := s.socks[id]
	if !ok {
		return nil, ErrBadSocket
	}
	return c, nil
}

// Open creates a socket in CLOSED and returns its id.
func (s *Stack) Open() SockID {
	c := s.newTCB()
	c.id = s.newID()
	s.socks[c.id] = c
	return c.id
}

// newID returns an unused socket id.
func (s *Stack) newID() SockID {
	for {
		s.nextID++
		if s.nextID <= 0 {
			s.nextID = 1
		}
		if _, used := s.socks[s.nextID]; !used {
			return s.nextID
		}
	}
}

// Exists reports whether id is an open socket.
func (s *Stack) Exists(id SockID) bool { _, ok := s.socks[id]; return ok }

// State returns a socket's connection state.
func (s *Stack) State(id SockID) (State, error) {
	c, err := s.get(id)
	if err != nil {
		return Closed, err
	}
	return c.state, nil
}

// portFree reports whether a socket may take local address a: no other
// socket holds its port with an overlapping address, unless both allow
// reuse and neither listens (SO_REUSEADDR as Linux has it).
func (s *Stack) portFree(c *tcb, a netip.AddrPort) bool {
	for _, o := range s.ports[a.Port()] {
		if o == c {
			continue
		}
		la := o.local.Addr()
		if la != a.Addr() && !la.IsUnspecified() && !a.Addr().IsUnspecified() {
			continue
		}
		if c.reuse && (o.reuse || o.id == 0) && o.state != Listen {
			continue
		}
		return false
	}
	return true
}

func (s *Stack) hold(c *tcb, a netip.AddrPort) {
	c.local = a
	c.bound = true
	s.ports[a.Port()] = append(s.ports[a.Port()], c)
}

func (s *Stack) unhold(c *tcb) {
	if !c.bound {
		return
	}
	p := c.local.Port()
	l := s.ports[p]
	for i, o := range l {
		if o == c {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(s.ports, p)
	} else {
		s.ports[p] = l
	}
	c.bound = false
}

// Bind gives the socket a local address; port 0 chooses an ephemeral one.
func (s *Stack) Bind(id SockID, a netip.AddrPort) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.bound || c.state != Closed {
		return ErrInvalid
	}
	addr := a.Addr().Unmap()
	if !addr.IsValid() {
		addr = netip.IPv4Unspecified()
	}
	if !addr.Is4() || (!addr.IsUnspecified() && !s.isLocal(addr)) {
		return ErrAddrNotAvail
	}
	if a.Port() == 0 {
		p, ok := s.ephemeral(c, addr, netip.AddrPort{})
		if !ok {
			return ErrAddrInUse
		}
		s.hold(c, netip.AddrPortFrom(addr, p))
		return nil
	}
	na := netip.AddrPortFrom(addr, a.Port())
	if !s.portFree(c, na) {
		return ErrAddrInUse
	}
	s.hold(c, na)
	return nil
}

// ephemeral chooses a free port (RFC 6056 algorithm 3: a keyed offset per
// destination, then a counter). With a remote address, a port is free when
// its 4-tuple is unused and nothing listens on it.
func (s *Stack) ephemeral(c *tcb, local netip.Addr, remote netip.AddrPort) (uint16, bool) {
	lo, hi := uint32(s.c.EphemeralLo), uint32(s.c.EphemeralHi)
	n := hi - lo + 1
	off := s.hash(tuple{netip.AddrPortFrom(local, 0), remote}, 3)
	for i := uint32(0); i < n; i++ {
		p := uint16(lo + (off+s.epNext+i)%n)
		var ok bool
		if remote.IsValid() {
			ok = true
			for _, o := range s.ports[p] {
				if o.state == Listen || o.remote == remote || !o.remote.IsValid() {
					ok = false
					break
				}
			}
		} else {
			ok = len(s.ports[p]) == 0
		}
		if ok {
			s.epNext += i + 1
			return p, true
		}
	}
	return 0, false
}

// Listen makes the socket passive, with a bounded backlog of connections
// waiting for Accept (and as many half-open ones); SYNs beyond are dropped
// and counted.
func (s *Stack) Listen(id SockID, backlog int) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.state != Closed && c.state != Listen {
		return ErrInvalid
	}
	if !c.bound {
		p, ok := s.ephemeral(c, netip.IPv4Unspecified(), netip.AddrPort{})
		if !ok {
			return ErrAddrInUse
		}
		s.hold(c, netip.AddrPortFrom(netip.IPv4Unspecified(), p))
	} else if c.state == Closed {
		for _, o := range s.ports[c.local.Port()] {
			if o != c && o.state == Listen && (o.local.Addr() == c.local.Addr() || o.local.Addr().IsUnspecified() || c.local.Addr().IsUnspecified()) {
				return ErrAddrInUse
			}
		}
	}
	c.backlog = min(max(backlog, 1), s.c.MaxBacklog)
	if c.state != Listen {
		s.lports[c.local.Port()] = append(s.lports[c.local.Port()], c)
	}
	c.state = Listen
	s.all[c] = struct{}{}
	return nil
}

// Accept takes a connection off a listening socket's queue.
func (s *Stack) Accept(id SockID) (SockID, netip.AddrPort, error) {
	l, err := s.get(id)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if l.state != Listen {
		return 0, netip.AddrPort{}, ErrInvalid
	}
	if len(l.acceptQ) == 0 {
		return 0, netip.AddrPort{}, ErrWouldBlock
	}
	c := l.acceptQ[0]
	l.acceptQ = l.acceptQ[1:]
	c.parent = nil
	nid := s.newID()
	c.id = nid
	s.socks[nid] = c
	return nid, c.remote, nil
}

// Connect starts an active open. It returns ErrInProgress: the socket
// becomes writable, or gets an error, when the handshake ends.
func (s *Stack) Connect(now time.Time, id SockID, to netip.AddrPort) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	switch {
	case c.state == SynSent || c.state == SynReceived:
		return ErrAlready
	case c.state == Listen:
		return ErrIsConnected
	case c.state != Closed || c.connected:
		if c.err != nil && c.state == Closed {
			break // a failed connect may be retried
		}
		return ErrIsConnected
	}
	ra := to.Addr().Unmap()
	if !ra.Is4() || to.Port() == 0 || ra.IsUnspecified() || ra.IsMulticast() || ra == broadcast {
		return ErrConnRefused
	}
	to = netip.AddrPortFrom(ra, to.Port())
	local := c.local.Addr()
	if !c.bound || local.IsUnspecified() {
		local = s.source(ra)
		if !local.IsValid() {
			return ErrAddrNotAvail
		}
	}
	if c.bound {
		t := tuple{netip.AddrPortFrom(local, c.local.Port()), to}
		if _, used := s.conns[t]; used {
			return ErrAddrNotAvail
		}
		s.unhold(c)
		s.hold(c, t.local)
	} else {
		p, ok := s.ephemeral(c, local, to)
		if !ok {
			return ErrAddrNotAvail
		}
		s.hold(c, netip.AddrPortFrom(local, p))
	}
	c.remote = to
	c.err = nil
	c.connected = true
	s.conns[tuple{c.local, c.remote}] = c
	s.all[c] = struct{}{}
	c.activeOpen(now)
	s.stats.ActiveOpens++
	s.flush(now, c)
	return ErrInProgress
}

// source picks the local address for a connection to dst.
func (s *Stack) source(dst netip.Addr) netip.Addr {
	if dst.IsLoopback() {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if s.isLocal(dst) {
		return dst
	}
	if len(s.addrs) > 0 {
		return s.addrs[0]
	}
	return netip.Addr{}
}

// Send queues data and sends what the windows allow. It returns how much
// it took; with no room it returns ErrWouldBlock.
func (s *Stack) Send(now time.Time, id SockID, b []byte) (int, error) {
	c, err := s.get(id)
	if err != nil {
		return 0, err
	}
	if c.err != nil && !c.state.canSend() {
		err := c.err
		c.err = nil
		return 0, err
	}
	switch {
	case c.state == SynSent || c.state == SynReceived:
		return 0, ErrWouldBlock
	case c.wrShut || (c.connected && !c.state.canSend()):
		return 0, ErrShutdown
	case !c.state.canSend():
		return 0, ErrShutdown // never connected: EPIPE, as Linux
	}
	n := min(len(b), c.snd.free())
	if n == 0 && len(b) > 0 {
		return 0, ErrWouldBlock
	}
	c.snd.append(b[:n])
	s.stats.BytesOut += uint64(n)
	c.output(now)
	s.flush(now, c)
	return n, nil
}

// Recv copies received data into b; peek leaves it queued. It returns 0
// at end of file and ErrWouldBlock when nothing is there yet.
func (s *Stack) Recv(now time.Time, id SockID, b []byte, peek bool) (int, error) {
	c, err := s.get(id)
	if err != nil {
		return 0, err
	}
	if c.rcv.n > 0 {
		n := min(len(b), c.rcv.n)
		c.rcv.readAt(0, b[:n])
		if !peek {
			c.rcv.consume(n)
			s.stats.BytesIn += uint64(n)
			c.windowUpdate(now)
			s.flush(now, c)
		}
		return n, nil
	}
	if c.err != nil {
		err := c.err
		c.err = nil
		return 0, err
	}
	switch {
	case c.finRcvd || c.rdShut:
		return 0, nil
	case c.state == Listen || (c.state == Closed && !c.connected):
		return 0, ErrNotConnected
	case c.state == Closed:
		return 0, nil
	}
	return 0, ErrWouldBlock
}

// Shutdown shuts the connection down for receiving, sending or both.
func (s *Stack) Shutdown(now time.Time, id SockID, rd, wr bool) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.state == Closed || c.state == Listen || c.state == SynSent {
		if c.state == Listen && rd {
			s.closeListener(now, c)
			return nil
		}
		return ErrNotConnected
	}
	if rd && !c.rdShut {
		c.rdShut = true
		s.wake(c)
	}
	if wr && !c.wrShut {
		c.wrShut = true
		c.queueFIN(now)
		s.flush(now, c)
		s.wake(c)
	}
	return nil
}

// Close releases the socket. A connection with data still to send goes on
// sending it, then closes with a FIN, as an orphan; one with unread data
// received is reset, as Linux does (RFC 2525 2.17).
func (s *Stack) Close(now time.Time, id SockID) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	delete(s.socks, id)
	c.id = 0
	switch c.state {
	case Closed:
		s.release(c)
	case Listen:
		s.closeListener(now, c)
		s.release(c)
	case SynSent:
		s.release(c)
	default:
		if c.rcv.n > 0 {
			c.sendReset(now)
			s.release(c)
			break
		}
		c.wrShut = true
		c.queueFIN(now)
		if c.state == FinWait2 {
			c.waitAt = now.Add(s.c.FinWait2)
		}
		s.flush(now, c)
	}
	return nil
}

// Abort closes the socket with a RST, as Close does when unread data is
// left (an exposed socket's unread data is in the application's ring, out
// of the engine's sight).
func (s *Stack) Abort(now time.Time, id SockID) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.state == Listen || c.state == Closed || c.state == SynSent {
		return s.Close(now, id)
	}
	delete(s.socks, id)
	c.id = 0
	c.sendReset(now)
	s.release(c)
	return nil
}

// closeListener resets every connection waiting on a listener.
func (s *Stack) closeListener(now time.Time, l *tcb) {
	for _, c := range l.acceptQ {
		c.sendReset(now)
		s.release(c)
	}
	for c := range l.embryos {
		c.sendReset(now)
		s.release(c)
	}
	l.acceptQ, l.embryos = nil, nil
	l.state = Closed
	p := l.local.Port()
	if ls := s.lports[p]; len(ls) > 0 {
		for i, o := range ls {
			if o == l {
				ls = append(ls[:i], ls[i+1:]...)
				break
			}
		}
		if len(ls) == 0 {
			delete(s.lports, p)
		} else {
			s.lports[p] = ls
		}
	}
}

// release forgets a tcb's connection and port; a socket the user still
// holds stays open, CLOSED.
func (s *Stack) release(c *tcb) {
	if c.remote.IsValid() {
		if s.conns[tuple{c.local, c.remote}] == c {
			delete(s.conns, tuple{c.local, c.remote})
		}
	}
	if c.parent != nil {
		delete(c.parent.embryos, c)
		c.parent = nil
	}
	s.unhold(c)
	c.state = Closed
	c.rtxAt, c.delackAt, c.waitAt = time.Time{}, time.Time{}, time.Time{}
	c.timerGen++
	if c.id == 0 {
		delete(s.all, c)
	}
	s.wake(c)
}

// LocalAddr returns the socket's local address.
func (s *Stack) LocalAddr(id SockID) (netip.AddrPort, error) {
	c, err := s.get(id)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if !c.bound && !c.connected {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), 0), nil
	}
	return c.local, nil
}

// RemoteAddr returns the connection's peer.
func (s *Stack) RemoteAddr(id SockID) (netip.AddrPort, error) {
	c, err := s.get(id)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if !c.connected || c.state == Closed || c.state == Listen {
		return netip.AddrPort{}, ErrNotConnected
	}
	return c.remote, nil
}

// ConnectDone reports how a connect in progress stands: not done while the
// handshake runs; then nil, or why it failed (the pending error, taken).
func (s *Stack) ConnectDone(id SockID) (bool, error) {
	c, err := s.get(id)
	switch {
	case err != nil:
		return true, err
	case c.state == SynSent || c.state == SynReceived:
		return false, nil
	case c.state == Closed:
		e := c.err
		c.err = nil
		if e == nil {
			e = ErrConnRefused
		}
		return true, e
	}
	return true, nil
}

// PendingError returns the socket's pending error without clearing it.
func (s *Stack) PendingError(id SockID) error {
	if c, ok := s.socks[id]; ok {
		return c.err
	}
	return ErrBadSocket
}

// TakeError returns and clears the socket's pending error (SO_ERROR).
func (s *Stack) TakeError(id SockID) (error, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, err
	}
	e := c.err
	c.err = nil
	return e, nil
}

// Option names a socket option.
type Option int

// Options.
const (
	OptNoDelay   Option = iota // TCP_NODELAY
	OptReuseAddr               // SO_REUSEADDR
	OptSendBuf                 // SO_SNDBUF
	OptRecvBuf                 // SO_RCVBUF
	OptMSS                     // TCP_MAXSEG (read only)
)

// SetOption sets an option. Buffer sizes are doubled, as Linux does, and
// apply from the next connection (or now, when the buffer is empty).
func (s *Stack) SetOption(id SockID, o Option, v int) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	switch o {
	case OptNoDelay:
		c.noDelay = v != 0
	case OptReuseAddr:
		c.reuse = v != 0
	case OptSendBuf:
		c.sndCap = min(max(2*v, minBuffer), maxBuffer)
		if c.snd.n <= c.sndCap {
			c.snd.resize(c.sndCap)
		}
	case OptRecvBuf:
		if c.state.synchronized() || c.state == SynSent || c.state == SynReceived {
			return nil // the window scale is fixed: too late, as Linux ignores it
		}
		c.rcvCap = min(max(2*v, minBuffer), maxBuffer)
		c.rcv = newRing(c.rcvCap)
	default:
		return ErrNoOption
	}
	return nil
}

// GetOption reads an option.
func (s *Stack) GetOption(id SockID, o Option) (int, error) {
	c, err := s.get(id)
	if err != nil {
		return 0, err
	}
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	switch o {
	case OptNoDelay:
		return b(c.noDelay), nil
	case OptReuseAddr:
		return b(c.reuse), nil
	case OptSendBuf:
		return c.snd.cap(), nil
	case OptRecvBuf:
		return c.rcv.cap(), nil
	case OptMSS:
		if c.mss == 0 {
			return s.c.MTU - 40, nil
		}
		return c.mss, nil
	}
	return 0, ErrNoOption
}

// Ready bits, as poll(2) reports them.
const (
	ReadyIn    = 1 << iota // data, a connection to accept, or end of file
	ReadyOut               // room to send
	ReadyErr               // a pending error
	ReadyHup               // both directions closed
	ReadyRdHup             // the peer shut down its sending side
)

// Ready returns what the socket is ready for, as Linux's tcp_poll does.
func (s *Stack) Ready(id SockID) (int, error) {
	c, err := s.get(id)
	if err != nil {
		return 0, err
	}
	r := 0
	if c.state == Listen {
		if len(c.acceptQ) > 0 {
			r |= ReadyIn
		}
		return r, nil
	}
	rdDone := c.finRcvd || c.rdShut
	if (rdDone && c.wrShut) || c.state == Closed {
		r |= ReadyHup
	}
	if rdDone {
		r |= ReadyIn | ReadyRdHup
	}
	if c.state != SynSent && c.state != SynReceived {
		if c.rcv.n > 0 {
			r |= ReadyIn
		}
		if c.wrShut || c.snd.free() >= min(c.snd.cap()/4, 16<<10) {
			r |= ReadyOut
		}
	}
	if c.err != nil {
		r |= ReadyErr
	}
	return r, nil
}

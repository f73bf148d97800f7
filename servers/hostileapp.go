package servers

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/runfiles"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys"
)

// The hostile role's attack (--attack DURATION): with --hoard it first
// connects a TCP socket to itself and receives a byte at a time, never
// giving a receive's buffer back, until refused (MaxBuffersPerApp); it
// opens TCP and UDP sockets through syscall until refused, keeping them
// all, parks blocking receives on a UDP socket past MaxParkedPerApp (a
// few more than the quota: their refusals are replies it leaves unread),
// then for that long, over and over, and reading nothing meanwhile, it
//
//   - forges every message type the type table restricts (ipc.MaySend) to
//     every peer: the kernel's own (Ack, Error, Alarm, Notification,
//     EndpointUpdate, Shutdown, EndpointDown), the packet path's (frames,
//     Datagram, Unreachable, ICMPError) and SocketReply,
//     every argument random;
//   - sends every peer random socket calls (any operation, straight to a
//     transport or through syscall, exposed or not) and doorbells;
//   - frees buffers it was never given: a BufFree for a random buffer of
//     every pool of the run, to every peer;
//   - floods the kernel with alarm requests and its peers with
//     notifications;
//   - on shared memory, writes random bytes into every mapping it may
//     write: its own page (its wake word and the tails of its rings),
//     whole, and in each peer's inbox the sleep word of its own ring, which
//     the consumer reads (its ring's head and slots it leaves alone:
//     garbage there only wedges its own ring, which ipc/shm's
//     TestHostileWrites covers, and would stop its forgeries); and tries
//     to make every mapping it may only read (its own rings, ring 0 among
//     them, and its peers' pages) writable, counting the refusals, and
//     what it could make writable as breaches, which it then scribbles on.
//
// The receivers refuse and count what the table forbids; what is left must
// not hurt anybody else (docs/SECURITY.md; sim/launch's TestHostileApp).

// forged are the types the attack sends to every peer.
var forged = []ipc.Type{ipc.Ack, ipc.Error, ipc.Alarm, ipc.Notification, ipc.EndpointUpdate, ipc.Shutdown,
	ipc.EndpointDown, ipc.FrameRx, ipc.FrameTx, ipc.Datagram, ipc.Unreachable,
	ipc.ICMPError, ipc.SocketReply, ipc.BufFree, ipc.Deposit, ipc.Collect}

type attack struct {
	// hoardAt is the address the attack listens on and connects to, to
	// keep receive buffers ("": it keeps none).
	hoardAt string
	rng     *rand.Rand
	forged  *prometheus.CounterVec
	writes  prometheus.Counter
	// refused counts the read-only mappings it failed to make
	// writable; breaches those it made writable.
	refused, breaches prometheus.Counter
}

func newAttack(s *sys.Server) *attack {
	a := &attack{rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(s.Opts.Endpoint)))}
	a.forged = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "hostile",
		Name: "forged_total", Help: "Forged messages the hostile role sent, by type."}, []string{"type"})
	a.writes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "hostile",
		Name: "shared_writes_total", Help: "Rounds of random bytes the hostile role wrote into its shared mappings."})
	a.refused = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "hostile",
		Name: "write_refused_total", Help: "Times the hostile role failed to make a read-only shared mapping writable."})
	a.breaches = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "hostile",
		Name: "breaches_total", Help: "Times the hostile role made a read-only shared mapping writable (and scribbled on it)."})
	s.Registry.MustRegister(a.forged, a.writes, a.refused, a.breaches)
	return a
}

// run attacks for d, or until the file until exists (if not ""), once
// the file when exists (if not "").
func (a *attack) run(s *sys.Server, d time.Duration, when, until string) {
	for when != "" {
		if _, err := os.Stat(when); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Log.Printf("attack starts")
	if _, ok := s.Peer("syscall"); ok {
		if a.hoardAt != "" {
			kept, err := a.hoard(s, a.hoardAt)
			s.Log.Printf("kept %d receive buffers, then: %v", kept, err)
		}
		n, _, err := a.openUntilRefused(s, unix.SOCK_STREAM)
		s.Log.Printf("opened %d TCP sockets, then: %v", n, err)
		n, fd, err := a.openUntilRefused(s, unix.SOCK_DGRAM)
		s.Log.Printf("opened %d UDP sockets, then: %v", n, err)
		if n > 0 {
			s.Log.Printf("parking receives: %v", a.park(s, fd))
		}
	}
	for i, end := 0, time.Now().Add(d); time.Now().Before(end); i++ {
		a.forge(s)
		a.sockets(s)
		a.alarms(s)
		// Scribbling on its own ring's indices makes the ring look full
		// to the hostile sender itself until the receiver puts them back:
		// one round in eight, so that forgeries get through too.
		if i%8 == 0 {
			a.scribble(s)
		}
		if until != "" && i%64 == 0 {
			if _, err := os.Stat(until); err == nil {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// forge sends every forged type to every peer, once.
func (a *attack) forge(s *sys.Server) {
	self := s.Opts.Endpoint
	for name, slot := range s.Opts.Peers {
		dst, ok := s.Peer(name)
		if !ok {
			continue
		}
		for _, t := range forged {
			m := ipc.Message{Src: self, Dst: dst, Type: t, Flags: uint16(a.rng.Uint32()), Seq: a.rng.Uint32()}
			for i := range m.Arg {
				m.Arg[i] = a.rng.Uint64()
			}
			switch t {
			case ipc.EndpointUpdate, ipc.EndpointDown: // plausible: a peer's slot, a later generation
				victim := a.rng.IntN(len(s.Opts.Procs)) + 1
				m.Arg[0], m.Arg[1] = uint64(victim), uint64(ipc.MakeEndpoint(victim, 2+a.rng.IntN(4)))
			case ipc.BufFree: // a real buffer of some pool of the run
				owner := a.rng.IntN(len(s.Opts.Procs)) + 1
				packet.BufFree{Buf: pool.MakeRef(uint8(owner), uint32(a.rng.IntN(runfiles.PoolBuffers))*runfiles.PoolBufSize, 64)}.Encode(&m)
			case ipc.Datagram, ipc.FrameRx, ipc.FrameTx: // pointing at a real buffer of the receiver
				m.Arg[0] = uint64(pool.MakeRef(uint8(slot), uint32(a.rng.IntN(runfiles.PoolBuffers))*runfiles.PoolBufSize, 60))
			}
			if s.T.TrySend(&m) == nil {
				a.forged.WithLabelValues(t.String()).Inc()
			}
		}
		n := ipc.Message{Dst: dst, Type: ipc.Notify}
		s.K.TrySend(&n) //nolint:errcheck // a flood: what does not fit is not sent
	}
}

// sockets sends every peer random socket calls and a doorbell: types an
// application may send (to syscall, and straight to a transport), every
// argument random but plausible (an operation that exists, a socket id of
// the transport's first incarnation or a small descriptor, an address of
// the run's network). It reads none of the replies.
func (a *attack) sockets(s *sys.Server) {
	for name := range s.Opts.Peers {
		dst, ok := s.Peer(name)
		if !ok {
			continue
		}
		for i := 0; i < 4; i++ {
			c := sockcall.Call{Op: ipc.SocketOp(1 + a.rng.IntN(ipc.NumSocketOps-1)), Sock: a.sock(),
				Type: unix.SOCK_STREAM, Exposed: a.rng.IntN(2) == 0, Flags: a.rng.IntN(2) * unix.MSG_DONTWAIT,
				Addr:    netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(a.rng.IntN(4))}), uint16(a.rng.IntN(65536))),
				Backlog: a.rng.IntN(16), Max: a.rng.IntN(1 << 16), How: a.rng.IntN(3), Events: int16(a.rng.Uint32()),
				Level: a.rng.IntN(8), Option: a.rng.IntN(64), Value: int(a.rng.Int32())}
			m := ipc.Message{Dst: dst, Seq: a.rng.Uint32()}
			c.Encode(&m)
			if s.T.TrySend(&m) == nil {
				a.forged.WithLabelValues(ipc.Socket.String()).Inc()
			}
		}
		m := ipc.Message{Dst: dst}
		sockcall.Doorbell{Sock: a.sock()}.Encode(&m)
		if s.T.TrySend(&m) == nil {
			a.forged.WithLabelValues(ipc.Doorbell.String()).Inc()
		}
	}
}

// sock is a random socket id: one a transport's first incarnation may have
// handed out, or a small descriptor as syscall gives them.
func (a *attack) sock() uint64 {
	if a.rng.IntN(2) == 0 {
		return 1<<32 | uint64(a.rng.IntN(2048))
	}
	return uint64(a.rng.IntN(64))
}

// openUntilRefused opens sockets of sockType through syscall, and never
// closes them, until an open fails (at most 4096); it returns how many it
// opened and the first one's descriptor.
func (a *attack) openUntilRefused(s *sys.Server, sockType int) (int, uint64, error) {
	var first uint64
	for n := 0; n < 4096; n++ {
		var m ipc.Message
		sockcall.Call{Op: ipc.OpOpen, Type: sockType}.Encode(&m)
		r, err := s.Call(&m)
		if err != nil {
			return n, first, err
		}
		var rep sockcall.Reply
		rep.Decode(&r)
		if rep.Result < 0 {
			return n, first, unix.Errno(-rep.Result)
		}
		if n == 0 {
			first = uint64(rep.Result)
		}
	}
	return 4096, first, nil
}

// park binds the UDP socket fd and sends MaxParkedPerApp blocking receives
// on it, and 8 more, without waiting for their answers: the quota's
// refusals, which it leaves unread (so that the replies it never reads are
// few: on the kernel transport a destination's full queue still stops
// its source whole, docs/SECURITY.md).
func (a *attack) park(s *sys.Server, fd uint64) error {
	var m ipc.Message
	sockcall.Call{Op: ipc.OpBind, Sock: fd, Addr: netip.AddrPortFrom(netip.IPv4Unspecified(), 0)}.Encode(&m)
	if _, err := s.Call(&m); err != nil {
		return err
	}
	for i := range MaxParkedPerApp + 8 {
		sockcall.Call{Op: ipc.OpRecvFrom, Sock: fd, Max: 64}.Encode(&m)
		m.Seq = 1<<31 + uint32(i) // apart from the calls' own
		if err := s.SendTo("syscall", &m); err != nil {
			return err
		}
	}
	return nil
}

// hoard listens on the host's address at (ADDR:PORT), connects a TCP
// socket to it, has the accepted end send 256 bytes, and receives them a
// byte at a time, never giving a receive's buffer back, until a receive
// fails (tcp's MaxBuffersPerApp: ENOBUFS) or the bytes run out; it returns
// how many buffers it kept. Its three sockets stay open.
func (a *attack) hoard(s *sys.Server, at string) (int, error) {
	to, err := netip.ParseAddrPort(at)
	if err != nil {
		return 0, fmt.Errorf("hoard: %w", err)
	}
	call := func(c sockcall.Call) (int64, error) {
		var m ipc.Message
		c.Encode(&m)
		r, err := s.Call(&m)
		if err != nil {
			return 0, err
		}
		var rep sockcall.Reply
		rep.Decode(&r)
		if rep.Result < 0 {
			return 0, unix.Errno(-rep.Result)
		}
		return rep.Result, nil
	}
	open := sockcall.Call{Op: ipc.OpOpen, Type: unix.SOCK_STREAM}
	ln, err := call(open)
	if err != nil {
		return 0, fmt.Errorf("open: %w", err)
	}
	if _, err := call(sockcall.Call{Op: ipc.OpBind, Sock: uint64(ln), Addr: to}); err != nil {
		return 0, fmt.Errorf("bind %v: %w", to, err)
	}
	if _, err := call(sockcall.Call{Op: ipc.OpListen, Sock: uint64(ln), Backlog: 1}); err != nil {
		return 0, fmt.Errorf("listen: %w", err)
	}
	c, err := call(open)
	if err != nil {
		return 0, fmt.Errorf("open: %w", err)
	}
	if _, err := call(sockcall.Call{Op: ipc.OpConnect, Sock: uint64(c), Addr: to}); err != nil {
		return 0, fmt.Errorf("connect %v: %w", to, err)
	}
	acc, err := call(sockcall.Call{Op: ipc.OpAccept, Sock: uint64(ln)})
	if err != nil {
		return 0, fmt.Errorf("accept: %w", err)
	}
	const size = 256
	ref, err := s.Copy(make([]byte, size))
	if err != nil {
		return 0, err
	}
	if _, err := call(sockcall.Call{Op: ipc.OpSendTo, Sock: uint64(acc), Buf: ref}); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	for n := range size {
		if _, err := call(sockcall.Call{Op: ipc.OpRecvFrom, Sock: uint64(c), Max: 1}); err != nil {
			return n, err
		}
		// The reply's buffer is kept: never given back.
	}
	return size, nil
}

// alarms asks the kernel for a burst of alarms, each due at once.
func (a *attack) alarms(s *sys.Server) {
	for i := 0; i < 8; i++ {
		m := ipc.Message{Dst: ipc.Kernel}
		kcall.SetAlarm{After: time.Microsecond, Cookie: a.rng.Uint64()}.Encode(&m)
		if s.K.TrySend(&m) != nil {
			return
		}
	}
}

// scribble writes random bytes into every shared mapping the process
// may write, and tries to make the others writable (shm transport only).
func (a *attack) scribble(s *sys.Server) {
	t, ok := s.T.(*shm.Transport)
	if !ok {
		return
	}
	ms := t.Mappings()
	if ms.Page != nil {
		a.fill(ms.Page)
	}
	for _, r := range ms.Rings {
		if len(r) >= 128 {
			a.fill(r[64:128]) // its ring's sleep line
		}
	}
	for _, b := range ms.ReadOnly {
		if err := unix.Mprotect(b, unix.PROT_READ|unix.PROT_WRITE); err != nil {
			a.refused.Inc()
			continue
		}
		a.breaches.Inc()
		s.Log.Printf("breach: a read-only mapping of %d bytes made writable", len(b))
		a.fill(b)
	}
	a.writes.Inc()
}

// fill writes random 64-bit words at random places in b: about one word in
// eight each round.
func (a *attack) fill(b []byte) {
	for n := len(b) / 64; n > 0; n-- {
		i := a.rng.IntN(len(b)/8) * 8
		v := a.rng.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
}

package servers

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/runfiles"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys"
)

// What the transport servers (udp, tcp) and syscall share: a socket call
// being served and its answer, calls parked until their socket changes,
// and segments to and from ip.

// request is a socket call being served.
type request struct {
	sockcall.Call
	// m is the call's message as it came: whom to answer, with which
	// Seq, and the sender a buffer reference is checked against.
	m ipc.Message
	// parked says the call waited on its socket before: a retry, not a
	// new call (a connect's handshake is under way).
	parked bool
	// app is the application a parked call counts against.
	app ipc.Endpoint
}

// newRequest decodes the socket call m.
func newRequest(m *ipc.Message) request {
	q := request{m: *m}
	q.Decode(m)
	return q
}

// answer sends r back to whoever sent the call.
func (q *request) answer(s *sys.Server, r sockcall.Reply) error {
	var m ipc.Message
	r.Encode(&m)
	return s.Reply(&q.m, &m)
}

// ok answers the call with a result and nothing else.
func (q *request) ok(s *sys.Server, result int64) error { return q.answer(s, q.Reply(result)) }

// fail answers the call with an errno.
func (q *request) fail(s *sys.Server, e unix.Errno) error { return q.answer(s, q.Reply(-int64(e))) }

// nonblocking reports whether the call asked not to wait.
func (q *request) nonblocking() bool { return q.Flags&unix.MSG_DONTWAIT != 0 }

// The per-application quotas of the transport servers (docs/SECURITY.md):
// what one application may hold of a server's memory, so that it cannot
// take it all from the others. Each refusal is answered with the errno
// Linux would give nearest and counted by reason in
// newtsim_<transport>_quota_refusals_total.
const (
	// MaxSocketsPerApp bounds the sockets one application may open on a
	// transport server (accepted connections count against their
	// listener's backlog): past it an open fails with EMFILE, as past
	// Linux's RLIMIT_NOFILE, so that one application cannot take the
	// server's memory and, with tcp's exposed sockets, a /dev/shm file
	// each.
	MaxSocketsPerApp = 1024
	// MaxParkedPerApp bounds the calls of one application a transport
	// server holds parked (blocking receives, accepts, connects and sends
	// waiting for their socket): one per socket the application may have.
	// A new call past it fails with ENOBUFS (no room to queue it), not
	// EAGAIN, which a blocking caller would read as a timeout or a
	// would-block and retry at once.
	MaxParkedPerApp = MaxSocketsPerApp
	// MaxBuffersPerApp bounds the buffers of a transport server's pool
	// one application may hold at once: the data of its receives, handed
	// to it in buffers it has not given back yet. A receive past it fails
	// with ENOBUFS, its data left queued, so that an application that
	// keeps its buffers cannot empty the pool the server sends every
	// segment and answers every other receive from. A quarter of the
	// pool, 128 of a run's 512 (poolShare): a well-behaved application
	// holds one per receive in flight (the socket library copies the
	// data out and gives the buffer back before the call returns), so
	// only one with more than 128 receives answered and not yet read
	// meets it, and the three quarters left are room for the server's
	// output and the other applications.
	MaxBuffersPerApp = runfiles.PoolBuffers / poolShare
	// poolShare is the part of a pool one application may hold: the
	// bound for a pool of any size (the test harness's are smaller).
	poolShare = 4
)

// Reasons of the quota refusals.
const (
	quotaSockets = "sockets" // MaxSocketsPerApp: EMFILE
	quotaParked  = "parked"  // MaxParkedPerApp: ENOBUFS
	quotaBuffers = "buffers" // tcp's MaxBufferBytesPerApp: ENOBUFS
	quotaPool    = "pool"    // MaxBuffersPerApp: ENOBUFS
)

// quotas counts a transport server's quota refusals by reason.
type quotas struct {
	refused *prometheus.CounterVec
}

// newQuotas registers the quota refusals of the named server, a transport
// or syscall, each of reasons at zero (a transport's: sockets, parked,
// buffers, pool).
func newQuotas(s *sys.Server, server string, reasons ...string) quotas {
	q := quotas{refused: counter(s, server, "quota_refusals_total",
		"Calls refused for a per-application quota, by reason: sockets or descriptors (EMFILE), parked calls, buffer bytes or pool buffers held (ENOBUFS).", "reason")}
	if len(reasons) == 0 {
		reasons = []string{quotaSockets, quotaParked, quotaBuffers, quotaPool}
	}
	for _, r := range reasons {
		q.refused.WithLabelValues(r)
	}
	return q
}

// refuse counts a refusal for reason.
func (qs quotas) refuse(reason string) { qs.refused.WithLabelValues(reason).Inc() }

// admitSocket reports whether app may open one more socket, apps being the
// owners of the transport's sockets; a refusal is counted.
func admitSocket[K comparable](qs quotas, apps map[K]sockOwner, app ipc.Endpoint) bool {
	n := 0
	for _, o := range apps {
		if o.app == app {
			n++
		}
	}
	if n >= MaxSocketsPerApp {
		qs.refuse(quotaSockets)
		return false
	}
	return true
}

// admitReceive reports whether q, a receive, may be handed its data in a
// buffer of the server's pool: whether its application holds fewer than
// MaxBuffersPerApp of them. A refusal is counted; the caller answers it
// with ENOBUFS before taking any data.
func (qs quotas) admitReceive(s *sys.Server, q *request) bool {
	if s.Pool == nil || s.HeldBy(ownerOf(s, q).app.Slot()) < maxBuffers(s.Pool) {
		return true
	}
	qs.refuse(quotaPool)
	return false
}

// maxBuffers is MaxBuffersPerApp for pool p: a quarter of its buffers.
func maxBuffers(p *pool.Pool) int { return max(1, p.Count()/poolShare) }

// parking holds the calls that wait on a socket (a blocking receive,
// accept, connect or send), in order, until their socket changes and the
// server runs them again; and how many each application has waiting,
// which MaxParkedPerApp bounds.
type parking[K comparable] struct {
	calls map[K][]request
	apps  map[ipc.Endpoint]int
	qs    quotas
}

func newParking[K comparable](qs quotas) *parking[K] {
	return &parking[K]{calls: map[K][]request{}, apps: map[ipc.Endpoint]int{}, qs: qs}
}

// admit reports whether q may park: a call that waited before may (it
// was counted when it first parked); a new one if its application has
// fewer than MaxParkedPerApp calls parked. A refusal is counted.
func (p *parking[K]) admit(s *sys.Server, q *request) bool {
	if q.parked || p.apps[ownerOf(s, q).app] < MaxParkedPerApp {
		return true
	}
	p.qs.refuse(quotaParked)
	return false
}

// park puts q at the end of the calls waiting on id, if admit lets it, and
// reports whether it did.
func (p *parking[K]) park(s *sys.Server, id K, q *request) bool {
	if !p.admit(s, q) {
		return false
	}
	q.parked, q.app = true, ownerOf(s, q).app
	p.apps[q.app]++
	p.calls[id] = append(p.calls[id], *q)
	return true
}

// out counts q out of its application's parked calls.
func (p *parking[K]) out(q *request) {
	if p.apps[q.app]--; p.apps[q.app] <= 0 {
		delete(p.apps, q.app)
	}
}

// next takes the first call waiting on id.
func (p *parking[K]) next(id K) (request, bool) {
	w := p.calls[id]
	if len(w) == 0 {
		return request{}, false
	}
	if len(w) == 1 {
		delete(p.calls, id)
	} else {
		p.calls[id] = w[1:]
	}
	p.out(&w[0])
	return w[0], true
}

// take takes every call waiting on id.
func (p *parking[K]) take(id K) []request {
	w := p.calls[id]
	delete(p.calls, id)
	for i := range w {
		p.out(&w[i])
	}
	return w
}

// sendSegment hands ip a transport segment from src to dst, copied into a
// buffer of the server's pool; segSize, when not 0, is the segment size
// the NIC cuts it into (TSO: tcp.Segment.SegSize).
func sendSegment(s *sys.Server, ip string, proto uint8, src, dst netip.Addr, seg []byte, segSize int) error {
	var m ipc.Message
	packet.Datagram{Src: src, Dst: dst, Proto: proto, SegSize: uint16(segSize)}.Encode(&m)
	return s.SendCopy(ip, &m, seg)
}

// segmentIn opens a Datagram message from ip: the IPv4 packet's addresses
// and the transport segment in it, and the buffer to release. A message no
// ip would send (a bad offset) is released here and ok is false.
func segmentIn(s *sys.Server, m *ipc.Message) (src, dst netip.Addr, seg []byte, ref pool.Ref, ok bool) {
	var d packet.Datagram
	d.Decode(m)
	b, err := s.Buffer(m, d.Buf)
	if err != nil {
		return src, dst, nil, d.Buf, false
	}
	if d.Off < 20 || d.Off > len(b) {
		s.Release(d.Buf)
		return src, dst, nil, d.Buf, false
	}
	return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), b[d.Off:], d.Buf, true
}

// epoch makes the socket ids a transport server hands out carry its
// incarnation (docs/RECOVERY.md): the engine's id in the low 32 bits, the
// server's generation above. A restarted server's engine numbers its
// sockets from 1 again; an id kept from its predecessor (by syscall, or an
// application calling it straight) must not name one of them.
type epoch uint64

// epochOf is the epoch of the server s.
func epochOf(s *sys.Server) epoch { return epoch(max(s.Opts.Endpoint.Generation(), 1)) }

// id is the id an application gets for the engine's socket n.
func (e epoch) id(n int32) int64 { return int64(uint64(e)<<32 | uint64(uint32(n))) }

// What an id from a call names.
const (
	idOurs  = iota // a socket of this incarnation (or none: the engine says)
	idReset        // a socket of an earlier incarnation: reset with it
	idBad          // no socket any incarnation handed out
)

// open returns the engine's socket an id names, and which incarnation's it
// is.
func (e epoch) open(id uint64) (int32, int) {
	switch ep := epoch(id >> 32); {
	case ep == e:
		return int32(uint32(id)), idOurs
	case ep > 0 && ep < e:
		return 0, idReset
	}
	return 0, idBad
}

// local rewrites the socket of call q, an application's id, as the
// engine's, unless the call was parked (its socket rewritten already). It
// answers a call on another incarnation's socket itself, as on a reset
// socket (reset) or with EBADF, and reports whether it did.
func (e epoch) local(s *sys.Server, q *request) bool {
	if q.parked || q.Op == ipc.OpOpen || q.Op == ipc.OpDropIdle {
		return false
	}
	n, which := e.open(q.Sock)
	switch which {
	case idReset:
		reset(s, q)
		return true
	case idBad:
		q.fail(s, unix.EBADF)
		return true
	}
	q.Sock = uint64(uint32(n))
	return false
}

// arms holds the armed polls on a transport's sockets: a message-backend
// poll that found nothing ready asks to be woken (sockcall.Call.Arm), and
// the first change of the socket sends its caller one Wake, saying which
// of the events it asked about are ready then (syscall answers a waiting
// poll set from it). One arm per socket and caller: a poll that comes
// back and arms again replaces its own.
type arms[K comparable] map[K][]armed

// armed is one caller waiting on a socket: the process the Wake goes to
// (syscall, or the application calling straight), through syscall the
// application to pass it on to, and the events it polled for.
type armed struct {
	to, caller ipc.Endpoint
	events     int16
}

// arm records q's wish to be woken when the socket id changes.
func (a arms[K]) arm(id K, q *request) {
	w := armed{to: q.m.Src, caller: q.Caller, events: q.Events}
	for i, o := range a[id] {
		if o.to == w.to && o.caller == w.caller {
			a[id][i] = w
			return
		}
	}
	a[id] = append(a[id], w)
}

// fire wakes every caller armed on id, once, with the events ready says
// the socket is ready for of those it asked about. A Wake that cannot go
// is dropped and counted by the runtime: the caller polls again by its
// own clock.
func (a arms[K]) fire(s *sys.Server, id K, sock uint64, ready func(events int16) int16) {
	for _, w := range a[id] {
		m := ipc.Message{Dst: w.to}
		sockcall.Wake{Sock: sock, Caller: w.caller, Events: ready(w.events)}.Encode(&m)
		s.Send(&m)
	}
	delete(a, id)
}

package servers

import (
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/ipc/pool"
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

// parking holds the calls that wait on a socket (a blocking receive,
// accept, connect or send), in order, until their socket changes and the
// server runs them again.
type parking[K comparable] map[K][]request

// park puts q at the end of the calls waiting on id.
func (p parking[K]) park(id K, q *request) {
	q.parked = true
	p[id] = append(p[id], *q)
}

// next takes the first call waiting on id.
func (p parking[K]) next(id K) (request, bool) {
	w := p[id]
	if len(w) == 0 {
		return request{}, false
	}
	if len(w) == 1 {
		delete(p, id)
	} else {
		p[id] = w[1:]
	}
	return w[0], true
}

// take takes every call waiting on id.
func (p parking[K]) take(id K) []request {
	w := p[id]
	delete(p, id)
	return w
}

// sendSegment hands ip a transport segment from src to dst, copied into a
// buffer of the server's pool.
func sendSegment(s *sys.Server, ip string, proto uint8, src, dst netip.Addr, seg []byte) error {
	var m ipc.Message
	packet.Datagram{Src: src, Dst: dst, Proto: proto}.Encode(&m)
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
// the first change of the socket sends its caller one Wake. One arm per
// socket and caller: a poll that comes back and arms again replaces its
// own.
type arms[K comparable] map[K][]armed

// armed is one caller waiting on a socket: the process the Wake goes to
// (syscall, or the application calling straight) and, through syscall,
// the application to pass it on to.
type armed struct {
	to, caller ipc.Endpoint
}

// arm records q's wish to be woken when the socket id changes.
func (a arms[K]) arm(id K, q *request) {
	w := armed{to: q.m.Src, caller: q.Caller}
	for _, o := range a[id] {
		if o == w {
			return
		}
	}
	a[id] = append(a[id], w)
}

// fire wakes every caller armed on id, once. A Wake that cannot go is
// dropped and counted by the runtime: the caller polls again by its own
// clock.
func (a arms[K]) fire(s *sys.Server, id K, sock uint64) {
	for _, w := range a[id] {
		m := ipc.Message{Dst: w.to}
		sockcall.Wake{Sock: sock, Caller: w.caller}.Encode(&m)
		s.Send(&m)
	}
	delete(a, id)
}

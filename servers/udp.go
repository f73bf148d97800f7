package servers

import (
	"errors"
	"flag"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/servers/proto"
	"github.com/newtsim/newtsim/servers/sockabi"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/servers/udp"
)

// udpServer is the UDP transport server: the udp engine (package
// servers/udp) fed with the datagrams ip hands up. A datagram whose port has
// no socket goes back to ip as Unreachable, which answers with ICMP.
type udpServer struct {
	ip     string
	table  *udp.Stack
	drops  *drops
	parked *parking[udp.SockID] // blocking receives waiting for data
	arms   arms[udp.SockID]     // polls waiting for their socket to change
	apps   map[udp.SockID]sockOwner
	epoch  epoch // in the socket ids applications see
	buf    []byte
	req    request // the call being served, kept here so that a call allocates nothing
	quota  quotas
}

// UDP starts the udp role: the udp engine as a server.
func UDP(s *sys.Server) (sys.Handler, error) {
	u := &udpServer{}
	fs := flag.NewFlagSet("udp", flag.ContinueOnError)
	fs.StringVar(&u.ip, "ip", "ip", "the IP server")
	addr := fs.String("addr", "198.18.0.2", "the host's address")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(*addr)
	if err != nil {
		return nil, err
	}
	u.table = udp.New(udp.Config{Addrs: []netip.Addr{a}})
	u.drops = newDrops(s, "udp", u.table.Drops)
	u.quota = newQuotas(s, "udp")
	u.parked = newParking[udp.SockID](u.quota)
	u.arms = arms[udp.SockID]{}
	u.apps = map[udp.SockID]sockOwner{}
	u.epoch = epochOf(s)
	u.buf = make([]byte, s.Pool.BufSize())
	return u, nil
}

func (u *udpServer) Handle(s *sys.Server, m *ipc.Message) error {
	switch m.Type {
	case ipc.Socket:
		u.req = newRequest(m)
		return u.call(s, &u.req)
	case ipc.Datagram:
		return u.input(s, m)
	case ipc.ICMPError:
		var e packet.ICMPError
		e.Decode(m)
		if u.table.ICMPError(e.Local, e.Remote, e.Type, e.Code) {
			return u.wake(s) // a waiting receive gets the error now
		}
	case ipc.EndpointDown:
		var d kcall.EndpointDown
		d.Decode(m)
		u.down(d.Endpoint)
	}
	return nil
}

// down closes every socket of a process that died, as tcp's down does:
// an application's, or those it used through a syscall server that died.
// Their waiting receives are forgotten.
func (u *udpServer) down(ep ipc.Endpoint) {
	for id, o := range u.apps {
		if o.app == ep || o.via == ep {
			u.parked.take(id)
			u.table.Close(id)
			delete(u.apps, id)
			delete(u.arms, id)
		}
	}
}

// wake retries the receives parked on the sockets the engine woke.
func (u *udpServer) wake(s *sys.Server) error {
	var errs []error
	for _, id := range u.table.Wakeups() {
		u.arms.fire(s, id, uint64(u.epoch.id(int32(id))), func(ev int16) int16 { return u.ready(id, ev) })
		errs = append(errs, u.wakeParked(s, id))
	}
	return errors.Join(errs...)
}

// udpCalls is the udp server's call vector: a handler for each socket
// operation, as a MINIX server's table of do_ functions.
var udpCalls = [ipc.NumSocketOps]func(u *udpServer, s *sys.Server, q *request) error{
	ipc.OpOpen:      (*udpServer).doOpen,
	ipc.OpBind:      (*udpServer).doBind,
	ipc.OpConnect:   (*udpServer).doConnect,
	ipc.OpSendTo:    (*udpServer).doSendTo,
	ipc.OpRecvFrom:  (*udpServer).doRecvFrom,
	ipc.OpClose:     (*udpServer).doClose,
	ipc.OpPoll:      (*udpServer).doPoll,
	ipc.OpShutdown:  (*udpServer).doShutdown,
	ipc.OpSetOpt:    (*udpServer).doSetOpt,
	ipc.OpGetOpt:    (*udpServer).doGetOpt,
	ipc.OpLocalAddr: (*udpServer).doLocalAddr,
}

// call runs a socket call's handler; an operation with none is ENOSYS.
func (u *udpServer) call(s *sys.Server, q *request) error {
	if o := ownerOf(s, q); s.Gone(o.app) || s.Gone(o.via) {
		return nil // sent before its application (or syscall) died: nobody waits
	}
	if u.epoch.local(s, q) {
		return nil
	}
	if int(q.Op) < len(udpCalls) && udpCalls[q.Op] != nil {
		return udpCalls[q.Op](u, s, q)
	}
	return q.fail(s, unix.ENOSYS)
}

// wakeParked answers the first receive waiting on a socket whose state
// changed (data, an error, a shutdown).
func (u *udpServer) wakeParked(s *sys.Server, id udp.SockID) error {
	q, ok := u.parked.next(id)
	if !ok {
		return nil
	}
	return u.recv(s, &q, id)
}

// reply answers a socket call: a result, or the errno of err.
func (u *udpServer) reply(s *sys.Server, q *request, result int64, err error) error {
	if err != nil {
		return q.fail(s, sockabi.Errno(err))
	}
	return q.ok(s, result)
}

func (u *udpServer) doOpen(s *sys.Server, q *request) error {
	if q.Type != unix.SOCK_DGRAM {
		return q.fail(s, unix.EPROTONOSUPPORT)
	}
	if !admitSocket(u.quota, u.apps, ownerOf(s, q).app) {
		return q.fail(s, unix.EMFILE)
	}
	id := u.table.Open()
	u.apps[id] = ownerOf(s, q)
	return q.ok(s, u.epoch.id(int32(id)))
}

func (u *udpServer) doBind(s *sys.Server, q *request) error {
	return u.reply(s, q, 0, u.table.Bind(udp.SockID(q.Sock), q.Addr))
}

func (u *udpServer) doConnect(s *sys.Server, q *request) error {
	return u.reply(s, q, 0, u.table.Connect(udp.SockID(q.Sock), q.Addr))
}

func (u *udpServer) doSendTo(s *sys.Server, q *request) error {
	b, err := s.Buffer(&q.m, q.Buf)
	if err != nil {
		return q.fail(s, unix.EFAULT)
	}
	n := len(b)
	err = u.table.SendTo(udp.SockID(q.Sock), b, q.Addr)
	if rerr := s.Release(q.Buf); rerr != nil {
		s.Log.Printf("release: %v", rerr)
	}
	if err != nil {
		return u.reply(s, q, 0, err)
	}
	if err := u.send(s); err != nil {
		return q.fail(s, unix.ENOBUFS)
	}
	return q.ok(s, int64(n))
}

func (u *udpServer) doRecvFrom(s *sys.Server, q *request) error {
	return u.recv(s, q, udp.SockID(q.Sock))
}

func (u *udpServer) doClose(s *sys.Server, q *request) error {
	id := udp.SockID(q.Sock)
	for _, p := range u.parked.take(id) {
		u.reply(s, &p, 0, udp.ErrBadSocket)
	}
	delete(u.apps, id)
	delete(u.arms, id)
	return u.reply(s, q, 0, u.table.Close(id))
}

// ready is which of events the socket id is ready for, as poll reports
// them.
func (u *udpServer) ready(id udp.SockID, events int16) int16 {
	var ready int16
	if events&unix.POLLIN != 0 && (u.table.Readable(id) || u.table.Pending(id)) {
		ready |= unix.POLLIN
	}
	if u.table.Pending(id) {
		ready |= unix.POLLERR
	}
	return ready | events&unix.POLLOUT // a UDP socket can always send
}

func (u *udpServer) doPoll(s *sys.Server, q *request) error {
	id := udp.SockID(q.Sock)
	if !u.table.Exists(id) {
		return u.reply(s, q, 0, udp.ErrBadSocket)
	}
	ready := u.ready(id, q.Events)
	if ready == 0 && q.Arm {
		u.arms.arm(id, q)
	}
	return q.ok(s, int64(uint16(ready)))
}

func (u *udpServer) doShutdown(s *sys.Server, q *request) error {
	how := q.How
	if how < 0 || how > unix.SHUT_RDWR {
		return q.fail(s, unix.EINVAL)
	}
	id := udp.SockID(q.Sock)
	err := u.table.Shutdown(id, how != unix.SHUT_WR, how != unix.SHUT_RD)
	if err == nil {
		u.wake(s) // waiting receives read end of file now
	}
	return u.reply(s, q, 0, err)
}

func (u *udpServer) doSetOpt(s *sys.Server, q *request) error {
	if q.Level != unix.SOL_SOCKET || q.Option != unix.SO_REUSEADDR {
		return q.fail(s, unix.ENOPROTOOPT)
	}
	return u.reply(s, q, 0, u.table.SetReuseAddr(udp.SockID(q.Sock), q.Value != 0))
}

func (u *udpServer) doGetOpt(s *sys.Server, q *request) error {
	if q.Level != unix.SOL_SOCKET {
		return q.fail(s, unix.ENOPROTOOPT)
	}
	id := udp.SockID(q.Sock)
	switch q.Option {
	case unix.SO_REUSEADDR:
		on, err := u.table.ReuseAddr(id)
		v := int64(0)
		if on {
			v = 1
		}
		return u.reply(s, q, v, err)
	case unix.SO_ERROR:
		e, err := u.table.TakeError(id)
		v := int64(0)
		if e != nil {
			v = int64(sockabi.Errno(e))
		}
		return u.reply(s, q, v, err)
	}
	return q.fail(s, unix.ENOPROTOOPT)
}

func (u *udpServer) doLocalAddr(s *sys.Server, q *request) error {
	a, err := u.table.LocalAddr(udp.SockID(q.Sock))
	if err != nil {
		return u.reply(s, q, 0, err)
	}
	r := q.Reply(0)
	r.Addr = a
	return q.answer(s, r)
}

// send hands the datagrams the engine built to ip, each in a buffer of
// our pool.
func (u *udpServer) send(s *sys.Server) error {
	var errs []error
	for _, dg := range u.table.Out() {
		errs = append(errs, sendSegment(s, u.ip, proto.UDP, dg.Src, dg.Dst, dg.Segment, 0))
	}
	return errors.Join(errs...)
}

// recv answers a receive with a queued datagram, in a buffer of our pool;
// with none, a non-blocking one gets EAGAIN and a blocking one waits. An
// application holding MaxBuffersPerApp of the pool's buffers gets ENOBUFS.
func (u *udpServer) recv(s *sys.Server, q *request, id udp.SockID) error {
	if !u.quota.admitReceive(s, q) {
		return q.fail(s, unix.ENOBUFS) // MaxBuffersPerApp: the datagram stays queued
	}
	n, from, _, err := u.table.RecvFrom(id, u.buf)
	if errors.Is(err, udp.ErrWouldBlock) && !q.nonblocking() {
		if !u.parked.park(s, id, q) {
			return q.fail(s, unix.ENOBUFS)
		}
		return nil
	}
	if err != nil {
		return u.reply(s, q, 0, err)
	}
	ref, err := s.Copy(u.buf[:n])
	if err != nil {
		return q.fail(s, unix.ENOBUFS)
	}
	r := q.Reply(int64(n))
	r.Addr, r.Buf = from, ref
	return q.answer(s, r)
}

func (u *udpServer) input(s *sys.Server, m *ipc.Message) error {
	src, dst, seg, ref, ok := segmentIn(s, m)
	if !ok {
		return nil
	}
	defer u.drops.update(time.Now())
	err := u.table.Input(src, dst, seg)
	if errors.Is(err, udp.ErrNoSocket) {
		var r ipc.Message
		packet.Unreachable{Buf: ref}.Encode(&r)
		return s.SendTo(u.ip, &r)
	}
	if err := s.Release(ref); err != nil {
		return err
	}
	return u.wake(s)
}

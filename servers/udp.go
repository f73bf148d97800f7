package servers

import (
	"errors"
	"flag"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
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
	parked map[udp.SockID][]ipc.Message // blocking receives waiting for data
	buf    []byte
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
	u.parked = map[udp.SockID][]ipc.Message{}
	u.buf = make([]byte, s.Pool.BufSize())
	return u, nil
}

func (u *udpServer) Handle(s *sys.Server, m *ipc.Message) error {
	switch m.Type {
	case ipc.Socket:
		return u.call(s, m)
	case ipc.Datagram:
		return u.input(s, m)
	case ipc.PortUnreachable:
		local := netip.AddrPortFrom(netip.AddrFrom4(u32(m.Arg[1])), uint16(m.Arg[2]))
		remote := netip.AddrPortFrom(netip.AddrFrom4(u32(m.Arg[3])), uint16(m.Arg[4]))
		u.table.PortUnreachable(local, remote)
		return u.wake(s) // a waiting receive gets the error now
	}
	return nil
}

// wake retries the receives parked on the sockets the engine woke.
func (u *udpServer) wake(s *sys.Server) error {
	var errs []error
	for _, id := range u.table.Wakeups() {
		errs = append(errs, u.wakeParked(s, id))
	}
	return errors.Join(errs...)
}

// wakeParked answers the first receive waiting on a socket whose state
// changed (data, an error, a shutdown).
func (u *udpServer) wakeParked(s *sys.Server, id udp.SockID) error {
	if len(u.parked[id]) == 0 {
		return nil
	}
	p := u.parked[id][0]
	u.parked[id] = u.parked[id][1:]
	return u.recv(s, &p, id)
}

// reply answers a socket call: a result, or the errno of err.
func reply(s *sys.Server, m *ipc.Message, result int64, err error, args ...uint64) error {
	if err != nil {
		result = -int64(sockabi.Errno(err))
	}
	return sendReply(s, m, result, args...)
}

func addrPort(m *ipc.Message) netip.AddrPort {
	if m.Arg[1] == 0 && m.Arg[2] == 0 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.AddrFrom4(u32(m.Arg[1])), uint16(m.Arg[2]))
}

func (u *udpServer) call(s *sys.Server, m *ipc.Message) error {
	id := udp.SockID(m.Arg[0])
	switch ipc.SocketOp(m.Flags) {
	case ipc.OpOpen:
		if m.Arg[0] != unix.SOCK_DGRAM {
			return reply(s, m, -int64(unix.EPROTONOSUPPORT), nil)
		}
		return reply(s, m, int64(u.table.Open()), nil)
	case ipc.OpBind:
		return reply(s, m, 0, u.table.Bind(id, addrPort(m)))
	case ipc.OpConnect:
		return reply(s, m, 0, u.table.Connect(id, addrPort(m)))
	case ipc.OpSendTo:
		b, ref, err := s.Buffer(m, 3)
		if err != nil {
			return reply(s, m, -int64(unix.EFAULT), nil)
		}
		n := len(b)
		err = u.table.SendTo(id, b, addrPort(m))
		if rerr := s.Release(ref); rerr != nil {
			s.Log.Printf("release: %v", rerr)
		}
		if err != nil {
			return reply(s, m, 0, err)
		}
		if err := u.send(s); err != nil {
			return reply(s, m, -int64(unix.ENOBUFS), nil)
		}
		return reply(s, m, int64(n), nil)
	case ipc.OpRecvFrom:
		return u.recv(s, m, id)
	case ipc.OpClose:
		for _, p := range u.parked[id] {
			reply(s, &p, 0, udp.ErrBadSocket)
		}
		delete(u.parked, id)
		return reply(s, m, 0, u.table.Close(id))
	case ipc.OpPoll:
		if !u.table.Exists(id) {
			return reply(s, m, 0, udp.ErrBadSocket)
		}
		var ready uint64
		if m.Arg[4]&unix.POLLIN != 0 && (u.table.Readable(id) || u.table.Pending(id)) {
			ready |= unix.POLLIN
		}
		if u.table.Pending(id) {
			ready |= unix.POLLERR
		}
		ready |= m.Arg[4] & unix.POLLOUT // a UDP socket can always send
		return reply(s, m, int64(ready), nil)
	case ipc.OpShutdown:
		how := m.Arg[4]
		if how > unix.SHUT_RDWR {
			return reply(s, m, -int64(unix.EINVAL), nil)
		}
		err := u.table.Shutdown(id, how != unix.SHUT_WR, how != unix.SHUT_RD)
		if err == nil {
			u.wake(s) // waiting receives read end of file now
		}
		return reply(s, m, 0, err)
	case ipc.OpSetOpt:
		if m.Arg[1] != unix.SOL_SOCKET || m.Arg[2] != unix.SO_REUSEADDR {
			return reply(s, m, -int64(unix.ENOPROTOOPT), nil)
		}
		return reply(s, m, 0, u.table.SetReuseAddr(id, m.Arg[4] != 0))
	case ipc.OpGetOpt:
		if m.Arg[1] != unix.SOL_SOCKET {
			return reply(s, m, -int64(unix.ENOPROTOOPT), nil)
		}
		switch m.Arg[2] {
		case unix.SO_REUSEADDR:
			on, err := u.table.ReuseAddr(id)
			v := int64(0)
			if on {
				v = 1
			}
			return reply(s, m, v, err)
		case unix.SO_ERROR:
			e, err := u.table.TakeError(id)
			v := int64(0)
			if e != nil {
				v = int64(sockabi.Errno(e))
			}
			return reply(s, m, v, err)
		}
		return reply(s, m, -int64(unix.ENOPROTOOPT), nil)
	case ipc.OpLocalAddr:
		a, err := u.table.LocalAddr(id)
		return reply(s, m, 0, err, Addr4(a.Addr()), uint64(a.Port()))
	}
	return reply(s, m, -int64(unix.ENOSYS), nil)
}

// send hands the datagrams the engine built to ip, each in a buffer of
// our pool.
func (u *udpServer) send(s *sys.Server) error {
	var errs []error
	for _, dg := range u.table.Out() {
		errs = append(errs, sendSegment(s, u.ip, proto.UDP, dg.Src, dg.Dst, dg.Segment))
	}
	return errors.Join(errs...)
}

// recv answers a receive with a queued datagram, in a buffer of our pool;
// with none, a non-blocking one gets EAGAIN and a blocking one waits.
func (u *udpServer) recv(s *sys.Server, m *ipc.Message, id udp.SockID) error {
	n, from, _, err := u.table.RecvFrom(id, u.buf)
	if errors.Is(err, udp.ErrWouldBlock) && m.Arg[4]&unix.MSG_DONTWAIT == 0 {
		u.parked[id] = append(u.parked[id], *m)
		return nil
	}
	if err != nil {
		return reply(s, m, 0, err)
	}
	ref, buf, err := s.Pool.Alloc()
	if err != nil {
		return reply(s, m, -int64(unix.ENOBUFS), nil)
	}
	copy(buf, u.buf[:n])
	return reply(s, m, int64(n), nil, Addr4(from.Addr()), uint64(from.Port()), uint64(s.Pool.Slice(ref, max(n, 1))))
}

func (u *udpServer) input(s *sys.Server, m *ipc.Message) error {
	src, dst, seg, ref, ok := segmentIn(s, m)
	if !ok {
		return nil
	}
	defer u.drops.update(time.Now(), u.table.Drops)
	err := u.table.Input(src, dst, seg)
	if errors.Is(err, udp.ErrNoSocket) {
		r := ipc.Message{Type: ipc.Unreachable, Arg: [ipc.NumArgs]uint64{uint64(ref)}}
		return s.SendTo(u.ip, &r)
	}
	if err := s.Release(ref); err != nil {
		return err
	}
	return u.wake(s)
}

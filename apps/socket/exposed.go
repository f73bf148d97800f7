package socket

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/sockbuf"
	"github.com/newtsim/newtsim/ipc/sockcall"
)

// XConn is what the `exposed` backend needs of its process beyond Conn:
// calls and one-way messages to the transport server itself, a way to wait
// for a wake-up, and the regions' descriptors from the kernel. A newtsim
// server process (sys.Server) is one.
type XConn interface {
	Conn
	CallTo(peer string, m *ipc.Message) (ipc.Message, error)
	Notify(peer string, m *ipc.Message) error
	WaitWake(timeout time.Duration) error
	// Collect takes from the kernel the descriptor the named server
	// deposited for this process under id: a socket's region.
	Collect(peer string, id uint64) (*os.File, error)
	// AwakeFile is the named server's awake word, as the kernel handed
	// it over: a read-only descriptor, the same file in every incarnation
	// of the server.
	AwakeFile(peer string) (*os.File, error)
	// Deaths is how many times the named server died, as the kernel
	// announced: its sockets died with it.
	Deaths(peer string) int
}

// Exposed is the `exposed` backend (docs/EXPOSED.md): a TCP socket's
// buffers are a region of shared memory the application maps with the tcp
// server, so send, recv, accept, poll and select run in user space, with
// no message and no system call, until there is something to wait for.
// Set-up calls (socket, bind, listen, connect, options, getsockname) are
// messages straight to the tcp server. UDP sockets go the `message` way.
type Exposed struct {
	*Message
	c         XConn
	tcp       string
	awake     *atomic.Uint64 // the tcp server's awake word
	awakeR    *sockbuf.Region
	socks     map[FD]*xfd
	next      FD
	idle      map[uint64]*sockbuf.Region // regions of closed sockets, still mapped
	epoch     uint64                     // how many times the idle regions were all dropped
	pending   map[uint64]*sockbuf.Region // idle regions kept through a drop for connections waiting in accept rings
	deaths    int                        // the tcp server's deaths seen: its sockets are reset
	stale     bool                       // the awake word is a dead server's: ring with a message
	Doorbells uint64                     // Doorbell messages sent (the server was asleep)
}

// xfd is an exposed socket.
type xfd struct {
	id       uint64 // the tcp server's socket
	regionID uint64
	reg      *sockbuf.Region
	nonblock bool
	tx       sockbuf.Alloc
	txTail   uint64
	rxOff    uint32 // bytes of the first receive descriptor already read
	eof      bool
	err      error // a receive error not yet returned
	errTaken bool  // SO_ERROR read the connect failure
	wrShut   bool
	listen   bool
	dead     bool // the server died: the socket was reset (docs/RECOVERY.md)
}

var _ API = (*Exposed)(nil)

// exposedFD is where exposed descriptors start, apart from syscall's.
const exposedFD = 1 << 20

// NewExposed returns the exposed backend over c, whose TCP sockets live in
// the tcp server called tcp.
func NewExposed(c XConn, tcp string) (*Exposed, error) {
	// The kernel made the server's awake word before it started anybody.
	f, err := c.AwakeFile(tcp)
	var r *sockbuf.Region
	if err == nil {
		r, err = sockbuf.Map(f, false)
	}
	if err != nil {
		return nil, fmt.Errorf("socket: exposed: the %s server's awake word: %w", tcp, err)
	}
	return &Exposed{Message: NewMessage(c), c: c, tcp: tcp, awakeR: r, awake: r.State(),
		socks: map[FD]*xfd{}, next: exposedFD, idle: map[uint64]*sockbuf.Region{},
		pending: map[uint64]*sockbuf.Region{}, deaths: c.Deaths(tcp)}, nil
}

// checkServer resets every exposed socket if the tcp server died since it
// last looked: their regions are a dead server's, which nobody reads or
// writes any more. A reset socket fails as Linux's do once reset:
// ECONNRESET once, then end of file or EPIPE; poll finds it ready, with
// POLLERR and POLLHUP; close just unmaps it. The idle regions go, and the
// awake word is the restarted server's from the next socket on.
func (k *Exposed) checkServer() {
	if d := k.c.Deaths(k.tcp); d != k.deaths {
		k.deaths = d
		for _, x := range k.socks {
			if !x.dead {
				x.dead, x.err, x.errTaken = true, unix.ECONNRESET, false
			}
		}
		for id, r := range k.idle {
			r.Close()
			delete(k.idle, id)
		}
		for id, r := range k.pending {
			r.Close()
			delete(k.pending, id)
		}
		k.stale = true
	}
}

// reopenAwake trusts the awake word again once the tcp server is back: it
// is the same file in every incarnation (the kernel's), which the
// restarted server sets as it starts.
func (k *Exposed) reopenAwake() { k.stale = false }

// direct makes a socket call to the tcp server itself.
func (k *Exposed) direct(c sockcall.Call) (sockcall.Reply, error) {
	var m ipc.Message
	c.Encode(&m)
	rm, err := k.c.CallTo(k.tcp, &m)
	if errors.Is(err, ipc.ErrDeadEndpoint) {
		err = unix.ECONNRESET // the server died with the call
	}
	r, _, err := reply(rm, err)
	return r, err
}

// mapRegion maps a region the server named: a cached one, or the file the
// server deposited with the kernel for this process, a sealed memfd that
// nobody else can open and nobody can resize (docs/EXPOSED.md).
func (k *Exposed) mapRegion(id uint64) (*sockbuf.Region, error) {
	if r, ok := k.idle[id]; ok {
		delete(k.idle, id)
		return r, nil
	}
	if r, ok := k.pending[id]; ok {
		delete(k.pending, id)
		return r, nil
	}
	f, err := k.c.Collect(k.tcp, id)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping keeps the file
	return sockbuf.Map(f, true)
}

func (k *Exposed) add(id, regionID uint64, r *sockbuf.Region) FD {
	fd := k.next
	k.next++
	k.socks[fd] = &xfd{id: id, regionID: regionID, reg: r}
	return fd
}

// Socket opens a socket: a TCP one is exposed.
func (k *Exposed) Socket(domain, typ, proto int) (FD, error) {
	if domain != AF_INET {
		return -1, unix.EAFNOSUPPORT
	}
	if typ != SOCK_STREAM {
		return k.Message.Socket(domain, typ, proto)
	}
	k.checkServer()
	if k.stale {
		k.reopenAwake()
	}
	var offer uint64
	for id := range k.idle {
		offer = id
		break
	}
	r, err := k.direct(sockcall.Call{Op: ipc.OpOpen, Type: typ, Exposed: true, Region: offer})
	if err != nil {
		return -1, err
	}
	reg, err := k.mapRegion(r.Region)
	if err != nil {
		k.direct(sockcall.Call{Op: ipc.OpClose, Sock: uint64(r.Result)})
		return -1, unix.ENOMEM
	}
	return k.add(uint64(r.Result), r.Region, reg), nil
}

func (k *Exposed) get(fd FD) *xfd {
	x := k.socks[fd]
	if x != nil {
		k.checkServer()
	}
	return x
}

// Region returns an exposed socket's shared region, for diagnostics and
// for the tests that write into it what a hostile application would; nil
// for a socket that is not exposed.
func (k *Exposed) Region(fd FD) *sockbuf.Region {
	if x := k.get(fd); x != nil {
		return x.reg
	}
	return nil
}

// RingDoorbell tells the server to look at fd's region now.
func (k *Exposed) RingDoorbell(fd FD) {
	if x := k.get(fd); x != nil {
		k.ring(x)
	}
}

// Bind names the socket.
func (k *Exposed) Bind(fd FD, a netip.AddrPort) error {
	x := k.get(fd)
	if x == nil {
		return k.Message.Bind(fd, a)
	}
	if err := checkAddr(a); err != nil {
		return err
	}
	if x.dead {
		return x.reset()
	}
	_, err := k.direct(sockcall.Call{Op: ipc.OpBind, Sock: x.id, Addr: a})
	return err
}

// Listen makes the socket passive.
func (k *Exposed) Listen(fd FD, backlog int) error {
	x := k.get(fd)
	if x == nil {
		return k.Message.Listen(fd, backlog)
	}
	if x.dead {
		return x.reset()
	}
	_, err := k.direct(sockcall.Call{Op: ipc.OpListen, Sock: x.id, Backlog: backlog})
	if err == nil {
		x.listen = true
		k.ring(x) // the server publishes the listening state and starts accepting
	}
	return err
}

// Connect opens the connection (a message; the handshake is the server's).
func (k *Exposed) Connect(fd FD, a netip.AddrPort) error {
	x := k.get(fd)
	if x == nil {
		return k.Message.Connect(fd, a)
	}
	if err := checkAddr(a); err != nil {
		return err
	}
	if x.dead {
		return x.reset()
	}
	var flags int
	if x.nonblock {
		flags = MSG_DONTWAIT
	}
	_, err := k.direct(sockcall.Call{Op: ipc.OpConnect, Sock: x.id, Addr: a, Flags: flags})
	return err
}

// ring tells the server there is work: the doorbell in memory, and a
// message only when the server is asleep.
func (k *Exposed) ring(x *xfd) {
	if x.dead {
		return
	}
	x.reg.Doorbell().Add(1)
	if k.stale || k.awake.Load() == 0 {
		k.Doorbells++
		var m ipc.Message
		sockcall.Doorbell{Sock: x.id}.Encode(&m)
		k.c.Notify(k.tcp, &m)
	}
}

// Accept takes a connection from the listener's ring.
func (k *Exposed) Accept(fd FD) (FD, netip.AddrPort, error) {
	x := k.get(fd)
	if x == nil {
		return k.Message.Accept(fd)
	}
	for {
		if !x.listen {
			return -1, netip.AddrPort{}, unix.EINVAL
		}
		if x.dead {
			return -1, netip.AddrPort{}, x.reset()
		}
		var d sockbuf.Desc
		ok, err := x.reg.RX().Peek(&d)
		if err != nil {
			return -1, netip.AddrPort{}, unix.EIO
		}
		if ok && d.Kind == sockbuf.KindAccept {
			x.reg.RX().Pop()
			reg, err := k.mapRegion(d.B)
			if err != nil {
				k.direct(sockcall.Call{Op: ipc.OpClose, Sock: d.A})
				return -1, netip.AddrPort{}, unix.ECONNABORTED
			}
			nfd := k.add(d.A, d.B, reg)
			return nfd, ipc.UnpackAddrPort(uint64(d.Off), uint64(d.Aux)), nil
		}
		if ok { // not an accept: skip it
			x.reg.RX().Pop()
			continue
		}
		if x.nonblock {
			return -1, netip.AddrPort{}, unix.EAGAIN
		}
		if err := k.waitFor(fd, POLLIN); err != nil {
			return -1, netip.AddrPort{}, err
		}
	}
}

// waitFor blocks until fd is ready for events.
func (k *Exposed) waitFor(fd FD, events int16) error {
	p := []PollFD{{FD: fd, Events: events}}
	_, err := k.Poll(p, -1)
	return err
}

// Send sends on a connected socket.
func (k *Exposed) Send(fd FD, b []byte, flags int) (int, error) {
	return k.SendTo(fd, b, flags, netip.AddrPort{})
}

// SendTo copies b into the send area, a descriptor per piece, and rings
// the doorbell; with no room it returns what it took, EAGAIN, or waits.
func (k *Exposed) SendTo(fd FD, b []byte, flags int, to netip.AddrPort) (int, error) {
	x := k.get(fd)
	if x == nil {
		return k.Message.SendTo(fd, b, flags, to)
	}
	return k.sendv(fd, x, [][]byte{b}, flags)
}

// sendv is SendTo for the stream of bufs, copied from where they lie.
func (k *Exposed) sendv(fd FD, x *xfd, bufs [][]byte, flags int) (int, error) {
	nonblock := x.nonblock || flags&MSG_DONTWAIT != 0
	size := Size(bufs)
	total := 0
	for {
		if x.dead {
			if !x.errTaken {
				x.errTaken, x.err = true, nil
				return -1, unix.ECONNRESET
			}
			return -1, unix.EPIPE
		}
		st := x.reg.State().Load()
		switch {
		case st&sockbuf.StFailed != 0 && !x.errTaken:
			x.errTaken = true
			return -1, unix.Errno(st >> 32)
		case x.wrShut || st&sockbuf.StSendShut != 0 || st&sockbuf.StFailed != 0:
			return -1, unix.EPIPE
		case st&sockbuf.StConnecting != 0:
			if nonblock {
				return -1, unix.EAGAIN
			}
			if err := k.waitFor(fd, POLLOUT); err != nil {
				return -1, err
			}
			continue
		case st&sockbuf.StConnected == 0:
			return -1, unix.EPIPE
		}
		tx := x.reg.TX()
		x.reclaim()
		for total < size && tx.Free() > 0 {
			off, n, ok := x.tx.Take(size - total)
			if !ok {
				break
			}
			Gather(x.reg.TXArea()[off:int(off)+n], bufs, total)
			tx.Put(&sockbuf.Desc{Kind: sockbuf.KindData, Off: off, Len: uint32(n)})
			x.tx.Posted(n)
			total += n
		}
		if total > 0 {
			k.ring(x)
		}
		if total == size || (total > 0 && nonblock) {
			return total, nil
		}
		if nonblock {
			return -1, unix.EAGAIN
		}
		if err := k.waitFor(fd, POLLOUT); err != nil {
			return total, err
		}
	}
}

// Recv receives on a socket.
func (k *Exposed) Recv(fd FD, b []byte, flags int) (int, error) {
	n, _, err := k.RecvFrom(fd, b, flags)
	return n, err
}

// RecvFrom reads received data from the ring: EAGAIN, with no message and
// no system call, when there is none.
func (k *Exposed) RecvFrom(fd FD, b []byte, flags int) (int, netip.AddrPort, error) {
	x := k.get(fd)
	if x == nil {
		return k.Message.RecvFrom(fd, b, flags)
	}
	for {
		n, err := k.take(x, b, flags&MSG_PEEK != 0)
		if err != unix.EAGAIN || x.nonblock || flags&MSG_DONTWAIT != 0 {
			return n, netip.AddrPort{}, err
		}
		if err := k.waitFor(fd, POLLIN); err != nil {
			return -1, netip.AddrPort{}, err
		}
	}
}

// take copies what the receive ring holds into b.
func (k *Exposed) take(x *xfd, b []byte, peek bool) (int, error) {
	rx := x.reg.RX()
	n := 0
	popped := false
	var d sockbuf.Desc
	for n < len(b) || len(b) == 0 {
		if x.err != nil || x.eof || x.dead {
			break
		}
		ok, err := rx.Peek(&d)
		if err != nil {
			return -1, unix.EIO
		}
		if !ok {
			break
		}
		switch d.Kind {
		case sockbuf.KindData:
			if d.Check() != nil || x.rxOff >= d.Len {
				return -1, unix.EIO
			}
			if peek && n > 0 {
				goto done // peek looks at one piece
			}
			c := copy(b[n:], x.reg.RXArea()[d.Off+x.rxOff:d.Off+d.Len])
			n += c
			if peek {
				goto done
			}
			x.rxOff += uint32(c)
			if x.rxOff == d.Len {
				rx.Pop()
				x.rxOff = 0
				popped = true
			}
		case sockbuf.KindEOF:
			if n > 0 {
				goto done
			}
			rx.Pop()
			x.eof = true
			popped = true
		case sockbuf.KindError:
			if n > 0 {
				goto done
			}
			rx.Pop()
			x.err = unix.Errno(d.Aux)
			popped = true
		default:
			rx.Pop()
		}
		if len(b) == 0 {
			break
		}
	}
done:
	if popped && x.reg.RXStalled().Load() != 0 && x.reg.RXStalled().Swap(0) != 0 {
		k.ring(x) // the server waits for room to give us more
	}
	if n > 0 {
		return n, nil
	}
	if x.err != nil {
		err := x.err
		x.err = nil
		x.eof = true // as Linux: the error once, then end of file
		x.errTaken = x.errTaken || x.dead
		return -1, err
	}
	st := x.reg.State().Load()
	switch {
	case x.eof || x.dead:
		return 0, nil
	case x.listen || st&(sockbuf.StConnected|sockbuf.StConnecting|sockbuf.StFailed) == 0:
		return -1, unix.ENOTCONN
	case st&sockbuf.StFailed != 0 && st&sockbuf.StConnected == 0:
		return 0, nil // a failed connect reads as end of file
	}
	return -1, unix.EAGAIN
}

// Writev sends the buffers as one stream write.
func (k *Exposed) Writev(fd FD, bufs [][]byte) (int, error) {
	x := k.get(fd)
	if x == nil {
		return k.Message.Writev(fd, bufs)
	}
	return k.sendv(fd, x, bufs, 0)
}

// post puts a control descriptor in the send ring, waiting for a slot.
func (k *Exposed) post(x *xfd, d sockbuf.Desc) error {
	for x.reg.TX().Free() == 0 {
		if k.checkServer(); x.dead {
			return unix.ECONNRESET
		}
		k.ring(x)
		time.Sleep(50 * time.Microsecond)
	}
	x.reclaim()
	if _, err := x.reg.TX().Put(&d); err != nil {
		return unix.EIO
	}
	x.tx.PostedOther()
	k.ring(x)
	return nil
}

// Shutdown shuts the connection down for receiving, sending or both.
func (k *Exposed) Shutdown(fd FD, how int) error {
	x := k.get(fd)
	if x == nil {
		return k.Message.Shutdown(fd, how)
	}
	if how < SHUT_RD || how > SHUT_RDWR {
		return unix.EINVAL
	}
	if x.dead {
		return unix.ENOTCONN
	}
	st := x.reg.State().Load()
	if st&sockbuf.StConnected == 0 && !(x.listen && how != SHUT_WR) {
		return unix.ENOTCONN
	}
	if how != SHUT_RD {
		x.wrShut = true
	}
	if how != SHUT_WR && !x.listen {
		x.eof = true
	}
	return k.post(x, sockbuf.Desc{Kind: sockbuf.KindShutdown, Aux: uint32(how)})
}

// maxIdle is how many closed sockets' regions stay mapped for reuse; past
// it, all of them are unmapped together.
const maxIdle = 64

// Close posts a close after any data still to send, and keeps the region
// mapped for the next socket.
func (k *Exposed) Close(fd FD) error {
	x := k.get(fd)
	if x == nil {
		return k.Message.Close(fd)
	}
	delete(k.socks, fd)
	if x.dead {
		x.reg.Close() // the server that shared it is gone
		return nil
	}
	var unread uint32
	if x.reg.RX().Len() > 0 && !x.listen {
		var d sockbuf.Desc
		if ok, _ := x.reg.RX().Peek(&d); ok && d.Kind == sockbuf.KindData {
			unread = 1 // Linux resets a connection closed with data unread
		}
	}
	// The epoch tells the server whether this region is still ours to
	// reuse when it gets to the close: a drop of every idle region may
	// overtake it.
	if err := k.post(x, sockbuf.Desc{Kind: sockbuf.KindClose, Aux: unread, A: k.epoch}); err != nil {
		k.direct(sockcall.Call{Op: ipc.OpClose, Sock: x.id})
	}
	k.idle[x.regionID] = x.reg
	if len(k.idle) > maxIdle {
		k.dropIdle()
	}
	return nil
}

// dropIdle unmaps the idle regions all together. The server is told first
// and answers once it will hand none of them out again; one it handed to a
// connection waiting in a listener's ring before that stays mapped for it.
func (k *Exposed) dropIdle() {
	k.epoch++
	if _, err := k.direct(sockcall.Call{Op: ipc.OpDropIdle, Epoch: k.epoch}); err != nil {
		return // keep them: the server may still hand them out
	}
	for _, x := range k.socks {
		if !x.listen {
			continue
		}
		var d sockbuf.Desc
		for i := 0; x.reg.RX().PeekAt(i, &d); i++ {
			if d.Kind == sockbuf.KindAccept {
				if r, ok := k.idle[d.B]; ok {
					delete(k.idle, d.B)
					k.pending[d.B] = r
				}
			}
		}
	}
	for id, r := range k.idle {
		r.Close()
		delete(k.idle, id)
	}
}

// SetNonblock sets or clears non-blocking mode, kept in the library.
func (k *Exposed) SetNonblock(fd FD, nonblocking bool) error {
	x := k.get(fd)
	if x == nil {
		return k.Message.SetNonblock(fd, nonblocking)
	}
	x.nonblock = nonblocking
	return nil
}

// SetsockoptInt sets an option (a message to the server).
func (k *Exposed) SetsockoptInt(fd FD, level, opt, value int) error {
	x := k.get(fd)
	if x == nil {
		return k.Message.SetsockoptInt(fd, level, opt, value)
	}
	if x.dead {
		return x.reset()
	}
	_, err := k.direct(sockcall.Call{Op: ipc.OpSetOpt, Sock: x.id, Level: level, Option: opt, Value: value})
	return err
}

// GetsockoptInt reads an option; SO_ERROR comes from the state word.
func (k *Exposed) GetsockoptInt(fd FD, level, opt int) (int, error) {
	x := k.get(fd)
	if x == nil {
		return k.Message.GetsockoptInt(fd, level, opt)
	}
	if x.dead {
		if level == SOL_SOCKET && opt == SO_ERROR && !x.errTaken {
			x.errTaken, x.err = true, nil
			return int(unix.ECONNRESET), nil
		}
		return 0, x.reset()
	}
	if level == SOL_SOCKET && opt == SO_ERROR {
		st := x.reg.State().Load()
		if st&sockbuf.StFailed != 0 && !x.errTaken {
			x.errTaken = true
			return int(st >> 32), nil
		}
		return 0, nil
	}
	r, err := k.direct(sockcall.Call{Op: ipc.OpGetOpt, Sock: x.id, Level: level, Option: opt})
	if err != nil {
		return 0, err
	}
	return int(r.Result), nil
}

// LocalAddr returns the socket's address.
func (k *Exposed) LocalAddr(fd FD) (netip.AddrPort, error) {
	x := k.get(fd)
	if x == nil {
		return k.Message.LocalAddr(fd)
	}
	if x.dead {
		return netip.AddrPort{}, x.reset()
	}
	r, err := k.direct(sockcall.Call{Op: ipc.OpLocalAddr, Sock: x.id})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return r.Addr, nil
}

// ready computes an exposed socket's poll bits from its region.
func (k *Exposed) ready(x *xfd, events int16) int16 {
	if x.dead { // reset: every call returns at once
		return (POLLIN | POLLOUT | POLLERR | POLLHUP) & (events | POLLERR | POLLHUP)
	}
	var r int16
	st := x.reg.State().Load()
	rxq := x.reg.RX().Len() > 0
	if x.listen {
		if rxq {
			r |= POLLIN
		}
		return r & (events | POLLERR | POLLHUP)
	}
	if rxq || x.eof || x.err != nil {
		r |= POLLIN
	}
	var d sockbuf.Desc
	if ok, _ := x.reg.RX().Peek(&d); (ok && d.Kind == sockbuf.KindError) || x.err != nil {
		r |= POLLERR // an error waits to be read, as Linux's sk_err
	}
	if st&sockbuf.StConnected != 0 && st&sockbuf.StSendShut == 0 && !x.wrShut {
		if x.reg.TX().Free() > 0 && x.txRoom() >= sockbuf.AreaSize/4 {
			r |= POLLOUT
		}
	} else if st&sockbuf.StConnecting == 0 {
		r |= POLLOUT // send would not wait: it fails at once
	}
	if st&sockbuf.StFailed != 0 && !x.errTaken {
		r |= POLLERR
	}
	if st&sockbuf.StHangUp != 0 {
		r |= POLLHUP
	}
	return r & (events | POLLERR | POLLHUP)
}

// reset is the error of a call on a socket its dead server reset:
// ECONNRESET the first time, as Linux reports a reset once.
func (x *xfd) reset() error {
	if !x.errTaken {
		x.errTaken, x.err = true, nil
		return unix.ECONNRESET
	}
	return unix.EINVAL
}

// reclaim frees the send area behind what the server has taken.
func (x *xfd) reclaim() {
	if t := x.reg.TX().Tail().Load(); t > x.txTail {
		x.tx.Consumed(int(t - x.txTail))
		x.txTail = t
	}
}

// txRoom is the free space of the send area.
func (x *xfd) txRoom() int {
	x.reclaim()
	_, n, _ := x.tx.Take(sockbuf.AreaSize)
	return n
}

// Poll scans the exposed sockets in memory (and asks the server about
// others); when nothing is ready it asks the tcp server for a wake-up and
// waits for it, or for the timeout.
func (k *Exposed) Poll(fds []PollFD, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	others := false
	for i := range fds {
		if k.get(fds[i].FD) == nil {
			others = true
		}
	}
	for armed := false; ; {
		n := 0
		for i := range fds {
			x := k.get(fds[i].FD)
			if x == nil {
				if _, err := k.Message.Poll(fds[i:i+1], 0); err != nil {
					return -1, err
				}
			} else {
				fds[i].Revents = k.ready(x, fds[i].Events)
			}
			if fds[i].Revents != 0 {
				n++
			}
		}
		if n > 0 || timeout == 0 {
			if armed {
				for i := range fds {
					if x := k.get(fds[i].FD); x != nil {
						x.reg.AppWaiting().Store(0)
					}
				}
			}
			return n, nil
		}
		wait := time.Duration(-1)
		if timeout > 0 {
			wait = time.Until(deadline)
			if wait <= 0 {
				return 0, nil
			}
		}
		if !armed {
			// Ask for a wake-up, then look once more: what the server did
			// before it saw the flag is seen now.
			for i := range fds {
				if x := k.get(fds[i].FD); x != nil {
					x.reg.AppWaiting().Store(1)
				}
			}
			armed = true
			continue
		}
		if others && (wait < 0 || wait > pollEvery) {
			wait = pollEvery
		}
		if err := k.c.WaitWake(wait); err != nil {
			return -1, err
		}
		armed = false
	}
}

package servers

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/proto"
	"github.com/newtsim/newtsim/servers/sockabi"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/servers/tcp"
)

// tcpServer is the TCP transport server: the tcp engine (package
// servers/tcp) fed with socket calls from syscall, segments from ip and
// the kernel's alarms. Calls that must wait (a blocking connect, accept,
// recv or send) are parked and retried when the engine says their socket
// changed.
type tcpServer struct {
	ip     string
	st     *tcp.Stack
	parked *parking[tcp.SockID]
	arms   arms[tcp.SockID] // polls waiting for their socket to change
	buf    []byte
	alarm  sys.Deadline
	due    time.Time // when an alarm whose timers wait for the queued messages came; zero: none waits
	drops  *drops
	stats  *tcpStats
	dump   atomic.Bool                 // SIGUSR1 asked for the connection table
	owner  map[tcp.SockID]ipc.Endpoint // sockets opened straight by an application
	apps   map[tcp.SockID]sockOwner    // every socket's application, to close them when it dies
	epoch  epoch                       // in the socket ids applications see
	x      exposed
	req    request // the call being served, kept here so that a call allocates nothing
	quota  quotas
}

// MaxBufferBytesPerApp bounds the bytes of send and receive buffers (their
// sizes, SO_SNDBUF and SO_RCVBUF as getsockopt reads them) of one
// application's tcp sockets together: what MaxSocketsPerApp sockets of the
// default size hold, so that an application that leaves the sizes alone
// never meets it, and one that grows them cannot hold more in all. A
// setsockopt that would take the total past it fails with ENOBUFS.
const MaxBufferBytesPerApp = MaxSocketsPerApp * 2 * tcp.DefaultBuffer

// TCP starts the tcp role: the tcp engine as a server, with exposed socket buffers.
func TCP(s *sys.Server) (sys.Handler, error) {
	t := &tcpServer{arms: arms[tcp.SockID]{}, owner: map[tcp.SockID]ipc.Endpoint{}, apps: map[tcp.SockID]sockOwner{},
		epoch: epochOf(s)}
	fs := flag.NewFlagSet("tcp", flag.ContinueOnError)
	fs.StringVar(&t.ip, "ip", "ip", "the IP server")
	addr := fs.String("addr", "198.18.0.2", "the host's address")
	timeWait := fs.Duration("time-wait", tcp.DefaultTimeWait, "how long a connection stays in TIME-WAIT (2 MSL)")
	minRTO := fs.Duration("min-rto", tcp.DefaultMinRTO, "the least retransmission timeout")
	tso := fs.Bool("tso", false, "TCP segmentation offload: the nic's TAP cuts segments (nic --tso, which the launcher "+
		"gives a tap run); segments to the link go to ip as large as a buffer holds, tagged with the MSS")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(*addr)
	if err != nil {
		return nil, err
	}
	// A segment within the host goes to ip in one buffer of our pool and
	// comes back in one of ip's, the IP header added: the loopback's MTU is
	// what a buffer holds, at most an IPv4 packet's 65535 bytes.
	// With TSO, a segment to the link goes the same way and on in one
	// frame of ip's, pf's and the nic's: a buffer holds it with its
	// Ethernet, IP and largest TCP headers.
	tsoMax := 0
	if *tso {
		tsoMax = s.Pool.BufSize() - proto.EthHeaderLen - proto.IPv4HeaderLen - tcp.MaxHeaderLen // the engine keeps it under MaxTSO
	}
	t.st = tcp.New(tcp.Config{Addrs: []netip.Addr{a}, MTU: tcp.DefaultMTU, LoopbackMTU: min(s.Pool.BufSize(), tcp.MaxIPPacket),
		TSOMax: tsoMax, TimeWait: *timeWait, MinRTO: *minRTO, Secret: uint64(time.Now().UnixNano())})
	t.buf = make([]byte, s.Pool.BufSize())
	t.drops = newDrops(s, "tcp", t.st.Drops)
	t.stats = newTCPStats(s.Registry)
	t.stats.follow(s, t.st)
	t.quota = newQuotas(s, "tcp")
	t.parked = newParking[tcp.SockID](t.quota)
	t.stats.takeNow(time.Now())
	if err := t.initExposed(s); err != nil {
		return nil, err
	}
	go t.dumpOnSignal(s)
	return t, nil
}

// dumpOnSignal asks the loop for its connection table on SIGUSR1 (like
// `ss -ti`), and an alarm so that an idle loop wakes up to log it. A
// kernel call is one datagram on the kernel connection, safe beside the
// loop's own.
func (t *tcpServer) dumpOnSignal(s *sys.Server) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	for range ch {
		t.dump.Store(true)
		s.ArmAlarm(time.Millisecond)
	}
}

// tickDefer bounds how long an alarm's timers wait for the messages
// queued when it came (see tickLater), where messages keep coming and the
// loop is never idle.
const tickDefer = 10 * time.Millisecond

func (t *tcpServer) Handle(s *sys.Server, m *ipc.Message) error {
	now := time.Now()
	t.x.awake.State().Store(1)
	if !t.due.IsZero() && now.Sub(t.due) >= tickDefer {
		t.tick(now)
	}
	if t.dump.Swap(false) {
		for _, c := range t.st.Conns() {
			s.Log.Printf("conn %v", c)
		}
	}
	switch m.Type {
	case ipc.Socket:
		t.req = newRequest(m)
		if err := t.call(s, now, &t.req); err != nil {
			return err
		}
	case ipc.Datagram:
		t.input(s, now, m)
	case ipc.ICMPError:
		t.icmpError(s, now, m)
	case ipc.Alarm:
		t.alarm.Expired()
		t.tickLater(s, now)
	case ipc.EndpointDown:
		var d kcall.EndpointDown
		d.Decode(m)
		t.down(s, now, d.Endpoint)
	case ipc.Doorbell:
		t.x.bells.Inc()
		var d sockcall.Doorbell
		d.Decode(m)
		if n, which := t.epoch.open(d.Sock); which == idOurs {
			if x := t.x.socks[tcp.SockID(n)]; x != nil && x.owner == m.Src {
				t.pump(s, now, x)
			}
		}
	default:
		return nil
	}
	t.scanBells(s, now) // awake anyway: look at the exposed sockets' doorbells
	return t.after(s, now)
}

// tickLater runs the engine's timers once the loop has handled the
// messages waiting in its channels, or tickDefer after the alarm where
// they keep coming. The alarm is a message among others, and one taken
// before a segment that came earlier (an ACK that ip handed on while tcp
// did not run) would fire a retransmission timer the ACK stops: the
// segments sent again reach a peer that has them (Linux's client counts
// them as TCPDSACKOldSent). Linux's softirq likewise takes the packets its
// NIC has queued before its timers, in one pass.
func (t *tcpServer) tickLater(s *sys.Server, now time.Time) {
	if !t.due.IsZero() {
		return // one waits already
	}
	t.due = now
	s.Later(func() {
		if t.due.IsZero() {
			return // ran already, tickDefer after the alarm
		}
		now := time.Now()
		t.tick(now)
		if err := t.after(s, now); err != nil {
			s.Log.Printf("after the timers: %v", err)
		}
	})
}

// tick runs the engine's timers due at now.
func (t *tcpServer) tick(now time.Time) {
	t.due = time.Time{}
	t.st.Tick(now)
}

// after sends what the engine made, retries the calls waiting on sockets
// that changed, and sets the kernel alarm for the engine's next timer.
func (t *tcpServer) after(s *sys.Server, now time.Time) error {
	for i := 0; i < 4; i++ { // a retried call can wake others; a few rounds settle it
		t.flush(s)
		w := t.st.Wakeups()
		if len(w) == 0 {
			break
		}
		for _, id := range w {
			if x := t.x.socks[id]; x != nil {
				t.pump(s, now, x)
			}
			t.arms.fire(s, id, uint64(t.epoch.id(int32(id))), func(ev int16) int16 { return t.ready(id, ev) })
			if err := t.retry(s, now, id); err != nil {
				return err
			}
		}
	}
	t.flush(s)
	t.drops.update(now)
	at, ok := t.st.Deadline()
	if ok {
		t.stats.update(now)
	} else {
		t.stats.takeNow(now) // an idle engine publishes its final state at once
	}
	if ok && t.due.IsZero() { // a tick that waits sets it when it has run
		return t.alarm.Set(s, now, at)
	}
	return nil
}

// flush hands the engine's segments to ip, each in a buffer of our pool.
func (t *tcpServer) flush(s *sys.Server) {
	for _, seg := range t.st.Out() {
		// A segment that finds no buffer or no ip is lost: TCP sends it again.
		sendSegment(s, t.ip, proto.TCP, seg.Src, seg.Dst, seg.Data, seg.SegSize)
	}
}

func (t *tcpServer) input(s *sys.Server, now time.Time, m *ipc.Message) {
	src, dst, seg, ref, ok := segmentIn(s, m)
	if !ok {
		return
	}
	t.st.Input(now, src, dst, seg)
	if err := s.Release(ref); err != nil {
		s.Log.Printf("release: %v", err)
	}
}

// icmpError hands the engine an ICMP error ip passed on about one of our
// segments. Only ip may say so: an application could forge one.
func (t *tcpServer) icmpError(s *sys.Server, now time.Time, m *ipc.Message) {
	if s.PeerName(m.Src.Slot()) != t.ip {
		return
	}
	var e packet.ICMPError
	e.Decode(m)
	t.st.ICMPError(now, e.Local, e.Remote, tcp.Seq(e.Seq), e.Type, e.Code, int(e.MTU))
}

// retry runs again the calls parked on a socket, in order; those that
// still cannot finish park again.
func (t *tcpServer) retry(s *sys.Server, now time.Time, id tcp.SockID) error {
	p := t.parked.take(id)
	for i := range p {
		if err := t.call(s, now, &p[i]); err != nil {
			return err
		}
	}
	return nil
}

// reply answers a socket call: a result, or the errno of err.
func (t *tcpServer) reply(s *sys.Server, q *request, result int64, err error) error {
	if err != nil {
		return q.fail(s, sockabi.Errno(err))
	}
	return q.ok(s, result)
}

// tcpCalls is the tcp server's call vector: a handler for each socket
// operation, as a MINIX server's table of do_ functions.
var tcpCalls = [ipc.NumSocketOps]func(t *tcpServer, s *sys.Server, now time.Time, q *request) error{
	ipc.OpOpen:      (*tcpServer).doOpen,
	ipc.OpDropIdle:  (*tcpServer).doDropIdle,
	ipc.OpBind:      (*tcpServer).doBind,
	ipc.OpListen:    (*tcpServer).doListen,
	ipc.OpConnect:   (*tcpServer).doConnect,
	ipc.OpAccept:    (*tcpServer).doAccept,
	ipc.OpSendTo:    (*tcpServer).doSendTo,
	ipc.OpRecvFrom:  (*tcpServer).doRecvFrom,
	ipc.OpClose:     (*tcpServer).doClose,
	ipc.OpPoll:      (*tcpServer).doPoll,
	ipc.OpShutdown:  (*tcpServer).doShutdown,
	ipc.OpSetOpt:    (*tcpServer).doSetOpt,
	ipc.OpGetOpt:    (*tcpServer).doGetOpt,
	ipc.OpLocalAddr: (*tcpServer).doLocalAddr,
}

// call runs a socket call's handler; an operation with none is ENOSYS.
// An application calling the server itself may only name its own sockets.
func (t *tcpServer) call(s *sys.Server, now time.Time, q *request) error {
	if o := ownerOf(s, q); s.Gone(o.app) || s.Gone(o.via) {
		return nil // sent before its application (or syscall) died: nobody waits
	}
	if t.epoch.local(s, q) {
		return nil
	}
	if direct(s, q.m.Src) && q.Op != ipc.OpOpen && q.Op != ipc.OpDropIdle && t.owner[tcp.SockID(q.Sock)] != q.m.Src {
		return t.reply(s, q, 0, tcp.ErrBadSocket)
	}
	if int(q.Op) < len(tcpCalls) && tcpCalls[q.Op] != nil {
		return tcpCalls[q.Op](t, s, now, q)
	}
	return q.fail(s, unix.ENOSYS)
}

func (t *tcpServer) doOpen(s *sys.Server, now time.Time, q *request) error {
	if q.Type != unix.SOCK_STREAM {
		return t.reply(s, q, 0, tcp.ErrInvalid)
	}
	if !admitSocket(t.quota, t.apps, ownerOf(s, q).app) {
		return q.fail(s, unix.EMFILE)
	}
	nid := t.st.Open()
	t.apps[nid] = ownerOf(s, q)
	if !direct(s, q.m.Src) {
		return q.ok(s, t.epoch.id(int32(nid)))
	}
	t.owner[nid] = q.m.Src
	if !q.Exposed {
		return q.ok(s, t.epoch.id(int32(nid)))
	}
	x, err := t.expose(s, nid, q.m.Src, q.Region)
	if err != nil {
		s.Log.Printf("expose: %v", err)
		t.st.Close(now, nid)
		delete(t.owner, nid)
		delete(t.apps, nid)
		return t.reply(s, q, 0, tcp.ErrNoBuffers)
	}
	x.reg.State().Store(t.stateWord(x))
	r := q.Reply(t.epoch.id(int32(nid)))
	r.Region = x.regionID
	return q.answer(s, r)
}

func (t *tcpServer) doDropIdle(s *sys.Server, now time.Time, q *request) error {
	t.dropIdle(q.m.Src, q.Epoch)
	return q.ok(s, 0)
}

func (t *tcpServer) doBind(s *sys.Server, now time.Time, q *request) error {
	return t.reply(s, q, 0, t.st.Bind(tcp.SockID(q.Sock), q.Addr))
}

func (t *tcpServer) doListen(s *sys.Server, now time.Time, q *request) error {
	id := tcp.SockID(q.Sock)
	err := t.st.Listen(id, int(int32(q.Backlog)))
	t.publish(id)
	return t.reply(s, q, 0, err)
}

func (t *tcpServer) doConnect(s *sys.Server, now time.Time, q *request) error {
	id := tcp.SockID(q.Sock)
	if !q.parked { // a new call, not a retry
		if !q.nonblocking() && !t.parked.admit(s, q) {
			return q.fail(s, unix.ENOBUFS) // before the handshake starts
		}
		err := t.st.Connect(now, id, q.Addr)
		t.publish(id)
		if !errors.Is(err, tcp.ErrInProgress) || q.nonblocking() {
			return t.reply(s, q, 0, err)
		}
	}
	done, err := t.st.ConnectDone(id)
	if !done {
		t.parked.park(s, id, q) // wait for the handshake (admitted above)
		return nil
	}
	return t.reply(s, q, 0, err)
}

func (t *tcpServer) doAccept(s *sys.Server, now time.Time, q *request) error {
	id := tcp.SockID(q.Sock)
	nid, from, err := t.st.Accept(id)
	if errors.Is(err, tcp.ErrWouldBlock) && !q.nonblocking() {
		if !t.parked.park(s, id, q) {
			return q.fail(s, unix.ENOBUFS)
		}
		return nil
	}
	if err != nil {
		return t.reply(s, q, 0, err)
	}
	if direct(s, q.m.Src) {
		t.owner[nid] = q.m.Src
	}
	t.apps[nid] = ownerOf(s, q)
	r := q.Reply(t.epoch.id(int32(nid)))
	r.Addr = from
	return q.answer(s, r)
}

func (t *tcpServer) doSendTo(s *sys.Server, now time.Time, q *request) error {
	id := tcp.SockID(q.Sock)
	b, err := s.Buffer(&q.m, q.Buf)
	if err != nil {
		return t.reply(s, q, 0, tcp.ErrInvalid)
	}
	n, err := t.st.Send(now, id, b)
	if errors.Is(err, tcp.ErrWouldBlock) && !q.nonblocking() && t.parked.park(s, id, q) {
		return nil // the buffer stays the caller's until then
	}
	if errors.Is(err, tcp.ErrWouldBlock) && !q.nonblocking() {
		err = tcp.ErrNoBuffers // MaxParkedPerApp
	}
	if rerr := s.Release(q.Buf); rerr != nil {
		s.Log.Printf("release: %v", rerr)
	}
	return t.reply(s, q, int64(n), err)
}

// doRecvFrom answers a receive with data in a buffer of our pool (at most
// what the caller takes); with none, a non-blocking one gets EAGAIN and a
// blocking one waits. An application holding MaxBuffersPerApp of the
// pool's buffers gets ENOBUFS.
func (t *tcpServer) doRecvFrom(s *sys.Server, now time.Time, q *request) error {
	if !t.quota.admitReceive(s, q) {
		return q.fail(s, unix.ENOBUFS) // MaxBuffersPerApp: the data stays queued
	}
	id := tcp.SockID(q.Sock)
	want := len(t.buf)
	if q.Max > 0 && q.Max < want {
		want = q.Max
	}
	n, err := t.st.Recv(now, id, t.buf[:want], q.Flags&unix.MSG_PEEK != 0)
	if errors.Is(err, tcp.ErrWouldBlock) && !q.nonblocking() {
		if !t.parked.park(s, id, q) {
			return q.fail(s, unix.ENOBUFS)
		}
		return nil
	}
	if err != nil {
		return t.reply(s, q, 0, err)
	}
	if n == 0 {
		return q.ok(s, 0) // end of file
	}
	ref, err := s.Copy(t.buf[:n])
	if err != nil {
		return t.reply(s, q, 0, tcp.ErrNoBuffers)
	}
	r := q.Reply(int64(n))
	r.Buf = ref
	return q.answer(s, r)
}

func (t *tcpServer) doClose(s *sys.Server, now time.Time, q *request) error {
	id := tcp.SockID(q.Sock)
	for _, p := range t.parked.take(id) {
		if p.Op == ipc.OpSendTo {
			if _, err := s.Buffer(&p.m, p.Buf); err == nil {
				s.Release(p.Buf)
			}
		}
		t.reply(s, &p, 0, tcp.ErrBadSocket)
	}
	if x := t.x.socks[id]; x != nil {
		t.closeExposed(now, x, false) // a close by message: the region may be gone
		return q.ok(s, 0)
	}
	delete(t.owner, id)
	delete(t.apps, id)
	delete(t.arms, id)
	return t.reply(s, q, 0, t.st.Close(now, id))
}

// sockOwner is the application a socket is for, and the syscall server
// its calls come through (None: straight from the application).
type sockOwner struct {
	app, via ipc.Endpoint
}

// ownerOf is the owner of a socket a call opened or accepted.
func ownerOf(s *sys.Server, q *request) sockOwner {
	if direct(s, q.m.Src) {
		return sockOwner{app: q.m.Src}
	}
	return sockOwner{app: q.Caller, via: q.m.Src}
}

// down closes every socket of a process that died (docs/RECOVERY.md): an
// application's, or those it used through a syscall server that died,
// which no descriptor names any more. Listeners close too, so the port is
// free for the application's next incarnation; connections close as the
// application's exit would have closed them. The calls they had waiting
// are forgotten (their buffers given back): nobody waits for the answer.
func (t *tcpServer) down(s *sys.Server, now time.Time, ep ipc.Endpoint) {
	for id, o := range t.apps {
		if o.app != ep && o.via != ep {
			continue
		}
		for _, p := range t.parked.take(id) {
			if p.Op == ipc.OpSendTo {
				if _, err := s.Buffer(&p.m, p.Buf); err == nil {
					s.Release(p.Buf)
				}
			}
		}
		if x := t.x.socks[id]; x != nil {
			t.closeExposed(now, x, false)
		} else {
			t.st.Close(now, id)
		}
		delete(t.owner, id)
		delete(t.apps, id)
		delete(t.arms, id)
	}
	t.dropIdle(ep, 0)
	delete(t.x.epoch, ep)
}

// ready is which of events the socket id is ready for, as poll reports
// them; 0 for a socket the engine no longer has (a poll asks again and
// learns why).
func (t *tcpServer) ready(id tcp.SockID, events int16) int16 {
	r, err := t.st.Ready(id)
	if err != nil {
		return 0
	}
	return sockabi.PollEvents(r, events)
}

func (t *tcpServer) doPoll(s *sys.Server, now time.Time, q *request) error {
	r, err := t.st.Ready(tcp.SockID(q.Sock))
	if err != nil {
		return t.reply(s, q, 0, err)
	}
	ev := sockabi.PollEvents(r, q.Events)
	if ev == 0 && q.Arm {
		t.arms.arm(tcp.SockID(q.Sock), q)
	}
	return q.ok(s, int64(uint16(ev)))
}

func (t *tcpServer) doShutdown(s *sys.Server, now time.Time, q *request) error {
	how := q.How
	if how < 0 || how > unix.SHUT_RDWR {
		return t.reply(s, q, 0, tcp.ErrInvalid)
	}
	return t.reply(s, q, 0, t.st.Shutdown(now, tcp.SockID(q.Sock), how != unix.SHUT_WR, how != unix.SHUT_RD))
}

func (t *tcpServer) doSetOpt(s *sys.Server, now time.Time, q *request) error {
	o, ok := sockabi.TCPOption(q.Level, q.Option)
	if !ok {
		return t.reply(s, q, 0, tcp.ErrNoOption)
	}
	id, v := tcp.SockID(q.Sock), int(int32(q.Value))
	if (o == tcp.OptSendBuf || o == tcp.OptRecvBuf) && !t.admitBuffer(s, q, id, o, v) {
		return q.fail(s, unix.ENOBUFS)
	}
	return t.reply(s, q, 0, t.st.SetOption(id, o, v))
}

// admitBuffer reports whether setting buffer option o of socket id to v
// keeps its application's sockets' buffers within MaxBufferBytesPerApp;
// a refusal is counted. Making a buffer smaller is always let through.
func (t *tcpServer) admitBuffer(s *sys.Server, q *request, id tcp.SockID, o tcp.Option, v int) bool {
	cur, err := t.st.GetOption(id, o)
	if err != nil || t.st.BufferSize(v) <= cur {
		return true // the engine answers for a socket it does not know
	}
	app, total := ownerOf(s, q).app, 0
	for sid, w := range t.apps {
		if w.app != app {
			continue
		}
		snd, _ := t.st.GetOption(sid, tcp.OptSendBuf)
		rcv, _ := t.st.GetOption(sid, tcp.OptRecvBuf)
		total += snd + rcv
	}
	if total-cur+t.st.BufferSize(v) > MaxBufferBytesPerApp {
		t.quota.refuse(quotaBuffers)
		return false
	}
	return true
}

func (t *tcpServer) doGetOpt(s *sys.Server, now time.Time, q *request) error {
	id := tcp.SockID(q.Sock)
	if q.Level == unix.SOL_SOCKET && q.Option == unix.SO_ERROR {
		e, err := t.st.TakeError(id)
		v := int64(0)
		if e != nil {
			v = int64(sockabi.Errno(e))
		}
		return t.reply(s, q, v, err)
	}
	o, ok := sockabi.TCPOption(q.Level, q.Option)
	if !ok {
		return t.reply(s, q, 0, tcp.ErrNoOption)
	}
	v, err := t.st.GetOption(id, o)
	return t.reply(s, q, int64(v), err)
}

func (t *tcpServer) doLocalAddr(s *sys.Server, now time.Time, q *request) error {
	a, err := t.st.LocalAddr(tcp.SockID(q.Sock))
	if err != nil {
		return t.reply(s, q, 0, err)
	}
	r := q.Reply(0)
	r.Addr = a
	return q.answer(s, r)
}

// tcpStats exports the engine's counters, its buffer memory and its
// connections by state. A tcp server's loop publishes them through the
// snapshot (see follow); a scrape reads the copy.
type tcpStats struct {
	snapshot // a tcp server's; unused where read is set
	mu       sync.Mutex
	st       tcp.Stats
	mem      int
	byState  map[tcp.State]int
	descs    map[string]*prometheus.Desc
	memory   *prometheus.Desc
	state    *prometheus.Desc
	// read, where set, reads the engine at each scrape instead (an engine
	// outside a tcp server: RegisterTCPMetrics).
	read func() (tcp.Stats, int, map[tcp.State]int)
}

// RegisterTCPMetrics registers on r the tcp server's metrics
// (newtsim_tcp_*) for a tcp engine that runs outside a tcp server, such as
// the monolithic host's (sim/host): read returns the engine's counters,
// its buffer memory and its connections by state, at each scrape.
func RegisterTCPMetrics(r *prometheus.Registry, read func() (tcp.Stats, int, map[tcp.State]int)) {
	newTCPStats(r).read = read
}

func newTCPStats(r *prometheus.Registry) *tcpStats {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "tcp", name), help, nil, nil)
	}
	t := &tcpStats{descs: map[string]*prometheus.Desc{
		"segments_in":    d("segments_received_total", "Segments ip delivered to tcp."),
		"segments_out":   d("segments_sent_total", "Segments tcp sent, retransmissions included."),
		"retransmits":    d("retransmitted_segments_total", "Segments sent again."),
		"rto":            d("rto_expiries_total", "Retransmission timer expiries."),
		"spurious_rtos":  d("spurious_rtos_total", "Retransmission timeouts found spurious (F-RTO, RFC 5682, or the timestamps, RFC 3522) and undone."),
		"fast":           d("fast_retransmits_total", "Fast retransmits (three duplicate ACKs)."),
		"dsacks_sent":    d("dsacks_sent_total", "D-SACK blocks sent (RFC 2883): segments received twice, below RCV.NXT or out of order."),
		"dsacks_in":      d("dsacks_received_total", "Valid D-SACK blocks received (RFC 2883): segments the peer received twice."),
		"dsack_undos":    d("dsack_undos_total", "Window reductions undone, every segment the episode sent again having been D-SACKed (RFC 3708)."),
		"bytes_in":       d("received_bytes_total", "Payload bytes delivered to applications."),
		"bytes_out":      d("sent_bytes_total", "Payload bytes applications handed to tcp."),
		"challenge_acks": d("challenge_acks_total", "Challenge ACKs sent (RFC 5961)."),
		"active_opens":   d("active_opens_total", "Connections opened by connect."),
		"passive_opens":  d("passive_opens_total", "Connections opened by a listener."),
		"resets":         d("resets_sent_total", "RST segments sent."),
		"cookies_sent":   d("syn_cookies_sent_total", "SYN-ACKs sent with a SYN cookie, a listener's queue being full."),
		"cookies_ok":     d("syn_cookies_validated_total", "ACKs whose SYN cookie made a connection."),
		"cookies_failed": d("syn_cookies_failed_total", "ACKs with a SYN cookie not ours or too old."),
		"tw_overflows":   d("time_wait_overflows_total", "Connections closed at once, TIME-WAIT being full."),
		"orphan_resets":  d("orphan_resets_total", "Closes that reset the connection, for too many orphans or too much memory."),
		"icmp_errors":    d("icmp_errors_total", "ICMP errors about connections acted on."),
		"icmp_window":    d("icmp_out_of_window_total", "ICMP errors ignored: the sequence number they quote is not in flight."),
		"icmp_ignored":   d("icmp_ignored_total", "ICMP errors ignored: no connection, TIME-WAIT, or a type not used."),
	}, memory: prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "tcp", "memory_bytes"),
		"Bytes of socket buffers held.", nil, nil),
		state: prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "tcp", "connections"),
			"Sockets and connections by state.", []string{"state"}, nil)}
	r.MustRegister(t)
	return t
}

// follow has s's loop publish st's counters, memory and connections for
// the metrics, through the snapshot.
func (t *tcpStats) follow(s *sys.Server, st *tcp.Stack) {
	t.snapshot = snapshot{s: s, take: func() {
		c, mem, by := st.Stats(), st.Memory(), st.ByState()
		t.mu.Lock()
		t.st, t.mem, t.byState = c, mem, by
		t.mu.Unlock()
	}}
}

func (t *tcpStats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range t.descs {
		ch <- d
	}
	ch <- t.memory
	ch <- t.state
}

func (t *tcpStats) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.read != nil {
		t.st, t.mem, t.byState = t.read()
	}
	for k, v := range map[string]uint64{"segments_in": t.st.SegmentsIn, "segments_out": t.st.SegmentsOut,
		"retransmits": t.st.Retransmits, "rto": t.st.RTOExpiries, "spurious_rtos": t.st.SpuriousRTOs, "fast": t.st.FastRetransmits,
		"dsacks_sent": t.st.DSACKsSent, "dsacks_in": t.st.DSACKsReceived, "dsack_undos": t.st.DSACKUndos,
		"bytes_in": t.st.BytesIn, "bytes_out": t.st.BytesOut, "challenge_acks": t.st.ChallengeACKs,
		"active_opens": t.st.ActiveOpens, "passive_opens": t.st.PassiveOpens, "resets": t.st.Resets,
		"cookies_sent": t.st.SynCookiesSent, "cookies_ok": t.st.SynCookiesValidated, "cookies_failed": t.st.SynCookiesFailed,
		"tw_overflows": t.st.TimeWaitOverflows, "orphan_resets": t.st.OrphanResets,
		"icmp_errors": t.st.ICMPErrors, "icmp_window": t.st.ICMPOutOfWindow, "icmp_ignored": t.st.ICMPIgnored} {
		ch <- prometheus.MustNewConstMetric(t.descs[k], prometheus.CounterValue, float64(v))
	}
	ch <- prometheus.MustNewConstMetric(t.memory, prometheus.GaugeValue, float64(t.mem))
	for _, s := range tcp.States() {
		ch <- prometheus.MustNewConstMetric(t.state, prometheus.GaugeValue, float64(t.byState[s]), s.String())
	}
}

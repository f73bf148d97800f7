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
	ip      string
	st      *tcp.Stack
	parked  map[tcp.SockID][]ipc.Message
	buf     []byte
	alarmAt time.Time
	drops   *drops
	stats   *tcpStats
	dump    atomic.Bool                 // SIGUSR1 asked for the connection table
	owner   map[tcp.SockID]ipc.Endpoint // sockets opened straight by an application
	x       exposed
}

// TCP starts the tcp role: the tcp engine as a server, with exposed socket buffers.
func TCP(s *sys.Server) (sys.Handler, error) {
	t := &tcpServer{parked: map[tcp.SockID][]ipc.Message{}, owner: map[tcp.SockID]ipc.Endpoint{}}
	fs := flag.NewFlagSet("tcp", flag.ContinueOnError)
	fs.StringVar(&t.ip, "ip", "ip", "the IP server")
	addr := fs.String("addr", "198.18.0.2", "the host's address")
	timeWait := fs.Duration("time-wait", tcp.DefaultTimeWait, "how long a connection stays in TIME-WAIT (2 MSL)")
	minRTO := fs.Duration("min-rto", tcp.DefaultMinRTO, "the least retransmission timeout")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(*addr)
	if err != nil {
		return nil, err
	}
	mtu := 1500
	t.st = tcp.New(tcp.Config{Addrs: []netip.Addr{a}, MTU: mtu, TimeWait: *timeWait, MinRTO: *minRTO,
		Secret: uint64(time.Now().UnixNano())})
	t.buf = make([]byte, s.Pool.BufSize())
	t.drops = newDrops(s, "tcp", t.st.Drops)
	t.stats = newTCPStats(s.Registry)
	t.stats.update(time.Now(), t.st, true)
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
		s.K.Send(&ipc.Message{Dst: ipc.Kernel, Type: ipc.SetAlarm, Arg: [ipc.NumArgs]uint64{uint64(time.Millisecond)}})
	}
}

func (t *tcpServer) Handle(s *sys.Server, m *ipc.Message) error {
	now := time.Now()
	t.x.awake.State().Store(1)
	if t.dump.Swap(false) {
		for _, c := range t.st.Conns() {
			s.Log.Printf("conn %v", c)
		}
	}
	switch m.Type {
	case ipc.Socket:
		if err := t.call(s, now, m); err != nil {
			return err
		}
	case ipc.Datagram:
		t.input(s, now, m)
	case ipc.Alarm:
		t.alarmAt = time.Time{}
		t.st.Tick(now)
	case ipc.Doorbell:
		t.x.bells.Inc()
		if x := t.x.socks[tcp.SockID(m.Arg[0])]; x != nil && x.owner == m.Src {
			t.pump(s, now, x)
		}
	default:
		return nil
	}
	t.scanBells(s, now) // awake anyway: look at the exposed sockets' doorbells
	return t.after(s, now)
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
			if err := t.retry(s, now, id); err != nil {
				return err
			}
		}
	}
	t.flush(s)
	t.drops.update(now, t.st.Drops)
	at, ok := t.st.Deadline()
	t.stats.update(now, t.st, !ok) // an idle engine publishes its final state at once
	if ok && (t.alarmAt.IsZero() || at.Before(t.alarmAt)) {
		t.alarmAt = at
		d := max(at.Sub(now), 100*time.Microsecond)
		return s.K.Send(&ipc.Message{Dst: ipc.Kernel, Type: ipc.SetAlarm, Arg: [ipc.NumArgs]uint64{uint64(d)}})
	}
	return nil
}

// flush hands the engine's segments to ip, each in a buffer of our pool.
func (t *tcpServer) flush(s *sys.Server) {
	for _, seg := range t.st.Out() {
		// A segment that finds no buffer or no ip is lost: TCP sends it again.
		sendSegment(s, t.ip, proto.TCP, seg.Src, seg.Dst, seg.Data)
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

// retry runs again the calls parked on a socket, in order; those that
// still cannot finish park again.
func (t *tcpServer) retry(s *sys.Server, now time.Time, id tcp.SockID) error {
	p := t.parked[id]
	if len(p) == 0 {
		return nil
	}
	delete(t.parked, id)
	for i := range p {
		if err := t.call(s, now, &p[i]); err != nil {
			return err
		}
	}
	return nil
}

func (t *tcpServer) park(m *ipc.Message, id tcp.SockID) error {
	t.parked[id] = append(t.parked[id], *m)
	return nil
}

// tcpReply answers a socket call: a result, or the errno of err.
func tcpReply(s *sys.Server, m *ipc.Message, result int64, err error, args ...uint64) error {
	if err != nil {
		result = -int64(sockabi.Errno(err))
	}
	return sendReply(s, m, result, args...)
}

// nonblocking reports whether the call asked not to wait.
func nonblocking(m *ipc.Message) bool { return m.Arg[4]&unix.MSG_DONTWAIT != 0 }

func (t *tcpServer) call(s *sys.Server, now time.Time, m *ipc.Message) error {
	id := tcp.SockID(m.Arg[0])
	st := t.st
	op := ipc.SocketOp(m.Flags)
	if direct(s, m) && op != ipc.OpOpen && op != ipc.OpDropIdle && t.owner[id] != m.Src {
		// An application calling the server itself may only name its own
		// sockets.
		return tcpReply(s, m, 0, tcp.ErrBadSocket)
	}
	switch op {
	case ipc.OpOpen:
		if m.Arg[0] != unix.SOCK_STREAM {
			return tcpReply(s, m, 0, tcp.ErrInvalid)
		}
		nid := st.Open()
		if !direct(s, m) {
			return tcpReply(s, m, int64(nid), nil)
		}
		t.owner[nid] = m.Src
		if m.Arg[4] != ipc.OpenExposed {
			return tcpReply(s, m, int64(nid), nil)
		}
		x, err := t.expose(s, nid, m.Src, m.Arg[3])
		if err != nil {
			s.Log.Printf("expose: %v", err)
			st.Close(now, nid)
			delete(t.owner, nid)
			return tcpReply(s, m, 0, tcp.ErrNoBuffers)
		}
		x.reg.State().Store(t.stateWord(x))
		return tcpReply(s, m, int64(nid), nil, x.regionID)
	case ipc.OpDropIdle:
		t.dropIdle(m.Src, m.Arg[1])
		return tcpReply(s, m, 0, nil)
	case ipc.OpBind:
		return tcpReply(s, m, 0, st.Bind(id, addrPort(m)))
	case ipc.OpListen:
		err := st.Listen(id, int(int32(m.Arg[4])))
		t.publish(id)
		return tcpReply(s, m, 0, err)
	case ipc.OpConnect:
		if m.Arg[3] == 0 { // a new call, not a retry
			err := st.Connect(now, id, addrPort(m))
			t.publish(id)
			if !errors.Is(err, tcp.ErrInProgress) || nonblocking(m) {
				return tcpReply(s, m, 0, err)
			}
			m.Arg[3] = 1 // parked: wait for the handshake
		}
		done, err := st.ConnectDone(id)
		if !done {
			return t.park(m, id)
		}
		return tcpReply(s, m, 0, err)
	case ipc.OpAccept:
		nid, from, err := st.Accept(id)
		if errors.Is(err, tcp.ErrWouldBlock) && !nonblocking(m) {
			return t.park(m, id)
		}
		if err != nil {
			return tcpReply(s, m, 0, err)
		}
		if direct(s, m) {
			t.owner[nid] = m.Src
		}
		return tcpReply(s, m, int64(nid), nil, Addr4(from.Addr()), uint64(from.Port()))
	case ipc.OpSendTo:
		b, ref, err := s.Buffer(m, 3)
		if err != nil {
			return tcpReply(s, m, 0, tcp.ErrInvalid)
		}
		n, err := st.Send(now, id, b)
		if errors.Is(err, tcp.ErrWouldBlock) && !nonblocking(m) {
			return t.park(m, id) // the buffer stays the caller's until then
		}
		if rerr := s.Release(ref); rerr != nil {
			s.Log.Printf("release: %v", rerr)
		}
		return tcpReply(s, m, int64(n), err)
	case ipc.OpRecvFrom:
		return t.recv(s, now, m, id)
	case ipc.OpClose:
		for _, p := range t.parked[id] {
			if ipc.SocketOp(p.Flags) == ipc.OpSendTo {
				if _, ref, err := s.Buffer(&p, 3); err == nil {
					s.Release(ref)
				}
			}
			tcpReply(s, &p, 0, tcp.ErrBadSocket)
		}
		delete(t.parked, id)
		if x := t.x.socks[id]; x != nil {
			t.closeExposed(now, x, false) // a close by message: the region may be gone
			return tcpReply(s, m, 0, nil)
		}
		delete(t.owner, id)
		return tcpReply(s, m, 0, st.Close(now, id))
	case ipc.OpPoll:
		r, err := st.Ready(id)
		if err != nil {
			return tcpReply(s, m, 0, err)
		}
		ev := sockabi.PollEvents(r, int16(m.Arg[4]))
		return tcpReply(s, m, int64(uint16(ev)), nil)
	case ipc.OpShutdown:
		how := m.Arg[4]
		if how > unix.SHUT_RDWR {
			return tcpReply(s, m, 0, tcp.ErrInvalid)
		}
		return tcpReply(s, m, 0, st.Shutdown(now, id, how != unix.SHUT_WR, how != unix.SHUT_RD))
	case ipc.OpSetOpt:
		o, ok := sockabi.TCPOption(int(m.Arg[1]), int(m.Arg[2]))
		if !ok {
			return tcpReply(s, m, 0, tcp.ErrNoOption)
		}
		return tcpReply(s, m, 0, st.SetOption(id, o, int(int32(m.Arg[4]))))
	case ipc.OpGetOpt:
		if m.Arg[1] == unix.SOL_SOCKET && m.Arg[2] == unix.SO_ERROR {
			e, err := st.TakeError(id)
			v := int64(0)
			if e != nil {
				v = int64(sockabi.Errno(e))
			}
			return tcpReply(s, m, v, err)
		}
		o, ok := sockabi.TCPOption(int(m.Arg[1]), int(m.Arg[2]))
		if !ok {
			return tcpReply(s, m, 0, tcp.ErrNoOption)
		}
		v, err := st.GetOption(id, o)
		return tcpReply(s, m, int64(v), err)
	case ipc.OpLocalAddr:
		a, err := st.LocalAddr(id)
		return tcpReply(s, m, 0, err, Addr4(a.Addr()), uint64(a.Port()))
	}
	return tcpReply(s, m, -int64(unix.ENOSYS), nil)
}

// recv answers a receive with data in a buffer of our pool (Arg[3] of the
// call is the most the caller takes); with none, a non-blocking one gets
// EAGAIN and a blocking one waits.
func (t *tcpServer) recv(s *sys.Server, now time.Time, m *ipc.Message, id tcp.SockID) error {
	want := len(t.buf)
	if m.Arg[3] > 0 && m.Arg[3] < uint64(want) {
		want = int(m.Arg[3])
	}
	n, err := t.st.Recv(now, id, t.buf[:want], m.Arg[4]&unix.MSG_PEEK != 0)
	if errors.Is(err, tcp.ErrWouldBlock) && !nonblocking(m) {
		return t.park(m, id)
	}
	if err != nil {
		return tcpReply(s, m, 0, err)
	}
	if n == 0 {
		return tcpReply(s, m, 0, nil) // end of file
	}
	ref, buf, err := s.Pool.Alloc()
	if err != nil {
		return tcpReply(s, m, 0, tcp.ErrNoBuffers)
	}
	copy(buf, t.buf[:n])
	return tcpReply(s, m, int64(n), nil, 0, 0, uint64(s.Pool.Slice(ref, n)))
}

// tcpStats exports the engine's counters and its connections by state.
// The loop copies them here at most every 100 ms; a scrape reads the copy.
type tcpStats struct {
	mu      sync.Mutex
	taken   time.Time
	st      tcp.Stats
	byState map[tcp.State]int
	descs   map[string]*prometheus.Desc
	state   *prometheus.Desc
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
		"fast":           d("fast_retransmits_total", "Fast retransmits (three duplicate ACKs)."),
		"bytes_in":       d("received_bytes_total", "Payload bytes delivered to applications."),
		"bytes_out":      d("sent_bytes_total", "Payload bytes applications handed to tcp."),
		"challenge_acks": d("challenge_acks_total", "Challenge ACKs sent (RFC 5961)."),
		"active_opens":   d("active_opens_total", "Connections opened by connect."),
		"passive_opens":  d("passive_opens_total", "Connections opened by a listener."),
		"resets":         d("resets_sent_total", "RST segments sent."),
	}, state: prometheus.NewDesc(prometheus.BuildFQName(prom.Namespace, "tcp", "connections"),
		"Sockets and connections by state.", []string{"state"}, nil)}
	r.MustRegister(t)
	return t
}

func (t *tcpStats) update(now time.Time, st *tcp.Stack, force bool) {
	if !force && now.Sub(t.taken) < 100*time.Millisecond {
		return
	}
	s, by := st.Stats(), st.ByState()
	t.mu.Lock()
	t.st, t.byState, t.taken = s, by, now
	t.mu.Unlock()
}

func (t *tcpStats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range t.descs {
		ch <- d
	}
	ch <- t.state
}

func (t *tcpStats) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range map[string]uint64{"segments_in": t.st.SegmentsIn, "segments_out": t.st.SegmentsOut,
		"retransmits": t.st.Retransmits, "rto": t.st.RTOExpiries, "fast": t.st.FastRetransmits,
		"bytes_in": t.st.BytesIn, "bytes_out": t.st.BytesOut, "challenge_acks": t.st.ChallengeACKs,
		"active_opens": t.st.ActiveOpens, "passive_opens": t.st.PassiveOpens, "resets": t.st.Resets} {
		ch <- prometheus.MustNewConstMetric(t.descs[k], prometheus.CounterValue, float64(v))
	}
	for _, s := range tcp.States() {
		ch <- prometheus.MustNewConstMetric(t.state, prometheus.GaugeValue, float64(t.byState[s]), s.String())
	}
}

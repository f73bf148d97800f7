package servers

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/memfd"
	"github.com/newtsim/newtsim/ipc/runfiles"
	"github.com/newtsim/newtsim/ipc/sockbuf"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sockabi"
	"github.com/newtsim/newtsim/servers/sys"
	"github.com/newtsim/newtsim/servers/tcp"
)

// Exposed sockets (docs/EXPOSED.md): the tcp server keeps each one's
// buffers in a region the application maps too (package ipc/sockbuf). It
// moves data between the engine and the region's rings when the engine
// says the socket changed, when the application rings the doorbell, and,
// while it is awake anyway, whenever a doorbell moved. Before it sleeps it
// clears its awake word and looks once more, so an application that sees
// the word clear sends a Doorbell message and no work is ever missed.

// MaxIdleRegions bounds the regions of closed sockets kept for reuse per
// application.
const MaxIdleRegions = 64

// xsock is an exposed socket.
type xsock struct {
	id       tcp.SockID
	owner    ipc.Endpoint
	regionID uint64
	reg      *sockbuf.Region
	seenBell uint64
	rxAlloc  sockbuf.Alloc
	rxTail   uint64
	rxDone   bool // end of file or an error posted: nothing more to receive
	txPart   uint32
	est      bool         // the connection was established once
	children []tcp.SockID // a listener's accepted sockets posted but not yet taken
}

// exposed is the tcp server's exposed-socket state.
type exposed struct {
	socks   map[tcp.SockID]*xsock
	idle    map[ipc.Endpoint][]*xsock // closed sockets' regions, still mapped by their application
	epoch   map[ipc.Endpoint]uint64   // each application's last drop of its idle regions
	nextID  uint64
	awake   *sockbuf.Region // one word apps read: is the server awake?
	refused *prometheus.CounterVec
	bells   prometheus.Counter
	wakes   prometheus.Counter
	created prometheus.Counter
	reused  prometheus.Counter
	// budget bounds the descriptors one pump takes (pumpBudget; a test
	// may cut it), and budgetSpent counts the pumps that stopped at it.
	budget      int
	budgetSpent prometheus.Counter
	// regionFile makes the file of a new region: a sealed memfd
	// (newRegionFile); a test may make another, such as a named file it
	// can truncate (TestTCPExposedRegionTruncated).
	regionFile func(s *sys.Server, id uint64) (*os.File, error)
}

func (t *tcpServer) initExposed(s *sys.Server) error {
	t.x.socks = map[tcp.SockID]*xsock{}
	t.x.idle = map[ipc.Endpoint][]*xsock{}
	t.x.epoch = map[ipc.Endpoint]uint64{}
	t.x.nextID = uint64(time.Now().UnixNano()) << 16
	t.x.regionFile = newRegionFile
	t.x.budget = pumpBudget
	r, err := awakeWord(s)
	if err != nil {
		return fmt.Errorf("tcp: awake word: %w", err)
	}
	t.x.awake = r
	r.State().Store(1)
	t.x.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "tcp",
		Name: "exposed_refused_total", Help: "Exposed sockets ended for what their application wrote into shared memory, by reason."}, []string{"reason"})
	t.x.bells = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "tcp",
		Name: "doorbell_messages_total", Help: "Doorbell messages from applications (posted work found the server asleep)."})
	t.x.wakes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "tcp",
		Name: "wake_messages_total", Help: "Wake-up messages sent to applications waiting in poll."})
	t.x.created = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "tcp",
		Name: "exposed_regions_created_total", Help: "Exposed socket regions made (a file and two mappings each)."})
	t.x.reused = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "tcp",
		Name: "exposed_regions_reused_total", Help: "Exposed sockets given a closed socket's region, still mapped."})
	t.x.budgetSpent = prometheus.NewCounter(prometheus.CounterOpts{Namespace: prom.Namespace, Subsystem: "tcp",
		Name: "exposed_pump_budget_spent_total", Help: "Pumps of an exposed socket that stopped at their budget of descriptors, the rest left for the loop's next turn."})
	s.Registry.MustRegister(t.x.refused, t.x.bells, t.x.wakes, t.x.created, t.x.reused, t.x.budgetSpent)
	s.Idle = t.idle
	return nil
}

// awakeWord maps tcp's awake word: the sealed memfd the kernel made and
// handed over (its applications got read-only descriptors of it), the
// same file in every incarnation; without a kernel (a role's test), a
// word of its own that nobody else maps.
func awakeWord(s *sys.Server) (*sockbuf.Region, error) {
	if f, err := s.AwakeFile(s.Opts.Name); err == nil {
		return sockbuf.Map(f, true)
	}
	f, err := memfd.Create(runfiles.AwakeName(s.Opts.Run, s.Opts.Name), sockbuf.Size)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return sockbuf.New(f)
}

// direct reports whether a call came straight from an application rather
// than through syscall.
func direct(s *sys.Server, from ipc.Endpoint) bool {
	return !strings.HasPrefix(s.PeerName(from.Slot()), "syscall")
}

// newRegion gives owner a region: one of its idle ones when it offers one
// (want), else a new file, deposited with the kernel for owner to collect
// (sys.Server.Deposit) before the caller names it to owner, in the open's
// reply or an accept descriptor.
func (t *tcpServer) newRegion(s *sys.Server, owner ipc.Endpoint, want uint64) (uint64, *sockbuf.Region, error) {
	idle := t.x.idle[owner]
	for i, x := range idle {
		// The one the application offers, or for an accepted socket
		// (want 0) any: the application keeps every closed socket's
		// region mapped until it says it dropped them all.
		if want == 0 || x.regionID == want {
			t.x.idle[owner] = append(idle[:i], idle[i+1:]...)
			x.reg.Reset()
			t.x.reused.Inc()
			return x.regionID, x.reg, nil
		}
	}
	t.x.created.Inc()
	t.x.nextID++
	id := t.x.nextID
	f, err := t.x.regionFile(s, id)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close() // mapped: the mapping keeps the file, and the kernel its copy
	r, err := sockbuf.New(f)
	if err != nil {
		return 0, nil, err
	}
	if err := s.Deposit(owner, id, f); err != nil {
		r.Close()
		return 0, nil, err
	}
	return id, r, nil
}

// newRegionFile makes a region's file: a memfd with no name in /dev/shm
// (nobody can open it; its descriptor reaches the application through the
// kernel), sealed so that no holder can resize it (package memfd): the
// application cannot truncate it under tcp.
func newRegionFile(s *sys.Server, id uint64) (*os.File, error) {
	return memfd.Create(sockbuf.RegionName(s.Opts.Run, s.Opts.Name, id), sockbuf.Size)
}

// expose attaches a region to engine socket id for owner.
func (t *tcpServer) expose(s *sys.Server, id tcp.SockID, owner ipc.Endpoint, want uint64) (*xsock, error) {
	rid, r, err := t.newRegion(s, owner, want)
	if err != nil {
		return nil, err
	}
	x := &xsock{id: id, owner: owner, regionID: rid, reg: r}
	t.x.socks[id] = x
	t.owner[id] = owner
	t.apps[id] = sockOwner{app: owner}
	return x, nil
}

// release detaches a socket's region, keeping it for the application's
// next socket.
func (t *tcpServer) release(x *xsock, keep bool) {
	delete(t.x.socks, x.id)
	delete(t.owner, x.id)
	delete(t.apps, x.id)
	if !keep || len(t.x.idle[x.owner]) >= MaxIdleRegions {
		x.reg.Close()
		return
	}
	t.x.idle[x.owner] = append(t.x.idle[x.owner], x)
}

// dropIdle forgets every idle region of owner: it unmapped them, and this
// is its epoch-th drop. Closes posted before the drop that the server
// reaches after it carry an older epoch: their regions are dropped too.
func (t *tcpServer) dropIdle(owner ipc.Endpoint, epoch uint64) {
	for _, x := range t.x.idle[owner] {
		x.reg.Close()
	}
	delete(t.x.idle, owner)
	t.x.epoch[owner] = max(t.x.epoch[owner], epoch)
}

// hostile ends an exposed socket whose application wrote nonsense into
// its region: the connection is reset, the region dropped, the reason
// counted. Nothing else is touched.
func (t *tcpServer) hostile(s *sys.Server, now time.Time, x *xsock, reason string, err error) {
	t.x.refused.WithLabelValues(reason).Inc()
	s.Log.Printf("exposed socket %d of %s: %s: %v; closed", x.id, x.owner, reason, err)
	if reason != reasonFault { // a region that faults is not touched again
		x.reg.State().Store(sockbuf.StFailed | sockbuf.StHangUp | sockbuf.StSendShut | uint64(unix.EPROTO)<<32)
	}
	for _, c := range x.children {
		t.st.Close(now, c)
		if cx := t.x.socks[c]; cx != nil {
			t.release(cx, false)
		}
	}
	t.st.Close(now, x.id)
	t.release(x, false)
}

// reasonFault is the refusal of a region that faulted under the server:
// its application truncated the file (sys.Fault).
const reasonFault = "fault"

// pumpBudget bounds the descriptors one pump takes from a socket's
// transmit ring: an application that keeps posting cannot pin the loop.
const pumpBudget = 2 * sockbuf.Slots

// pump moves what it can between the engine and an exposed socket's
// region, publishes the socket's state, and wakes its application if it
// waits. It reports whether anything moved. A memory fault on the region
// (its application truncated the file) ends the socket as hostile.
func (t *tcpServer) pump(s *sys.Server, now time.Time, x *xsock) (changed bool) {
	defer func() {
		if f := sys.Fault(recover()); f != nil {
			t.hostile(s, now, x, reasonFault, f)
			changed = true
		}
	}()
	r := x.reg
	x.seenBell = r.Doorbell().Load()
	var d sockbuf.Desc
	tx := r.TX()
	for budget := t.x.budget; ; budget-- {
		if budget == 0 {
			t.x.budgetSpent.Inc()
			x.seenBell-- // scanBells looks again on the loop's next turn
			goto rx
		}
		ok, err := tx.Peek(&d)
		if err != nil {
			t.hostile(s, now, x, "tx-ring", err)
			return true
		}
		if !ok {
			break
		}
		switch d.Kind {
		case sockbuf.KindData:
			if err := d.Check(); err != nil {
				t.hostile(s, now, x, "tx-descriptor", err)
				return true
			}
			if x.txPart >= d.Len {
				x.txPart = 0
			}
			n, err := t.st.Send(now, x.id, r.TXArea()[d.Off+x.txPart:d.Off+d.Len])
			x.txPart += uint32(n)
			if errors.Is(err, tcp.ErrWouldBlock) || (err == nil && x.txPart < d.Len) {
				goto rx // the engine's buffer is full: on when it drains
			}
			tx.Pop() // sent, or the connection failed (its state says so)
			x.txPart = 0
			changed = true
		case sockbuf.KindShutdown:
			how := d.Aux
			if how <= unix.SHUT_RDWR {
				t.st.Shutdown(now, x.id, how != unix.SHUT_WR, how != unix.SHUT_RD)
			}
			tx.Pop()
			changed = true
		case sockbuf.KindClose:
			tx.Pop()
			if d.Aux != 0 { // the application left data unread: reset, as Linux
				t.st.Abort(now, x.id)
			}
			// Connections the application took from a listener before
			// closing it are its own now: they stay open.
			if t.consumed(s, now, x) {
				t.closeExposed(now, x, d.A >= t.x.epoch[x.owner])
			}
			return true
		default:
			t.hostile(s, now, x, "tx-kind", fmt.Errorf("descriptor kind %d", d.Kind))
			return true
		}
	}
rx:
	if !t.consumed(s, now, x) {
		return true
	}
	rx := r.RX()
	state, _ := t.st.State(x.id)
	x.est = x.est || state >= tcp.Established
	switch {
	case state == tcp.Listen:
		for rx.Free() > 0 {
			nid, from, err := t.st.Accept(x.id)
			if err != nil {
				break
			}
			c, err := t.expose(s, nid, x.owner, 0)
			if err != nil {
				s.Log.Printf("exposed accept: %v", err)
				t.st.Close(now, nid)
				break
			}
			rx.Put(&sockbuf.Desc{Kind: sockbuf.KindAccept, A: uint64(t.epoch.id(int32(nid))), B: c.regionID,
				Off: uint32(ipc.PackAddr(from.Addr())), Aux: uint32(from.Port())})
			x.rxAlloc.PostedOther()
			x.children = append(x.children, nid)
			changed = true
			t.pump(s, now, c)
		}
	case state >= tcp.Established || (state == tcp.Closed && x.est):
		changed = t.receive(now, x) || changed
	}
	if w := t.stateWord(x); w != r.State().Load() {
		r.State().Store(w)
		changed = true
	}
	if changed && r.AppWaiting().Load() != 0 && r.AppWaiting().Swap(0) != 0 {
		t.x.wakes.Inc()
		m := ipc.Message{Dst: x.owner}
		sockcall.Wake{Sock: uint64(t.epoch.id(int32(x.id)))}.Encode(&m)
		s.Send(&m)
	}
	return changed
}

// receive moves received data, then end of file or an error, into the
// receive ring.
func (t *tcpServer) receive(now time.Time, x *xsock) bool {
	r, rx := x.reg, x.reg.RX()
	changed := false
	for !x.rxDone && rx.Free() > 1 { // one slot stays for end of file or an error
		off, k, ok := x.rxAlloc.Take(16 << 10)
		if !ok {
			break
		}
		n, err := t.st.Recv(now, x.id, r.RXArea()[off:int(off)+k], false)
		switch {
		case n > 0:
			rx.Put(&sockbuf.Desc{Kind: sockbuf.KindData, Off: off, Len: uint32(n)})
			x.rxAlloc.Posted(n)
			changed = true
			continue
		case errors.Is(err, tcp.ErrWouldBlock):
			return changed
		case err == nil:
			rx.Put(&sockbuf.Desc{Kind: sockbuf.KindEOF})
		default:
			rx.Put(&sockbuf.Desc{Kind: sockbuf.KindError, Aux: uint32(sockabi.Errno(err))})
		}
		x.rxAlloc.PostedOther()
		x.rxDone = true
		return true
	}
	if !x.rxDone {
		r.RXStalled().Store(1) // no room: a doorbell when the application reads
	}
	return changed
}

// publish writes an exposed socket's state word now, before the reply to
// the call that changed it.
func (t *tcpServer) publish(id tcp.SockID) {
	if x := t.x.socks[id]; x != nil {
		x.reg.State().Store(t.stateWord(x))
	}
}

// stateWord is what the application reads of the socket's state.
func (t *tcpServer) stateWord(x *xsock) uint64 {
	state, err := t.st.State(x.id)
	if err != nil {
		return sockbuf.StHangUp | sockbuf.StSendShut
	}
	ready, _ := t.st.Ready(x.id)
	var w uint64
	switch state {
	case tcp.SynSent, tcp.SynReceived:
		w |= sockbuf.StConnecting
	case tcp.Listen:
		w |= sockbuf.StListening
	case tcp.Established, tcp.CloseWait:
		w |= sockbuf.StConnected
	case tcp.FinWait1, tcp.FinWait2, tcp.Closing, tcp.LastAck, tcp.TimeWait:
		w |= sockbuf.StConnected | sockbuf.StSendShut
	}
	if ready&tcp.ReadyHup != 0 {
		w |= sockbuf.StHangUp
	}
	if ready&tcp.ReadyOut != 0 && state != tcp.Established && state != tcp.CloseWait {
		w |= sockbuf.StSendShut // writable only in the sense that send fails at once
	}
	if e := t.st.PendingError(x.id); e != nil {
		w |= sockbuf.StFailed | uint64(sockabi.Errno(e))<<32
	}
	return w
}

// closeExposed closes the engine's socket and keeps the region for the
// application's next one; a listener's accepted sockets nobody took go
// too.
func (t *tcpServer) closeExposed(now time.Time, x *xsock, keep bool) {
	for _, c := range x.children {
		t.st.Close(now, c)
		if cx := t.x.socks[c]; cx != nil {
			t.release(cx, false)
		}
	}
	t.st.Close(now, x.id)
	t.release(x, keep)
}

// consumed takes in what the application has read from the socket's RX
// ring since the last look: its space is free again, and a listener's
// accepted connections it took are no longer its children. A tail the
// application moved where it cannot be ends the socket as hostile, and
// consumed reports false.
func (t *tcpServer) consumed(s *sys.Server, now time.Time, x *xsock) bool {
	rx := x.reg.RX()
	tail := rx.Tail().Load()
	if tail < x.rxTail || tail > rx.Head().Load() {
		t.hostile(s, now, x, "rx-tail", sockbuf.ErrCorrupt)
		return false
	}
	if k := int(tail - x.rxTail); k > 0 {
		x.rxAlloc.Consumed(k)
		if len(x.children) > 0 {
			x.children = x.children[min(k, len(x.children)):]
		}
		x.rxTail = tail
	}
	return true
}

// scanBells pumps every exposed socket whose doorbell moved.
func (t *tcpServer) scanBells(s *sys.Server, now time.Time) bool {
	found := false
	for _, x := range t.x.socks {
		if t.bellMoved(s, now, x) {
			t.pump(s, now, x)
			found = true
		}
	}
	return found
}

// bellMoved reports whether x's doorbell moved since its last pump; a
// region that faults (truncated by its application) ends the socket.
func (t *tcpServer) bellMoved(s *sys.Server, now time.Time, x *xsock) (moved bool) {
	defer func() {
		if f := sys.Fault(recover()); f != nil {
			t.hostile(s, now, x, reasonFault, f)
			moved = false
		}
	}()
	return x.reg.Doorbell().Load() != x.seenBell
}

// idle runs before the loop sleeps: the server says it is asleep, then
// looks at the doorbells once more. Work found keeps it awake.
func (t *tcpServer) idle(s *sys.Server) bool {
	t.x.awake.State().Store(0)
	if len(t.x.socks) == 0 {
		return false
	}
	now := time.Now()
	if !t.scanBells(s, now) {
		return false
	}
	t.x.awake.State().Store(1)
	t.after(s, now)
	return true
}

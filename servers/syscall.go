package servers

import (
	"flag"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys"
)

// syscallServer is where applications' socket calls land with the
// `message` backend, as in NewtOS: it keeps each application's descriptors,
// forwards every call to the transport server owning the socket (naming
// the caller), and passes the replies back.
//
// When a process dies (docs/RECOVERY.md) the kernel tells syscall: an
// application's descriptors go; a transport's descriptors are dead, as a
// reset socket is (calls on them fail with ECONNRESET, poll says POLLERR
// and POLLHUP, close succeeds), and the calls it had not answered are
// answered so.
type syscallServer struct {
	udp   string
	tcp   string
	fds   map[uint64]fdEntry
	socks map[sockKey]uint64 // the descriptor of each transport's socket
	next  uint64
	calls map[callKey]forwarded // calls not yet answered
	// held counts, by application slot, its descriptors and its opens
	// and accepts not yet answered, which MaxDescriptorsPerApp bounds.
	held  [ipc.MaxSlots]int
	quota quotas

	// Poll sets (syscallpoll.go).
	polls   map[ipc.Endpoint]*pollWait // the poll set each application waits in
	asks    map[uint32]ask             // syscall's own polls of transports, by seq
	askSeq  uint32
	alarm   sys.Deadline
	entries []sockcall.PollEntry // read out of a call's buffer
	now     func() time.Time     // the clock (a test's own)
}

// forwarded is a call passed to a transport.
type forwarded struct {
	to string // the transport
	q  request
}

// fdEntry is one descriptor: whose it is, and which socket of which
// transport it names.
type fdEntry struct {
	app       int // the application's slot
	transport string
	sock      uint64
	dead      bool      // the transport died: the socket was reset
	known     readiness // what poll sets learned of it
}

// sockKey names a transport's socket.
type sockKey struct {
	transport string
	sock      uint64
}

// callKey names a call forwarded to a transport: the application's
// endpoint and the call's seq, which the transport's reply carries.
type callKey struct {
	app ipc.Endpoint
	seq uint32
}

// MaxDescriptorsPerApp bounds one application's descriptors in syscall's
// table, as RLIMIT_NOFILE bounds a Linux process's (4096 is its usual hard
// limit): an open or an accept past it fails with EMFILE at once, without
// reaching the transport, so that an accepted connection stays in its
// listener's backlog for an accept after a close, as Linux leaves it when
// accept meets the limit. The transports' socket quotas bound what an
// application opens (MaxSocketsPerApp on each, 2048 together, below this:
// an open meets their quota first); this bounds the connections it
// accepts too, which only the listener's backlog paced.
const MaxDescriptorsPerApp = 4 * MaxSocketsPerApp

// quotaDescriptors is the quota refusal of an open or accept past
// MaxDescriptorsPerApp: EMFILE.
const quotaDescriptors = "descriptors"

// fdEpoch is how far apart the descriptors of two incarnations of syscall
// start: a restarted syscall's descriptors never name what an application
// kept from the last one. It stays below the exposed backend's descriptors
// for the first incarnation.
const fdEpoch = 1 << 24

// Syscall starts the syscall role: applications' descriptor tables, forwarding each socket call to its transport.
func Syscall(s *sys.Server) (sys.Handler, error) {
	c := &syscallServer{fds: map[uint64]fdEntry{}, socks: map[sockKey]uint64{}, calls: map[callKey]forwarded{},
		polls: map[ipc.Endpoint]*pollWait{}, asks: map[uint32]ask{}, now: time.Now,
		next: 3 + uint64(max(s.Opts.Endpoint.Generation()-1, 0))*fdEpoch}
	c.quota = newQuotas(s, "syscall", quotaDescriptors)
	fs := flag.NewFlagSet("syscall", flag.ContinueOnError)
	fs.StringVar(&c.udp, "udp", "udp", "the UDP server")
	fs.StringVar(&c.tcp, "tcp", "tcp", "the TCP server")
	return c, fs.Parse(s.Opts.Args)
}

func (c *syscallServer) Handle(s *sys.Server, m *ipc.Message) error {
	switch m.Type {
	case ipc.Socket:
		return c.call(s, m)
	case ipc.SocketReply:
		if n := s.PeerName(m.Src.Slot()); n == c.udp || n == c.tcp {
			return c.back(s, m)
		}
	case ipc.Wake:
		if n := s.PeerName(m.Src.Slot()); n == c.udp || n == c.tcp {
			return c.wake(s, m)
		}
	case ipc.Alarm:
		return c.expired(s)
	case ipc.EndpointDown:
		var d kcall.EndpointDown
		d.Decode(m)
		c.down(s, d.Slot, d.Endpoint)
	}
	return nil
}

// call passes an application's call to the transport owning the socket,
// naming the caller and the transport's own socket; an open goes to the
// transport of its type.
func (c *syscallServer) call(s *sys.Server, m *ipc.Message) error {
	q := newRequest(m)
	c.giveUp(s, m.Src) // a caller that calls again waits in no poll
	to := ""
	if q.Op == ipc.OpPollSet {
		return c.pollSet(s, &q)
	}
	if q.Op == ipc.OpOpen {
		switch q.Type {
		case unix.SOCK_DGRAM:
			to = c.udp
		case unix.SOCK_STREAM:
			to = c.tcp
		default:
			return q.fail(s, unix.EPROTONOSUPPORT)
		}
	} else {
		e, ok := c.fds[q.Sock]
		if !ok || e.app != m.Src.Slot() {
			return q.fail(s, unix.EBADF)
		}
		if q.Op == ipc.OpClose {
			c.forget(q.Sock, e) // the descriptor goes whatever the transport says
		} else if e.known.known {
			e.known.known = false // the call may change what the socket is ready for
			c.fds[q.Sock] = e
		}
		if e.dead {
			return reset(s, &q)
		}
		to, q.Sock = e.transport, e.sock
	}
	app := m.Src.Slot()
	if creates(q.Op) {
		if c.held[app] >= MaxDescriptorsPerApp {
			c.quota.refuse(quotaDescriptors)
			return q.fail(s, unix.EMFILE)
		}
		c.held[app]++ // until the answer: a descriptor, or given back
	}
	f := *m
	q.Caller = m.Src
	q.Encode(&f)
	if err := s.SendTo(to, &f); err != nil {
		c.unheld(app, q.Op)
		return reset(s, &q) // the transport is dead or restarting
	}
	c.calls[callKey{m.Src, m.Seq}] = forwarded{to, q}
	return nil
}

// creates reports whether a call makes a descriptor when it succeeds.
func creates(op ipc.SocketOp) bool { return op == ipc.OpOpen || op == ipc.OpAccept }

// unheld gives back what a call of op held of app's descriptors, if it
// made none.
func (c *syscallServer) unheld(app int, op ipc.SocketOp) {
	if creates(op) && c.held[app] > 0 {
		c.held[app]--
	}
}

// forget removes descriptor fd, e, from the table.
func (c *syscallServer) forget(fd uint64, e fdEntry) {
	delete(c.fds, fd)
	delete(c.socks, sockKey{e.transport, e.sock})
	if c.held[e.app] > 0 {
		c.held[e.app]--
	}
}

// reset answers a call on a reset socket, as Linux does once a connection
// is reset: close succeeds, poll finds it ready with an error and hung up,
// anything else fails with ECONNRESET.
func reset(s *sys.Server, q *request) error {
	switch q.Op {
	case ipc.OpClose:
		return q.ok(s, 0)
	case ipc.OpPoll:
		return q.ok(s, int64(uint16(resetEvents(q.Events))))
	}
	return q.fail(s, unix.ECONNRESET)
}

// back passes a transport's reply to the application that called; a new
// socket gets a descriptor.
func (c *syscallServer) back(s *sys.Server, m *ipc.Message) error {
	var r sockcall.Reply
	r.Decode(m)
	app := r.Caller
	if _, ok := c.calls[callKey{app, m.Seq}]; !ok && m.Seq&askBit != 0 && r.Op == ipc.OpPoll {
		return c.answered(s, m, &r)
	}
	call, called := c.calls[callKey{app, m.Seq}]
	delete(c.calls, callKey{app, m.Seq})
	if s.Gone(app) {
		return nil // a dead application's: its sockets went with it (the transport was told too)
	}
	r.Caller = 0
	created := creates(r.Op) && r.Result >= 0
	switch {
	case called && !created:
		c.unheld(app.Slot()%ipc.MaxSlots, call.q.Op)
	case !called && created:
		c.held[app.Slot()%ipc.MaxSlots]++ // not held for: counted now
	}
	if created {
		fd := c.next
		c.next++
		e := fdEntry{app: app.Slot() % ipc.MaxSlots, transport: s.PeerName(m.Src.Slot()), sock: uint64(r.Result)}
		c.fds[fd] = e
		c.socks[sockKey{e.transport, e.sock}] = fd
		r.Result = int64(fd)
	}
	f := *m
	f.Dst = app
	r.Encode(&f)
	return s.Send(&f)
}

// wake takes a transport's Wake for an armed poll: syscall's own, for a
// poll set (woken), or else passed on to the application that polled. The
// socket it names is the transport's, which the application does not
// know: it only learns to poll again.
func (c *syscallServer) wake(s *sys.Server, m *ipc.Message) error {
	var w sockcall.Wake
	w.Decode(m)
	if w.Caller.Slot() <= ipc.KernelSlot || w.Caller.Slot() >= ipc.MaxSlots {
		return nil
	}
	if ours, err := c.woken(s, s.PeerName(m.Src.Slot()), &w); ours {
		return err
	}
	f := ipc.Message{Dst: w.Caller}
	sockcall.Wake{}.Encode(&f)
	return s.Send(&f)
}

// down forgets what syscall kept for a process that died: an
// application's descriptors and calls, or a transport's sockets, whose
// descriptors are dead from now on, and calls, answered as on a reset
// socket. The buffer of a send the transport died holding is lost to the
// application (docs/RECOVERY.md).
func (c *syscallServer) down(s *sys.Server, slot int, ep ipc.Endpoint) {
	name := s.PeerName(slot)
	if name != c.udp && name != c.tcp {
		for fd, e := range c.fds {
			if e.app == slot {
				c.forget(fd, e)
			}
		}
		for k := range c.calls {
			if k.app.Slot() == slot {
				delete(c.calls, k)
			}
		}
		c.held[slot] = 0
		c.dropPolls(s, ep, "")
		return
	}
	for fd, e := range c.fds {
		if e.transport == name {
			e.dead = true
			e.known = readiness{}
			c.fds[fd] = e
			delete(c.socks, sockKey{e.transport, e.sock})
		}
	}
	c.dropPolls(s, ep, name)
	for k, f := range c.calls {
		if f.to == name {
			delete(c.calls, k)
			c.unheld(k.app.Slot()%ipc.MaxSlots, f.q.Op)
			reset(s, &f.q) // an open fails too: the transport is gone
		}
	}
}

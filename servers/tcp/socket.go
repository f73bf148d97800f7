package tcp

import (
	"errors"
	"net/netip"
	"slices"
	"time"
)

// Errors, each standing for one errno (beside it). Returned errors may wrap
// them: test with errors.Is.
var (
	ErrWouldBlock   = errors.New("tcp: operation would block")           // EAGAIN
	ErrInProgress   = errors.New("tcp: connection in progress")          // EINPROGRESS
	ErrAlready      = errors.New("tcp: connection already in progress")  // EALREADY
	ErrIsConnected  = errors.New("tcp: socket already connected")        // EISCONN
	ErrNotConnected = errors.New("tcp: socket not connected")            // ENOTCONN
	ErrConnRefused  = errors.New("tcp: connection refused")              // ECONNREFUSED
	ErrConnReset    = errors.New("tcp: connection reset by peer")        // ECONNRESET
	ErrTimedOut     = errors.New("tcp: connection timed out")            // ETIMEDOUT
	ErrAddrInUse    = errors.New("tcp: address already in use")          // EADDRINUSE
	ErrAddrNotAvail = errors.New("tcp: address not available")           // EADDRNOTAVAIL
	ErrInvalid      = errors.New("tcp: invalid argument")                // EINVAL
	ErrBadSocket    = errors.New("tcp: bad socket")                      // EBADF
	ErrShutdown     = errors.New("tcp: socket shut down for sending")    // EPIPE
	ErrNoOption     = errors.New("tcp: option not supported")            // ENOPROTOOPT
	ErrNoBuffers    = errors.New("tcp: no buffer space")                 // ENOBUFS
	ErrAborted      = errors.New("tcp: connection aborted by the stack") // ECONNABORTED
)

// get returns the user's socket id.
func (s *Stack) get(id SockID) (*tcb, error) {
	c, ok := s.socks[id]
	if !ok {
		return nil, ErrBadSocket
	}
	return c, nil
}

// Open creates a socket in CLOSED and returns its id.
func (s *Stack) Open() SockID {
	c := s.newTCB()
	c.id = s.newID()
	s.socks[c.id] = c
	return c.id
}

// newID returns an unused socket id.
func (s *Stack) newID() SockID {
	for {
		s.nextID++
		if s.nextID <= 0 {
			s.nextID = 1
		}
		if _, used := s.socks[s.nextID]; !used {
			return s.nextID
		}
	}
}

// Exists reports whether id is an open socket.
func (s *Stack) Exists(id SockID) bool { _, ok := s.socks[id]; return ok }

// State returns a socket's connection state.
func (s *Stack) State(id SockID) (State, error) {
	c, err := s.get(id)
	if err != nil {
		return Closed, err
	}
	return c.state, nil
}

// Bind gives the socket a local address; port 0 chooses an ephemeral one.
func (s *Stack) Bind(id SockID, a netip.AddrPort) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.bound || c.state != Closed {
		return ErrInvalid
	}
	addr := a.Addr().Unmap()
	if !addr.IsValid() {
		addr = netip.IPv4Unspecified()
	}
	if !addr.Is4() || (!addr.IsUnspecified() && !s.isLocal(addr)) {
		return ErrAddrNotAvail
	}
	if a.Port() == 0 {
		p, ok := s.ephemeral(c, addr, netip.AddrPort{})
		if !ok {
			return ErrAddrInUse
		}
		s.hold(c, netip.AddrPortFrom(addr, p))
		return nil
	}
	na := netip.AddrPortFrom(addr, a.Port())
	if !s.portFree(c, na) {
		return ErrAddrInUse
	}
	s.hold(c, na)
	return nil
}

// Listen makes the socket passive, with a bounded backlog of connections
// waiting for Accept (and as many half-open ones); SYNs beyond are dropped
// and counted.
func (s *Stack) Listen(id SockID, backlog int) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.state != Closed && c.state != Listen {
		return ErrInvalid
	}
	if !c.bound {
		p, ok := s.ephemeral(c, netip.IPv4Unspecified(), netip.AddrPort{})
		if !ok {
			return ErrAddrInUse
		}
		s.hold(c, netip.AddrPortFrom(netip.IPv4Unspecified(), p))
	} else if c.state == Closed {
		for _, o := range s.ports[c.local.Port()] {
			if o != c && o.state == Listen && (o.local.Addr() == c.local.Addr() || o.local.Addr().IsUnspecified() || c.local.Addr().IsUnspecified()) {
				return ErrAddrInUse
			}
		}
	}
	c.backlog = min(max(backlog, 1), s.c.MaxBacklog)
	if c.state != Listen {
		s.lports[c.local.Port()] = append(s.lports[c.local.Port()], c)
	}
	c.state = Listen
	s.all[c] = struct{}{}
	return nil
}

// Accept takes a connection off a listening socket's queue.
func (s *Stack) Accept(id SockID) (SockID, netip.AddrPort, error) {
	l, err := s.get(id)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if l.state != Listen {
		return 0, netip.AddrPort{}, ErrInvalid
	}
	if len(l.acceptQ) == 0 {
		return 0, netip.AddrPort{}, ErrWouldBlock
	}
	c := l.acceptQ[0]
	l.acceptQ = l.acceptQ[1:]
	c.parent = nil
	nid := s.newID()
	c.id = nid
	s.socks[nid] = c
	return nid, c.remote, nil
}

// Connect starts an active open. It returns ErrInProgress: the socket
// becomes writable, or gets an error, when the handshake ends.
func (s *Stack) Connect(now time.Time, id SockID, to netip.AddrPort) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	switch {
	case c.state == SynSent || c.state == SynReceived:
		return ErrAlready
	case c.state == Listen:
		return ErrIsConnected
	case c.state != Closed || c.connected:
		if c.err != nil && c.state == Closed {
			break // a failed connect may be retried
		}
		return ErrIsConnected
	}
	ra := to.Addr().Unmap()
	if !ra.Is4() || to.Port() == 0 || ra.IsUnspecified() || ra.IsMulticast() || ra == broadcast {
		return ErrConnRefused
	}
	to = netip.AddrPortFrom(ra, to.Port())
	local := c.local.Addr()
	if !c.bound || local.IsUnspecified() {
		local = s.source(ra)
		if !local.IsValid() {
			return ErrAddrNotAvail
		}
	}
	if c.bound {
		t := tuple{netip.AddrPortFrom(local, c.local.Port()), to}
		if _, used := s.conns[t]; used {
			return ErrAddrNotAvail
		}
		s.unhold(c)
		s.hold(c, t.local)
	} else {
		p, ok := s.ephemeral(c, local, to)
		if !ok {
			return ErrAddrNotAvail
		}
		s.hold(c, netip.AddrPortFrom(local, p))
	}
	c.remote = to
	c.err = nil
	c.connected = true
	s.conns[tuple{c.local, c.remote}] = c
	s.all[c] = struct{}{}
	c.activeOpen(now)
	s.stats.ActiveOpens++
	s.flush(now, c)
	return ErrInProgress
}

// Send queues data and sends what the windows allow. It returns how much
// it took; with no room it returns ErrWouldBlock.
func (s *Stack) Send(now time.Time, id SockID, b []byte) (int, error) {
	return s.SendV(now, id, [][]byte{b})
}

// SendV is Send for the stream of bufs, taken as one write, as writev(2)
// takes its buffers: what the send buffer has room for is queued before
// any of it is sent, so that a response's header and body go out in one
// segment where they fit in one.
func (s *Stack) SendV(now time.Time, id SockID, bufs [][]byte) (int, error) {
	c, err := s.get(id)
	if err != nil {
		return 0, err
	}
	if c.err != nil && !c.state.canSend() {
		err := c.err
		c.err = nil
		return 0, err
	}
	switch {
	case c.state == SynSent || c.state == SynReceived:
		return 0, ErrWouldBlock
	case c.wrShut || (c.connected && !c.state.canSend()):
		return 0, ErrShutdown
	case !c.state.canSend():
		return 0, ErrShutdown // never connected: EPIPE, as Linux
	}
	size := 0
	for _, b := range bufs {
		size += len(b)
	}
	n := min(size, c.snd.free())
	if n == 0 && size > 0 {
		return 0, ErrWouldBlock
	}
	if n > 0 && c.snd.held() == 0 && !s.memRoom(c.snd.cap()) {
		return 0, ErrNoBuffers // MaxMemory: no room for a send buffer
	}
	for left, i := n, 0; left > 0; i++ {
		k := min(len(bufs[i]), left)
		c.snd.append(bufs[i][:k])
		left -= k
	}
	s.stats.BytesOut += uint64(n)
	c.output(now)
	s.flush(now, c)
	return n, nil
}

// Recv copies received data into b; peek leaves it queued. It returns 0
// at end of file and ErrWouldBlock when nothing is there yet.
func (s *Stack) Recv(now time.Time, id SockID, b []byte, peek bool) (int, error) {
	c, err := s.get(id)
	if err != nil {
		return 0, err
	}
	if c.rcv.n > 0 {
		n := min(len(b), c.rcv.n)
		c.rcv.readAt(0, b[:n])
		if !peek {
			c.rcv.consume(n)
			s.stats.BytesIn += uint64(n)
			c.afterRead(now, n)
			s.flush(now, c)
		}
		return n, nil
	}
	if c.err != nil {
		err := c.err
		c.err = nil
		return 0, err
	}
	switch {
	case c.finRcvd || c.rdShut:
		return 0, nil
	case c.state == Listen || (c.state == Closed && !c.connected):
		return 0, ErrNotConnected
	case c.state == Closed:
		return 0, nil
	}
	return 0, ErrWouldBlock
}

// Shutdown shuts the connection down for receiving, sending or both.
func (s *Stack) Shutdown(now time.Time, id SockID, rd, wr bool) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.state == Closed || c.state == Listen || c.state == SynSent {
		if c.state == Listen && rd {
			s.closeListener(now, c)
			return nil
		}
		return ErrNotConnected
	}
	if rd && !c.rdShut {
		c.rdShut = true
		s.wake(c)
	}
	if wr && !c.wrShut {
		c.wrShut = true
		c.queueFIN(now)
		s.flush(now, c)
		s.wake(c)
	}
	return nil
}

// Close releases the socket. A connection with data still to send goes on
// sending it, then closes with a FIN, as an orphan; one with unread data
// received is reset, as Linux does (RFC 2525 2.17).
func (s *Stack) Close(now time.Time, id SockID) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	delete(s.socks, id)
	c.id = 0
	switch c.state {
	case Closed:
		s.release(c)
	case Listen:
		s.closeListener(now, c)
		s.release(c)
	case SynSent:
		s.release(c)
	default:
		if c.rcv.n > 0 {
			c.sendReset(now)
			s.release(c)
			break
		}
		if c.state != TimeWait && (s.orphans >= s.c.MaxOrphans || s.mem.held > s.c.MaxMemory) {
			// Too many orphans, or too much memory: reset rather than
			// leave one more, as Linux's tcp_close does (tcp_check_oom,
			// TCPAbortOnMemory).
			s.stats.OrphanResets++
			c.sendReset(now)
			s.release(c)
			break
		}
		c.wrShut = true
		c.queueFIN(now)
		if c.state != Closed && c.state != TimeWait {
			c.orphan = true
			s.orphans++
		}
		if c.state == FinWait2 {
			c.waitAt = now.Add(s.c.FinWait2)
		}
		s.flush(now, c)
	}
	return nil
}

// Abort closes the socket with a RST, as Close does when unread data is
// left (an exposed socket's unread data is in the application's ring, out
// of the engine's sight).
func (s *Stack) Abort(now time.Time, id SockID) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	if c.state == Listen || c.state == Closed || c.state == SynSent {
		return s.Close(now, id)
	}
	delete(s.socks, id)
	c.id = 0
	c.sendReset(now)
	s.release(c)
	return nil
}

// closeListener resets every connection waiting on a listener.
func (s *Stack) closeListener(now time.Time, l *tcb) {
	for _, c := range l.acceptQ {
		c.sendReset(now)
		c.parent = nil
		s.release(c)
	}
	for _, c := range embryosInOrder(l.embryos) {
		c.sendReset(now)
		s.release(c)
	}
	l.acceptQ, l.embryos = nil, nil
	l.state = Closed
	p := l.local.Port()
	if ls := s.lports[p]; len(ls) > 0 {
		for i, o := range ls {
			if o == l {
				ls = append(ls[:i], ls[i+1:]...)
				break
			}
		}
		if len(ls) == 0 {
			delete(s.lports, p)
		} else {
			s.lports[p] = ls
		}
	}
}

// embryosInOrder lists a listener's half-open connections by remote, then
// local, address: the order they are reset in when the listener closes,
// the same on every run (a map's order is not).
func embryosInOrder(m map[*tcb]struct{}) []*tcb {
	cs := make([]*tcb, 0, len(m))
	for c := range m {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b *tcb) int {
		if r := a.remote.Compare(b.remote); r != 0 {
			return r
		}
		return a.local.Compare(b.local)
	})
	return cs
}

// release forgets a tcb's connection and port; a socket the user still
// holds stays open, CLOSED.
func (s *Stack) release(c *tcb) {
	queued := c.parent != nil && c.state != SynReceived // waits in an accept queue, its data to be read
	if c.state == TimeWait {
		s.tw--
	}
	c.disown()
	if c.remote.IsValid() {
		if s.conns[tuple{c.local, c.remote}] == c {
			delete(s.conns, tuple{c.local, c.remote})
		}
	}
	if c.parent != nil {
		delete(c.parent.embryos, c)
		c.parent = nil
	}
	s.unhold(c)
	c.state = Closed
	c.rtxAt, c.delackAt, c.waitAt, c.keepAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	c.timerGen++
	if c.id == 0 {
		delete(s.all, c)
		if !queued {
			c.snd.release()
			c.rcv.release()
		}
	}
	s.wake(c)
}

// disown stops counting the tcb as an orphan.
func (c *tcb) disown() {
	if c.orphan {
		c.orphan = false
		c.s.orphans--
	}
}

// LocalAddr returns the socket's local address.
func (s *Stack) LocalAddr(id SockID) (netip.AddrPort, error) {
	c, err := s.get(id)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if !c.bound && !c.connected {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), 0), nil
	}
	return c.local, nil
}

// RemoteAddr returns the connection's peer.
func (s *Stack) RemoteAddr(id SockID) (netip.AddrPort, error) {
	c, err := s.get(id)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if !c.connected || c.state == Closed || c.state == Listen {
		return netip.AddrPort{}, ErrNotConnected
	}
	return c.remote, nil
}

// ConnectDone reports how a connect in progress stands: not done while the
// handshake runs; then nil, or why it failed (the pending error, taken).
func (s *Stack) ConnectDone(id SockID) (bool, error) {
	c, err := s.get(id)
	switch {
	case err != nil:
		return true, err
	case c.state == SynSent || c.state == SynReceived:
		return false, nil
	case c.state == Closed:
		e := c.err
		c.err = nil
		if e == nil {
			e = ErrConnRefused
		}
		return true, e
	}
	return true, nil
}

// PendingError returns the socket's pending error without clearing it.
func (s *Stack) PendingError(id SockID) error {
	if c, ok := s.socks[id]; ok {
		return c.err
	}
	return ErrBadSocket
}

// TakeError returns and clears the socket's pending error (SO_ERROR), or,
// with none, its soft error, as Linux's SO_ERROR does.
func (s *Stack) TakeError(id SockID) (error, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, err
	}
	e := c.err
	c.err = nil
	if e == nil {
		e, c.softErr = c.softErr, nil
	}
	return e, nil
}

// Ready bits, as poll(2) reports them.
const (
	ReadyIn    = 1 << iota // data, a connection to accept, or end of file
	ReadyOut               // room to send
	ReadyErr               // a pending error
	ReadyHup               // both directions closed
	ReadyRdHup             // the peer shut down its sending side
)

// Ready returns what the socket is ready for, as Linux's tcp_poll does.
func (s *Stack) Ready(id SockID) (int, error) {
	c, err := s.get(id)
	if err != nil {
		return 0, err
	}
	r := 0
	if c.state == Listen {
		if len(c.acceptQ) > 0 {
			r |= ReadyIn
		}
		return r, nil
	}
	rdDone := c.finRcvd || c.rdShut
	if (rdDone && c.wrShut) || c.state == Closed {
		r |= ReadyHup
	}
	if rdDone {
		r |= ReadyIn | ReadyRdHup
	}
	if c.state != SynSent && c.state != SynReceived {
		if c.rcv.n > 0 {
			r |= ReadyIn
		}
		if c.wrShut || c.snd.free() >= min(c.snd.cap()/4, 16<<10) {
			r |= ReadyOut
		}
	}
	if c.err != nil {
		r |= ReadyErr
	}
	return r, nil
}

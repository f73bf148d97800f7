package tcp

import "time"

// Option names a socket option.
type Option int

// Options.
const (
	OptNoDelay   Option = iota // TCP_NODELAY
	OptReuseAddr               // SO_REUSEADDR
	OptSendBuf                 // SO_SNDBUF
	OptRecvBuf                 // SO_RCVBUF
	OptMSS                     // TCP_MAXSEG (read only)
	OptKeepAlive               // SO_KEEPALIVE
	OptKeepIdle                // TCP_KEEPIDLE, seconds
	OptKeepIntvl               // TCP_KEEPINTVL, seconds
	OptKeepCnt                 // TCP_KEEPCNT
)

// Bounds of the keep-alive options, as Linux's (MAX_TCP_KEEPIDLE,
// MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT); a value outside is EINVAL.
const (
	maxKeepSecs = 32767
	maxKeepCnt  = 127
)

// SetOption sets an option. Buffer sizes are cut to MaxBufferOption and
// doubled, as Linux does (BufferSize), and apply from the next connection (or now, when the buffer is empty). The
// keep-alive options of a connection take effect at once: its first probe
// is due the idle time after the peer was last heard from. A listener's
// options pass to the connections it accepts.
func (s *Stack) SetOption(id SockID, o Option, v int) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	switch o {
	case OptNoDelay:
		c.noDelay = v != 0
	case OptReuseAddr:
		c.reuse = v != 0
	case OptSendBuf:
		c.sndCap = s.BufferSize(v)
		if c.snd.n <= c.sndCap {
			c.snd.resize(c.sndCap)
		}
	case OptRecvBuf:
		if c.state.synchronized() || c.state == SynSent || c.state == SynReceived {
			return nil // the window scale is fixed: too late, as Linux ignores it
		}
		c.rcvCap = s.BufferSize(v)
		c.rcv.release()
		c.rcv = s.newRing(c.rcvCap)
	case OptKeepAlive:
		c.keepAlive = v != 0
	case OptKeepIdle, OptKeepIntvl:
		if v < 1 || v > maxKeepSecs {
			return ErrInvalid
		}
		d := time.Duration(v) * time.Second
		if o == OptKeepIdle {
			c.keepIdle = d
		} else {
			c.keepIntvl = d
		}
	case OptKeepCnt:
		if v < 1 || v > maxKeepCnt {
			return ErrInvalid
		}
		c.keepCnt = v
	default:
		return ErrNoOption
	}
	if o == OptKeepAlive || o == OptKeepIdle {
		c.armKeepalive()
		s.flush(time.Time{}, c)
	}
	return nil
}

// BufferSize is the size of buffer SO_SNDBUF or SO_RCVBUF set to v gives:
// v cut to MaxBufferOption, doubled (the other half for the kernel's
// bookkeeping, in Linux), and at least the least buffer.
func (s *Stack) BufferSize(v int) int {
	return min(max(2*min(v, s.c.MaxBufferOption), minBuffer), maxBuffer)
}

// GetOption reads an option.
func (s *Stack) GetOption(id SockID, o Option) (int, error) {
	c, err := s.get(id)
	if err != nil {
		return 0, err
	}
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	switch o {
	case OptNoDelay:
		return b(c.noDelay), nil
	case OptReuseAddr:
		return b(c.reuse), nil
	case OptSendBuf:
		return c.snd.cap(), nil
	case OptRecvBuf:
		return c.rcv.cap(), nil
	case OptMSS:
		if c.mss == 0 {
			return s.c.MTU - 40, nil
		}
		return c.mss, nil
	case OptKeepAlive:
		return b(c.keepAlive), nil
	case OptKeepIdle, OptKeepIntvl, OptKeepCnt:
		idle, intvl, cnt := c.keepTimes()
		switch o {
		case OptKeepIdle:
			return int(idle / time.Second), nil
		case OptKeepIntvl:
			return int(intvl / time.Second), nil
		}
		return cnt, nil
	}
	return 0, ErrNoOption
}

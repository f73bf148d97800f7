package tcp

// Option names a socket option.
type Option int

// Options.
const (
	OptNoDelay   Option = iota // TCP_NODELAY
	OptReuseAddr               // SO_REUSEADDR
	OptSendBuf                 // SO_SNDBUF
	OptRecvBuf                 // SO_RCVBUF
	OptMSS                     // TCP_MAXSEG (read only)
)

// SetOption sets an option. Buffer sizes are doubled, as Linux does, and
// apply from the next connection (or now, when the buffer is empty).
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
		c.sndCap = min(max(2*v, minBuffer), maxBuffer)
		if c.snd.n <= c.sndCap {
			c.snd.resize(c.sndCap)
		}
	case OptRecvBuf:
		if c.state.synchronized() || c.state == SynSent || c.state == SynReceived {
			return nil // the window scale is fixed: too late, as Linux ignores it
		}
		c.rcvCap = min(max(2*v, minBuffer), maxBuffer)
		c.rcv = newRing(c.rcvCap)
	default:
		return ErrNoOption
	}
	return nil
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
	}
	return 0, ErrNoOption
}

package tcp

import (
	"errors"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/servers/proto"
)

// Errors an ICMP error about a connection gives its user, each standing
// for the errno beside it, as Linux's icmp_err_convert (net/ipv4/icmp.c)
// maps the codes of destination unreachable. Port unreachable is
// ErrConnRefused.
var (
	ErrNetUnreach   = errors.New("tcp: network unreachable")           // ENETUNREACH
	ErrHostUnreach  = errors.New("tcp: no route to host")              // EHOSTUNREACH
	ErrProtoUnreach = errors.New("tcp: protocol unreachable")          // ENOPROTOOPT
	ErrSourceRoute  = errors.New("tcp: source route failed")           // EOPNOTSUPP
	ErrHostDown     = errors.New("tcp: host is down")                  // EHOSTDOWN
	ErrNoNet        = errors.New("tcp: machine is not on the network") // ENONET
)

// unreachErrs is the error of each destination unreachable code (RFC 792,
// RFC 1122 3.2.2.1, RFC 1812 5.2.7.1), as Linux's icmp_err_convert; code
// 4, fragmentation needed, is path MTU discovery's, never an error.
var unreachErrs = [...]error{
	0:  ErrNetUnreach,   // net unreachable
	1:  ErrHostUnreach,  // host unreachable
	2:  ErrProtoUnreach, // protocol unreachable
	3:  ErrConnRefused,  // port unreachable
	5:  ErrSourceRoute,  // source route failed
	6:  ErrNetUnreach,   // destination network unknown
	7:  ErrHostDown,     // destination host unknown
	8:  ErrNoNet,        // source host isolated
	9:  ErrNetUnreach,   // network administratively prohibited
	10: ErrHostUnreach,  // host administratively prohibited
	11: ErrNetUnreach,   // network unreachable for TOS
	12: ErrHostUnreach,  // host unreachable for TOS
	13: ErrHostUnreach,  // communication administratively prohibited (RFC 1812)
	14: ErrHostUnreach,  // host precedence violation
	15: ErrHostUnreach,  // precedence cutoff in effect
}

// MinPathMTU is the least path MTU a fragmentation needed brings a
// connection to, whatever MTU it names (or none, from a router older
// than RFC 1191): Linux's ip_rt_min_pmtu (net/ipv4/route.c, 512 + 20 +
// 20), which leaves a segment 512 bytes of payload before options. A
// forged error can thus not shrink segments to nothing (RFC 5927 7.2).
const MinPathMTU = 552

// ICMPError tells the Stack that an ICMP destination unreachable or time
// exceeded (RFC 792 type typ, code code) came back about a segment it
// sent from local to remote, whose sequence number, quoted in the error,
// was seq; mtu is a fragmentation needed's next-hop MTU (RFC 1191; 0 from
// an older router). ip has checked that the error is about one of the
// host's datagrams (RFC 1122 4.2.3.9: ICMP errors go to the transport).
//
// As Linux's tcp_v4_err: an error about no connection, a connection in
// TIME-WAIT, or a sequence number not in flight (SND.UNA =< seq <
// SND.NXT, RFC 5927 4.1) is ignored and counted. A fragmentation needed
// lowers the connection's path MTU, and so its MSS, to mtu, never below
// MinPathMTU, and sends again at once what was in flight (RFC 1191 6.5,
// Linux's tcp_v4_mtu_reduced); the destination's path MTU is kept for the
// connections opened to it later (pmtu.go). Any other error ends a connect in
// SYN-SENT (or a simultaneous open's SYN-RECEIVED) at once with its
// error, port unreachable with ErrConnRefused: hard errors (RFC 1122
// 4.2.3.9), and the soft ones too, as most stacks do (RFC 5461). A
// listener's half-open connection is dropped on a network or host
// unreachable or a time exceeded (Linux's tcp_req_err), and the SYN-ACK's
// other errors ignored. In a synchronized state every error is soft (RFC
// 5461 4.2, RFC 1122 4.2.3.9): the connection goes on, and the error is
// kept as its soft error, which SO_ERROR takes and which replaces
// ErrTimedOut if the connection times out; an acceptable ACK forgets it.
func (s *Stack) ICMPError(now time.Time, local, remote netip.AddrPort, seq Seq, typ, code uint8, mtu int) {
	c := s.conns[tuple{local, remote}]
	if c == nil || c.state == TimeWait || c.state == Closed {
		s.stats.ICMPIgnored++
		return
	}
	if seq.Before(c.sndUna) || !seq.Before(c.sndMax) {
		s.stats.ICMPOutOfWindow++ // Linux's OutOfWindowIcmps
		return
	}
	var err error
	switch {
	case typ == proto.ICMPDestUnreach && code == proto.CodeFragNeeded:
		s.stats.ICMPErrors++
		s.learnPathMTU(now, remote.Addr(), max(mtu, MinPathMTU))
		c.pathMTU(now, mtu)
		s.flush(now, c)
		return
	case typ == proto.ICMPDestUnreach && int(code) < len(unreachErrs) && unreachErrs[code] != nil:
		err = unreachErrs[code]
	case typ == proto.ICMPTimeExceeded:
		err = ErrHostUnreach
	default:
		s.stats.ICMPIgnored++
		return
	}
	s.stats.ICMPErrors++
	switch {
	case c.passive && c.state == SynReceived:
		// A listener's connection: only its SYN-ACK is in flight.
		if typ == proto.ICMPTimeExceeded || code == proto.CodeNetUnreachable || code == proto.CodeHostUnreachable {
			s.release(c)
		}
	case c.state == SynSent || c.state == SynReceived:
		c.abort(err)
	default:
		c.softErr = err
	}
	s.flush(now, c)
}

// pathMTU lowers the connection's path MTU to mtu (RFC 1191), and its MSS
// with it, then sends again from SND.UNA: the segments that no longer fit
// were dropped, and are sent in smaller ones. The congestion state is
// kept: the loss was not congestion (Linux's tcp_simple_retransmit).
func (c *tcb) pathMTU(now time.Time, mtu int) {
	mtu = max(mtu, MinPathMTU)
	if mtu >= c.pmtu {
		return // only ever lower (RFC 1191 6.3: a larger one is for the plateau search, not done)
	}
	c.pmtu = mtu
	if !c.state.synchronized() {
		return // negotiate takes the path MTU into account
	}
	opts := 0
	if c.tsOK {
		opts = 12 // RFC 6691: the MSS does not count options
	}
	if mss := mtu - 40 - opts; mss < c.mss {
		c.mss = mss
		if c.sndUna != c.sndMax {
			c.rttTiming = false // Karn: the segment timed is sent again
			c.sndNxt = c.sndUna
			c.output(now)
		}
	}
}

// timeoutErr is the error a connection that timed out ends with: its soft
// error if an ICMP error left one, as Linux's tcp_write_err, or
// ErrTimedOut.
func (c *tcb) timeoutErr() error {
	if c.softErr != nil {
		return c.softErr
	}
	return ErrTimedOut
}

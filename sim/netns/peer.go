package netns

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
)

// Linux's side of a conversation with a simulated host, played from Go:
// sockets opened on a thread inside the namespace belong to it for good,
// so a test or a benchmark talks to the host with Linux's own TCP, UDP and
// ICMP, as curl, socat, nc and ping would, and needs none of them. A
// socket's namespace is fixed when it is made: once Dial, Listen or
// ListenPacket returns, it is used from any goroutine.

// Dial connects to address ("198.18.0.2:80") over network ("tcp", "udp")
// from inside the namespace, as nc does; ctx bounds the connect.
func (ns *NS) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return ns.DialFrom(ctx, network, "", address)
}

// DialFrom is Dial from the local address laddr ("198.18.0.3"; a port may
// follow), as curl's --interface ADDR is; "" lets Linux choose.
func (ns *NS) DialFrom(ctx context.Context, network, laddr, address string) (net.Conn, error) {
	d := &net.Dialer{}
	if laddr != "" {
		if !strings.Contains(laddr, ":") {
			laddr += ":0"
		}
		var err error
		switch network {
		case "udp", "udp4":
			d.LocalAddr, err = net.ResolveUDPAddr(network, laddr)
		default:
			d.LocalAddr, err = net.ResolveTCPAddr(network, laddr)
		}
		if err != nil {
			return nil, fmt.Errorf("netns %s: local address %q: %w", ns.Name, laddr, err)
		}
	}
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", ns.Name, err)
	}
	return c, nil
}

// Listen listens on address over network ("tcp") inside the namespace.
func (ns *NS) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := ns.Do(func() error {
		var err error
		l, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", ns.Name, err)
	}
	return l, nil
}

// ListenPacket opens a datagram socket ("udp", "ip4:icmp") inside the
// namespace, as net.ListenPacket does.
func (ns *NS) ListenPacket(network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenPacket(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", ns.Name, err)
	}
	return c, nil
}

// HTTPClient returns an HTTP client whose connections are made inside the
// namespace, from laddr where it is not "" (curl --interface). Each
// request has a connection of its own, closed after its response, as each
// run of curl does, and asks for no compression, as curl does not: the
// body read is the body sent. timeout bounds a request, body included
// (curl --max-time).
func (ns *NS) HTTPClient(laddr string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return ns.DialFrom(ctx, network, laddr, addr)
			},
			DisableKeepAlives:  true,
			DisableCompression: true,
			Proxy:              nil, // never a proxy from the environment
		},
	}
}

// PingResult is what Ping saw.
type PingResult struct {
	Sent, Received int
	RTTs           []time.Duration // one per reply, in order
}

// Ping sends count ICMP echo requests to addr from inside the namespace,
// one every interval, each waiting up to wait for its reply, as `ping -c
// COUNT -i INTERVAL -W WAIT` does, through a raw ICMP socket (which needs
// CAP_NET_RAW: root). A reply counts when it comes from addr with the
// request's identifier and sequence number.
func (ns *NS) Ping(addr netip.Addr, count int, interval, wait time.Duration) (PingResult, error) {
	var res PingResult
	if !addr.Is4() {
		return res, fmt.Errorf("netns %s: ping %s: IPv4 only", ns.Name, addr)
	}
	c, err := ns.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return res, fmt.Errorf("netns %s: ping: %w", ns.Name, err)
	}
	defer c.Close()
	id := uint16(os.Getpid())
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		start := time.Now()
		req := EchoRequest(id, uint16(seq), []byte("newtsim ping"))
		if _, err := c.WriteTo(req, &net.IPAddr{IP: addr.AsSlice()}); err != nil {
			return res, fmt.Errorf("netns %s: ping %s: %w", ns.Name, addr, err)
		}
		res.Sent++
		c.SetReadDeadline(start.Add(wait))
		for {
			n, from, err := c.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return res, fmt.Errorf("netns %s: ping %s: %w", ns.Name, addr, err)
			}
			ip, ok := from.(*net.IPAddr)
			if !ok || !ip.IP.Equal(addr.AsSlice()) {
				continue
			}
			if rid, rseq, ok := EchoReply(buf[:n]); ok && rid == id && rseq == uint16(seq) {
				res.Received++
				res.RTTs = append(res.RTTs, time.Since(start))
				break
			}
		}
		if seq < count {
			time.Sleep(time.Until(start.Add(interval)))
		}
	}
	return res, nil
}

// EchoRequest returns an ICMP echo request (RFC 792) with its checksum.
func EchoRequest(id, seq uint16, data []byte) []byte {
	m := make([]byte, 8+len(data))
	m[0] = proto.ICMPEcho
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], data)
	binary.BigEndian.PutUint16(m[2:], checksum.Of(m))
	return m
}

// EchoReply reads an ICMP message (no IP header) as an echo reply and
// returns its identifier and sequence number; ok is false for anything
// else, a message with a bad checksum included.
func EchoReply(m []byte) (id, seq uint16, ok bool) {
	if len(m) < 8 || m[0] != proto.ICMPEchoReply || m[1] != 0 || checksum.Of(m) != 0 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(m[4:]), binary.BigEndian.Uint16(m[6:]), true
}

// SNMP returns one of Linux's protocol counters in the namespace, from
// /proc/net/snmp as seen from inside: group "Icmp", field
// "InDestUnreachs", say (what `nstat` and `netstat -s` read).
func (ns *NS) SNMP(group, field string) (int64, error) {
	var b []byte
	err := ns.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("netns %s: %w", ns.Name, err)
	}
	var head []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != group+":" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, h := range head {
			if h == field && i < len(f) {
				v, err := strconv.ParseInt(f[i], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("netns %s: snmp %s %s: %w", ns.Name, group, field, err)
				}
				return v, nil
			}
		}
		break
	}
	return 0, fmt.Errorf("netns %s: no %s %s in /proc/net/snmp", ns.Name, group, field)
}

// TCPSocket is a TCP socket of the namespace, as `ss -tan` lists it.
type TCPSocket struct {
	Local, Remote netip.AddrPort
	State         string // as ss names it: LISTEN, ESTABLISHED, TIME-WAIT...
}

// tcpStates are the kernel's TCP states by their number in /proc/net/tcp
// (include/net/tcp_states.h), named as ss names them.
var tcpStates = map[string]string{
	"01": "ESTABLISHED", "02": "SYN-SENT", "03": "SYN-RECV", "04": "FIN-WAIT-1", "05": "FIN-WAIT-2",
	"06": "TIME-WAIT", "07": "UNCONN", "08": "CLOSE-WAIT", "09": "LAST-ACK", "0A": "LISTEN", "0B": "CLOSING",
	"0C": "SYN-RECV", // TCP_NEW_SYN_RECV: a request socket
}

// TCPSockets lists the namespace's IPv4 TCP sockets from the kernel's
// table (/proc/net/tcp, as seen from inside), as `ss -tan` does.
func (ns *NS) TCPSockets() ([]TCPSocket, error) {
	var b []byte
	err := ns.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/tcp")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", ns.Name, err)
	}
	var socks []TCPSocket
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		local, err1 := procAddr(f[1])
		remote, err2 := procAddr(f[2])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("netns %s: /proc/net/tcp: %w", ns.Name, err)
		}
		state, ok := tcpStates[f[3]]
		if !ok {
			state = "state-" + f[3]
		}
		socks = append(socks, TCPSocket{Local: local, Remote: remote, State: state})
	}
	return socks, nil
}

// procAddr reads an IPv4 address and port as /proc/net/tcp writes them:
// the 32-bit word in host order (little-endian here), then the port, in
// hexadecimal: 0100007F:1F90 is 127.0.0.1:8080.
func procAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	ip, err1 := strconv.ParseUint(a, 16, 32)
	port, err2 := strconv.ParseUint(p, 16, 16)
	if !ok || len(a) != 8 || err1 != nil || err2 != nil {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(ip))
	return netip.AddrPortFrom(netip.AddrFrom4(b), uint16(port)), nil
}

// AddAddr adds addr ("198.18.0.3/24") to the interface ifname of the
// namespace, as `ip addr add ADDR dev IFNAME` run in it would.
func (ns *NS) AddAddr(ifname, addr string) error {
	return ns.Do(func() error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("netns %s: %s: %w", ns.Name, ifname, err)
		}
		a, err := netlink.ParseAddr(addr)
		if err != nil {
			return fmt.Errorf("netns %s: address %q: %w", ns.Name, addr, err)
		}
		if err := netlink.AddrAdd(link, a); err != nil {
			return fmt.Errorf("netns %s: add %s to %s: %w", ns.Name, addr, ifname, err)
		}
		return nil
	})
}

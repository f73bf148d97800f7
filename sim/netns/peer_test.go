package netns

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
)

// pair makes two namespaces joined by a veth pair, a at 198.19.9.1/29 and
// b at 198.19.9.2/29, and returns them with a's end of the pair.
func pair(t *testing.T) (a, b *NS, ea string) {
	t.Helper()
	needRoot(t)
	a, b = newNS(t, "nts-pa-"), newNS(t, "nts-pb-")
	ea, eb := "ntspa"+a.Name[len(a.Name)-6:], "ntspb"+a.Name[len(a.Name)-6:]
	if err := VethPair(ea, eb); err != nil {
		t.Fatal(err)
	}
	if err := a.Adopt(ea, "198.19.9.1/29"); err != nil {
		DeleteLink(ea)
		t.Fatal(err)
	}
	if err := b.Adopt(eb, "198.19.9.2/29"); err != nil {
		t.Fatal(err)
	}
	return a, b, ea
}

var (
	addrA = netip.MustParseAddr("198.19.9.1")
	addrB = netip.MustParseAddr("198.19.9.2")
)

// TestPing: Ping gets Linux's echo replies across the pair, counted by
// both namespaces' ICMP counters as SNMP reads them; with b told to ignore
// echo requests, nothing comes back and Ping says so.
func TestPing(t *testing.T) {
	a, b, _ := pair(t)
	repsBefore, err := a.SNMP("Icmp", "InEchoReps")
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Ping(addrB, 3, 50*time.Millisecond, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 3 || res.Received != 3 || len(res.RTTs) != 3 {
		t.Fatalf("ping: %+v, want 3 sent, 3 received", res)
	}
	if v, err := a.SNMP("Icmp", "InEchoReps"); err != nil || v != repsBefore+3 {
		t.Errorf("a's Icmp InEchoReps = %v (%v), want %v", v, err, repsBefore+3)
	}
	if v, err := b.SNMP("Icmp", "InEchos"); err != nil || v != 3 {
		t.Errorf("b's Icmp InEchos = %v (%v), want 3", v, err)
	}
	if _, err := a.SNMP("Icmp", "NoSuchField"); err == nil {
		t.Error("SNMP of a field /proc/net/snmp lacks: no error")
	}

	if err := b.Sysctl("net.ipv4.icmp_echo_ignore_all", "1"); err != nil {
		t.Fatal(err)
	}
	res, err = a.Ping(addrB, 2, 10*time.Millisecond, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 2 || res.Received != 0 {
		t.Fatalf("ping of a namespace ignoring echo requests: %+v, want 2 sent, none received", res)
	}
}

// TestEchoMessages: an echo request checks out, its reply is read back,
// and a reply with a bad checksum or of another type is not a reply.
func TestEchoMessages(t *testing.T) {
	req := EchoRequest(0x1234, 7, []byte("data"))
	if req[0] != proto.ICMPEcho || checksum.Of(req) != 0 {
		t.Fatalf("echo request % x: type %d, checksum over it %#x", req, req[0], checksum.Of(req))
	}
	rep := slices.Clone(req)
	rep[0] = proto.ICMPEchoReply
	binary.BigEndian.PutUint16(rep[2:], 0)
	binary.BigEndian.PutUint16(rep[2:], checksum.Of(rep))
	if id, seq, ok := EchoReply(rep); !ok || id != 0x1234 || seq != 7 {
		t.Fatalf("EchoReply = %#x, %d, %v; want 0x1234, 7, true", id, seq, ok)
	}
	bad := slices.Clone(rep)
	bad[9] ^= 1
	for name, m := range map[string][]byte{"bad checksum": bad, "request": req, "short": rep[:7]} {
		if _, _, ok := EchoReply(m); ok {
			t.Errorf("%s: read as an echo reply", name)
		}
	}
}

// TestTCPAndHTTP: an HTTP server listening in b answers a's client, one
// connection per request, from the address a was given; a connect to a
// closed port is refused; TCPSockets sees a's connection from a only.
func TestTCPAndHTTP(t *testing.T) {
	a, b, ea := pair(t)
	if err := a.AddAddr(ea, "198.19.9.3/29"); err != nil {
		t.Fatal(err)
	}
	l, err := b.Listen("tcp", "198.19.9.2:80")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	remotes := make(chan string, 4)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			remotes <- r.RemoteAddr
			io.WriteString(w, "hello from b")
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(l)
	defer srv.Close()
	if ok, err := b.Listening(netip.MustParseAddrPort("198.19.9.2:80")); err != nil || !ok {
		t.Errorf("Listening in b = %v, %v; want true", ok, err)
	}

	c := a.HTTPClient("198.19.9.3", 5*time.Second)
	for range 2 {
		resp, err := c.Get("http://198.19.9.2/")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != "hello from b" {
			t.Fatalf("GET: %d %q %v", resp.StatusCode, body, err)
		}
		if r := <-remotes; netip.MustParseAddrPort(r).Addr().String() != "198.19.9.3" {
			t.Errorf("the request came from %s, want 198.19.9.3", r)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections for 2 requests, want one each", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Dial(ctx, "tcp", "198.19.9.2:81"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("connect to a closed port: %v, want connection refused", err)
	}
	conn, err := a.Dial(ctx, "tcp", "198.19.9.2:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := netip.MustParseAddrPort(conn.LocalAddr().String())
	established := func(ns *NS) bool {
		socks, err := ns.TCPSockets()
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(socks, TCPSocket{Local: local, Remote: netip.MustParseAddrPort("198.19.9.2:80"), State: "ESTABLISHED"})
	}
	if !established(a) {
		t.Errorf("a's sockets lack %s to 198.19.9.2:80 ESTABLISHED", local)
	}
	if established(b) {
		t.Errorf("b's sockets list a's end of the connection")
	}
}

// TestUDP: a datagram from a is echoed by a socket of b's.
func TestUDP(t *testing.T) {
	a, b, _ := pair(t)
	pc, err := b.ListenPacket("udp", "198.19.9.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, "udp", "198.19.9.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("echo?")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "echo?" {
		t.Fatalf("echo: %q, %v", buf[:n], err)
	}
	if got := c.LocalAddr().(*net.UDPAddr).IP.String(); got != addrA.String() {
		t.Errorf("sent from %s, want %s", got, addrA)
	}
}

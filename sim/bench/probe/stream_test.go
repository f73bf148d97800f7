package probe

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/newtsim/newtsim/apps/socket"
)

// stallingAPI is Linux's sockets, its Send of datagram number stallAt
// held back by stall first: a path that stops a while (a loaded machine,
// a server waiting for a buffer) and then goes on, losing nothing.
type stallingAPI struct {
	socket.Linux
	stallAt uint64
	stall   time.Duration
}

func (a stallingAPI) Send(fd socket.FD, b []byte, flags int) (int, error) {
	if len(b) >= 8 && !bytes.HasPrefix(b, hello) && !bytes.HasPrefix(b, bye) && payloadSeq(b) == a.stallAt {
		time.Sleep(a.stall)
	}
	return a.Linux.Send(fd, b, flags)
}

// payloadSeq is the number of a stream's datagram.
func payloadSeq(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// A stream that stalls longer than a second on its way still counts every
// datagram that arrives: the sink stops at the blaster's end of the
// stream, not at the first quiet second (before, a 1.5 s stall ended the
// stream at the datagram before it, and bench udp counted the rest lost).
// The stream is smaller than a Linux socket's default receive buffer (256
// datagrams of 64 bytes), so nothing may be dropped.
func TestStreamOutlastsStall(t *testing.T) {
	const count, size = 200, 64
	api := stallingAPI{stallAt: 50, stall: 1500 * time.Millisecond}
	fd, addr := boundUDP(t, api)
	type result struct {
		r   StreamResult
		err error
	}
	got := make(chan result, 1)
	go func() {
		r, err := sinkOn(api, fd, count)
		got <- result{r, err}
	}()
	if err := Blast(api, addr, count, size); err != nil {
		t.Fatalf("blast: %v", err)
	}
	select {
	case res := <-got:
		if res.err != nil {
			t.Fatalf("sink: %v", res.err)
		}
		if res.r.Received != count || res.r.Sent != count || res.r.Corrupt != 0 {
			t.Fatalf("sink: %d of %d received (%d corrupt), want all %d", res.r.Received, res.r.Sent, res.r.Corrupt, count)
		}
		if res.r.Seconds < api.stall.Seconds() {
			t.Errorf("sink: the stream took %.3f s, less than the %v stall in it", res.r.Seconds, api.stall)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sink did not stop at the end of the stream")
	}
}

// A sink whose blaster died mid-stream stops after idle with nothing and
// counts the rest lost.
func TestStreamSinkGivesUp(t *testing.T) {
	api := socket.Linux{}
	fd, addr := boundUDP(t, api)
	tx, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close(tx)
	for i := range 10 {
		if _, err := api.SendTo(tx, payload(uint64(i), 64), 0, addr); err != nil {
			t.Fatal(err)
		}
	}
	r, err := sinkIdle(api, fd, 100, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Received != 10 || r.Sent != 100 {
		t.Fatalf("got %d of %d, want 10 of 100", r.Received, r.Sent)
	}
}

// boundUDP opens a datagram socket on api bound to a port of the
// loopback, closed when the test ends, and returns it and its address.
func boundUDP(t *testing.T, api socket.API) (socket.FD, netip.AddrPort) {
	t.Helper()
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close(fd) })
	if err := api.Bind(fd, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	addr, err := api.LocalAddr(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, addr
}

package probe

import (
	"bytes"
	"net/netip"
	"strings"
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
	got := make(chan error, 1)
	go func() { got <- sinkOn(api, fd) }()
	r, err := Blast(api, addr, StreamOptions{Count: count, Size: size})
	if err != nil {
		t.Fatalf("blast: %v", err)
	}
	if r.Received != count || r.Sent != count || r.Corrupt != 0 || r.Throughput != nil {
		t.Fatalf("%+v: want all %d received, and no search", r, count)
	}
	if r.Seconds < api.stall.Seconds() {
		t.Errorf("the stream took %.3f s at the sink, less than the %v stall in it", r.Seconds, api.stall)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("sink: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sink did not stop at the end of the stream")
	}
}

// A sink whose blaster died mid-stream stops after idle with nothing and
// says so.
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
	err = sinkIdle(api, fd, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "10 datagrams into a stream") {
		t.Fatalf("got %v, want the sink to give up 10 datagrams into the stream", err)
	}
}

// searchAPI is Linux's sockets with a stream's datagrams dropped by a
// script: the unpaced stream (the first) loses every other datagram, the
// first trial loses none and every later trial loses one in ten; and
// every end of a stream is sent twice, so the sink answers each twice and
// the blaster finds the last stream's second answer waiting when it ends
// the next.
type searchAPI struct {
	socket.Linux
	stream *int // the streams ended so far: the last end's number
}

func (a searchAPI) Send(fd socket.FD, b []byte, flags int) (int, error) {
	switch {
	case bytes.HasPrefix(b, bye):
		id, _, _, err := parseBye(b)
		if err != nil {
			return 0, err
		}
		*a.stream = id
		a.Linux.Send(fd, b, flags)
	case bytes.HasPrefix(b, hello):
	case *a.stream == 0 && payloadSeq(b)%2 == 1, *a.stream > 1 && payloadSeq(b)%10 == 0:
		return len(b), nil
	}
	return a.Linux.Send(fd, b, flags)
}

// The throughput search over real sockets: the sink counts each trial
// apart (a duplicated end of a stream is answered with the same count,
// and not taken for the end of the next), the blaster reads each count
// from the sink's answer, and the search climbs from its one passing
// trial at half the unpaced rate to within the resolution of it.
func TestStreamSearch(t *testing.T) {
	const count, trial, size = 200, 100, 64
	var n int
	api := searchAPI{stream: new(int)}
	fd, addr := boundUDP(t, socket.Linux{})
	got := make(chan error, 1)
	go func() { got <- sinkOn(socket.Linux{}, fd) }()
	var held StreamResult
	r, err := Blast(api, addr, StreamOptions{Count: count, Size: size, Search: Search{Trial: trial},
		Hold: func(u StreamResult) error { held, n = u, *api.stream; return nil }})
	if err != nil {
		t.Fatalf("blast: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatalf("sink: %v", err)
	}
	if r.Sent != count || r.Received != count/2 || held != r.StreamResult || n != 1 {
		t.Errorf("unpaced: %+v (held %+v after %d streams), want %d of %d, held after the first", r.StreamResult, held, n, count/2, count)
	}
	th := r.Throughput
	if th == nil {
		t.Fatal("no search")
	}
	want := []bool{true, false, false, false, false} // half the ceiling, then 4 bisections to within 5%
	if len(th.Trials) != len(want) {
		t.Fatalf("%d trials, want %d: %+v", len(th.Trials), len(want), th.Trials)
	}
	for i, tr := range th.Trials {
		wantRecv := trial - trial/10
		if i == 0 {
			wantRecv = trial
		}
		if tr.Pass != want[i] || tr.Sent != trial || tr.Received != wantRecv || tr.Offered <= 0 {
			t.Errorf("trial %d: %+v, want %d of %d, pass %v", i, tr, wantRecv, trial, want[i])
		}
	}
	first := th.Trials[0]
	if th.Ceiling != r.Offered || th.Found != th.Ceiling/2 || first.Target != th.Found || th.Unpaced {
		t.Errorf("search: %+v, want it to find half the ceiling %.0f, at the first trial", th, r.Offered)
	}
	if th.Rate != first.Offered || th.Target != first.Target || th.At != first.StreamResult {
		t.Errorf("search: %+v, want the rate the first trial offered, %.0f", th, first.Offered)
	}
	if th.Mbits != th.Rate*size*8/1e6 {
		t.Errorf("%.3f Mbit/s at %.0f datagrams of %d B per second", th.Mbits, th.Rate, size)
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

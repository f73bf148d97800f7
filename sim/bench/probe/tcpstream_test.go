package probe

import (
	"net/netip"
	"testing"
	"time"

	"github.com/newtsim/newtsim/apps/socket"
)

// The stream's fill and check agree at any offset and length, and the
// check finds a changed byte and a stream shifted by one.
func TestStreamCheck(t *testing.T) {
	for _, off := range []int64{0, 1, 7, 8, 65535, 1 << 20} {
		for _, n := range []int{0, 1, 5, 8, 9, 100, 4099} {
			b := make([]byte, n)
			fillStream(b, off)
			for i := range b {
				if b[i] != streamByte(off+int64(i)) {
					t.Fatalf("fill at %d: byte %d", off, i)
				}
			}
			if bad, first := checkStream(b, off); bad != 0 || first != -1 {
				t.Fatalf("check at %d, %d bytes: %d bad, first %d", off, n, bad, first)
			}
			if n > 3 {
				b[3] ^= 0x40
				if bad, first := checkStream(b, off); bad != 1 || first != 3 {
					t.Fatalf("changed byte at %d: %d bad, first %d", off, bad, first)
				}
			}
		}
	}
	b := make([]byte, 1000)
	fillStream(b, 1)
	if bad, _ := checkStream(b, 0); bad < 900 {
		t.Fatalf("a stream one byte late: only %d bytes found bad", bad)
	}
}

func BenchmarkStreamCheck(b *testing.B) {
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	for i := 0; b.Loop(); i++ {
		off := int64(i) * int64(len(buf))
		fillStream(buf, off)
		if bad, _ := checkStream(buf, off); bad != 0 {
			b.Fatal(bad)
		}
	}
}

// The bench's functions on Linux sockets in one process: a checked
// stream, and connections set up and closed server side first, each on a
// listening socket the kernel gave a port.
func TestTCPFunctionsOnLinux(t *testing.T) {
	api := socket.Linux{}
	loopback := netip.MustParseAddrPort("127.0.0.1:0")
	listen := func(backlog int) (socket.FD, netip.AddrPort) {
		t.Helper()
		ln, err := Listen(api, loopback, backlog)
		if err != nil {
			t.Fatal(err)
		}
		addr, err := api.LocalAddr(ln)
		if err != nil {
			t.Fatal(err)
		}
		return ln, addr
	}
	ln, target := listen(SinkBacklog)
	sink := make(chan TCPStreamResult, 1)
	go func() {
		r, err := TCPSink(api, ln, 5*time.Second)
		if err != nil {
			r.Error = err.Error()
		}
		sink <- r
	}()
	const size = 3<<20 + 5
	if err := TCPSource(api, target, size); err != nil {
		t.Fatal(err)
	}
	if err := (<-sink).Verify(size); err != nil {
		t.Fatal(err)
	}

	ln, target = listen(AcceptBacklog)
	defer api.Close(ln)
	accepted := make(chan error, 1)
	const n = 50
	go func() { accepted <- TCPAccepts(api, ln, n+1) }()
	r, err := TCPConnects(api, target, n, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	if r.Conns != n || r.Batches != 4 || len(r.BatchRates) != 4 || r.PerSec <= 0 || r.MinPerSec > r.MaxPerSec {
		t.Fatalf("%+v", r)
	}
}

package tcp

import (
	"bytes"
	"testing"
	"time"
)

func TestHandshakeDataClose(t *testing.T) {
	n := newNet(t, Config{TimeWait: 2 * time.Second}, Config{TimeWait: 2 * time.Second})
	n.log = testing.Verbose()
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	msg := []byte("GET / HTTP/1.1\r\n\r\n")
	if got := n.transfer(n.a, c, n.b, s, msg, false, time.Second); !bytes.Equal(got, msg) {
		t.Fatalf("server got %q", got)
	}
	reply := pattern(100000, 1)
	if got := n.transfer(n.b, s, n.a, c, reply, true, 5*time.Second); !bytes.Equal(got, reply) {
		t.Fatalf("client got %d bytes, want %d", len(got), len(reply))
	}
	if err := n.a.Close(n.now, c); err != nil {
		t.Fatal(err)
	}
	n.runFor(time.Second)
	if st := n.b.ByState(); st[TimeWait] != 1 {
		t.Fatalf("the side that closed first should be in TIME-WAIT: %v", st)
	}
	if st := n.a.ByState(); len(st) != 0 {
		t.Fatalf("client state table not empty: %v", st)
	}
	n.runFor(2 * time.Second)
	if st := n.b.ByState(); st[TimeWait] != 0 || st[Listen] != 1 || len(st) != 1 {
		t.Fatalf("after TIME-WAIT the server should hold only its listener: %v", st)
	}
}

// TestLossyBulk sends 10 MB through a network that loses 5% of segments,
// duplicates 1% and reorders, both ways, and closes: every byte arrives
// once and in order, and both state tables are empty after TIME-WAIT.
func TestLossyBulk(t *testing.T) {
	size := 10 << 20
	if testing.Short() {
		size = 1 << 20
	}
	cfg := Config{TimeWait: 2 * time.Second}
	n := newNet(t, cfg, cfg)
	n.loss, n.dup, n.jitter = 0.05, 0.01, 200*time.Microsecond
	l := n.listen(80, 8)
	c, s := n.dial(l, 80)
	data := pattern(size, 7)
	start := n.now
	got := n.transfer(n.a, c, n.b, s, data, true, 10*time.Minute)
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, want %d, equal prefix %d", len(got), len(data), commonPrefix(got, data))
	}
	st := n.a.Stats()
	t.Logf("%d MB in %v simulated: %d segments sent, %d lost; sender: %d retransmits, %d RTOs, %d fast retransmits, %d D-SACKs received, %d undone by them; receiver: %d D-SACKs sent",
		size>>20, n.now.Sub(start), n.sent, n.lost, st.Retransmits, st.RTOExpiries, st.FastRetransmits,
		st.DSACKsReceived, st.DSACKUndos, n.b.Stats().DSACKsSent)
	if err := n.b.Close(n.now, s); err != nil {
		t.Fatal(err)
	}
	n.b.Close(n.now, l)
	n.runFor(5 * time.Second)
	if a, b := n.a.ByState(), n.b.ByState(); len(a) != 0 || len(b) != 0 {
		t.Fatalf("state tables not empty after TIME-WAIT: a %v, b %v", a, b)
	}
	if len(n.a.conns)+len(n.b.conns)+len(n.a.ports)+len(n.b.ports) != 0 {
		t.Fatalf("tables not empty: %d %d conns, %d %d ports", len(n.a.conns), len(n.b.conns), len(n.a.ports), len(n.b.ports))
	}
}

func commonPrefix(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

package udp_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/newtsim/newtsim/servers/udp"
)

// TestPortUnreachableDeterministic: when several connected sockets sent
// from the same port to the same peer (SO_REUSEADDR), the ICMP error goes
// to the one bound last, as the peer's answer would, on every run. (It
// went to whichever a map iteration met first.)
func TestPortUnreachableDeterministic(t *testing.T) {
	remote := ap(peer, 9)
	for run := range 20 {
		tab := udp.New(config)
		var ids []udp.SockID
		for range 8 {
			id := tab.Open()
			if err := tab.SetReuseAddr(id, true); err != nil {
				t.Fatal(err)
			}
			if err := tab.Bind(id, ap(any4, 5000)); err != nil {
				t.Fatalf("Bind: %v", err)
			}
			if err := tab.Connect(id, remote); err != nil {
				t.Fatalf("Connect: %v", err)
			}
			ids = append(ids, id)
		}
		if !tab.ICMPError(ap(host, 5000), remote, 3, 3) {
			t.Fatalf("run %d: no socket heard of the ICMP error", run)
		}
		last := ids[len(ids)-1]
		if w := tab.Wakeups(); !slices.Equal(w, []udp.SockID{last}) {
			t.Fatalf("run %d: woke %v, want the socket bound last (%d)", run, w, last)
		}
		buf := make([]byte, 8)
		for _, id := range ids {
			_, _, _, err := tab.RecvFrom(id, buf)
			if want := id == last; errors.Is(err, udp.ErrConnRefused) != want {
				t.Fatalf("run %d: socket %d receives %v; refused %v, want %v", run, id, err, !want, want)
			}
		}
	}
}

// TestDrain: Out gives what SendTo made, oldest first, once; Wakeups lists
// each socket whose readiness changed once until drained, in order; UDP has
// no deadline.
func TestDrain(t *testing.T) {
	tab := udp.New(config)
	a, b := open(t, tab, ap(host, 1000)), open(t, tab, ap(host, 2000))
	for _, p := range []string{"one", "two"} {
		if err := tab.SendTo(a, []byte(p), ap(host, 2000)); err != nil {
			t.Fatalf("SendTo: %v", err)
		}
	}
	out := tab.Out()
	if len(out) != 2 || string(out[0].Segment[udp.HeaderLen:]) != "one" || string(out[1].Segment[udp.HeaderLen:]) != "two" {
		t.Fatalf("Out = %v, want the two datagrams in order", out)
	}
	segs := [][]byte{slices.Clone(out[0].Segment), slices.Clone(out[1].Segment)}
	if again := tab.Out(); len(again) != 0 {
		t.Fatalf("second Out = %v, want nothing", again)
	}
	if w := tab.Wakeups(); len(w) != 0 {
		t.Fatalf("sending woke %v", w)
	}
	for _, seg := range segs {
		if err := tab.Input(host, host, seg); err != nil {
			t.Fatalf("Input: %v", err)
		}
	}
	if err := tab.Connect(a, ap(host, 2000)); err != nil {
		t.Fatal(err)
	}
	if err := tab.Shutdown(a, true, false); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if w := tab.Wakeups(); !slices.Equal(w, []udp.SockID{b, a}) {
		t.Fatalf("Wakeups = %v, want [%d %d]: b once for two datagrams, then a for its shutdown", w, b, a)
	}
	if w := tab.Wakeups(); len(w) != 0 {
		t.Fatalf("second Wakeups = %v, want nothing", w)
	}
	if err := tab.Shutdown(a, true, false); err != nil {
		t.Fatalf("Shutdown again: %v", err)
	}
	if w := tab.Wakeups(); len(w) != 0 {
		t.Fatalf("a second read shutdown woke %v", w)
	}
	if at, ok := tab.Deadline(); ok {
		t.Fatalf("Deadline = %v, want none", at)
	}
	tab.Tick(time.Time{}) // nothing to do, and no harm
}

package probe

import "testing"

// TestMonolithRows: the monolith rows' measuring code runs both sides in
// one process over a monolithic host's loopback: a bulk stream arrives
// whole and as sent, every datagram of a stream is either received intact
// or counted lost, and round trips are timed.
func TestMonolithRows(t *testing.T) {
	h, stop, err := monolith()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	const size = 1 << 20
	r, err := monolithBulk(h, size)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(size); err != nil || r.Mbits <= 0 {
		t.Errorf("bulk: %+v: %v", r, err)
	}
	s, err := monolithStream(h, StreamOptions{Count: StreamCount, Size: 64, Search: Search{Trial: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Sent != StreamCount || s.Received <= 0 || s.Received > s.Sent || s.Corrupt != 0 || s.Throughput == nil {
		t.Errorf("stream: %+v", s)
	}
	if th := s.Throughput; th != nil && (th.Rate > th.Ceiling || th.At.Received > th.At.Sent) {
		t.Errorf("throughput: %+v", th)
	}
	if testing.Short() {
		return
	}
	p, err := monolithPing(h, 64)
	if err != nil {
		t.Fatal(err)
	}
	if p.NS <= 0 || p.RoundTrips <= 0 {
		t.Errorf("round trips: %+v", p)
	}
}

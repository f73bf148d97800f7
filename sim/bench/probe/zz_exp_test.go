package probe

import (
	"fmt"
	"testing"

	"github.com/newtsim/newtsim/apps/socket"
)

func TestZZExp(t *testing.T) {
	fd, addr := boundUDP(t, socket.Linux{})
	go sinkOn(socket.Linux{}, fd)
	r, err := Blast(socket.Linux{}, addr, StreamOptions{Count: 10000, Size: 64, Search: Search{Trial: 2000}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("unpaced %d/%d offered %.0f recv %.0f\n", r.Received, r.Sent, r.Offered, r.PerSec)
	for _, tr := range r.Throughput.Trials {
		fmt.Printf("  %.0f %.0f %d/%d %v %.0f\n", tr.Target, tr.Offered, tr.Received, tr.Sent, tr.Pass, tr.PerSec)
	}
}

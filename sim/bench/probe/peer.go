package probe

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/apps/udpecho"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/shm"
)

// PeerOptions say what a `newtsim bench peer` process does.
type PeerOptions struct {
	Mode string // what to run: see PeerMain
	File string // a file the mode uses, or the target address
	Out  string // where the measuring side writes its result
	Size int    // datagram size for the udp modes; bytes or connections for the tcp ones; members for the ring modes
	// Index is a ring member's place in its ring (ring-member; the lead
	// is 0).
	Index int
	// Search is the throughput search of the udp stream modes (the
	// blaster's side: udp-blast-linux, udp-stream-monolith).
	Search Search
}

// PeerMain runs a measuring process started by `newtsim bench`: `newtsim
// bench peer`. Modes: shm-local sends to its own inbox (created at path);
// pipe-ping and pipe-pong use the pipes at fds 3 (read) and 4 (write);
// udp-echo-linux and udp-ping-linux are bench udp's Linux row,
// udp-sink-linux and udp-blast-linux its Linux stream (the blaster writes
// the StreamReport); tcp-sink-linux and
// tcp-source-linux (Size bytes) are bench tcp's Linux bulk row,
// tcp-accept-linux and tcp-connect-linux (Size connections) its connection
// row; tcp-bulk-monolith, udp-stream-monolith and udp-ping-monolith run
// both sides of a row in this one process, on a monolithic host
// (monolith.go); ring-lead and ring-member are a ring of Size processes
// passing a token on the shared memory at fd 3, and ring-threads the same
// between Size threads of this one process (ring.go). In the Linux rows the server side (echo, sink, accept) finds the
// socket its driver opened for it at fd 3, and the client side is given
// that socket's address as File. The measuring side writes its result to
// out.
func PeerMain(o PeerOptions) error {
	mode, path, out := o.Mode, o.File, o.Out
	switch mode {
	case "udp-echo-linux", "udp-ping-linux", "udp-sink-linux", "udp-blast-linux":
		return udpPeer(o)
	case "tcp-sink-linux", "tcp-source-linux", "tcp-accept-linux", "tcp-connect-linux":
		return tcpPeer(mode, path, out, o.Size)
	case "tcp-bulk-monolith", "udp-stream-monolith", "udp-ping-monolith":
		return monolithPeer(o)
	case "shm-local":
		return shmLocal(path, out)
	case "ring-lead":
		return RingLead(o.Size, out)
	case "ring-member":
		return RingMember(o.Size, o.Index)
	case "ring-threads":
		return RingThreads(o.Size, out)
	case "pipe-ping", "pipe-pong":
		rd, wr := os.NewFile(3, "pipe-read"), os.NewFile(4, "pipe-write")
		b := make([]byte, 1)
		if mode == "pipe-pong" {
			for {
				if _, err := rd.Read(b); err != nil {
					return nil // EOF: the ping side is done
				}
				if _, err := wr.Write(b); err != nil {
					return err
				}
			}
		}
		s, err := Measure(DefaultBudget, func(int) error {
			if _, err := wr.Write(b); err != nil {
				return err
			}
			_, err := rd.Read(b)
			return err
		})
		wr.Close()
		if err != nil {
			return err
		}
		return writeSample(out, s)
	}
	return fmt.Errorf("bench-peer: unknown mode %q", mode)
}

// shmLocal sends a message into a ring of its own inbox and takes it out
// again, in one process on one core: what the transport's code costs with
// no cache line crossing cores. The inbox's files are memfds named after
// path's base.
func shmLocal(path, out string) error {
	self := ipc.MakeEndpoint(1, 1)
	name := filepath.Base(path)
	in, fs, err := shm.NewInbox(name, func(int) string { return name + ".ring" }, shm.Layout{Senders: []int{self.Slot()}, Slots: 256})
	if err != nil {
		return err
	}
	in.Close()
	defer fs.Close()
	// An owners table, as in a run: a send checks the receiver there.
	owners, of, err := shm.NewOwners(name + ".owners")
	if err != nil {
		return err
	}
	of.Close()
	defer owners.Close()
	owners.Set(self.Slot(), self)
	t, err := shm.Open(shm.Config{Self: self, Inbox: fs, Owners: owners,
		Peers: map[int]shm.PeerFiles{self.Slot(): {Ring: fs.Rings[self.Slot()], Page: fs.Page}}})
	if err != nil {
		return err
	}
	defer t.Close()
	var m, r ipc.Message
	s, err := Measure(DefaultBudget, func(i int) error {
		m = ipc.Message{Dst: self, Type: ipc.Ping, Seq: uint32(i)}
		if err := t.Send(&m); err != nil {
			return err
		}
		if err := t.Recv(&r); err != nil {
			return err
		}
		if r.Seq != uint32(i) {
			return fmt.Errorf("shm-local: got %v", &r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeSample(out, s)
}

// peerSocket is the descriptor on which the server side of a Linux row
// finds the socket its driver opened for it.
const peerSocket socket.FD = 3

// udpPeer runs the Linux side of bench udp for PeerMain: the echo program
// and the sink on the bound socket at peerSocket, the client and the
// blaster sending to target.
func udpPeer(o PeerOptions) error {
	mode, target, out, size := o.Mode, o.File, o.Out, o.Size
	switch mode {
	case "udp-echo-linux":
		return udpecho.Echo(socket.Linux{}, peerSocket)
	case "udp-sink-linux":
		return sinkOn(socket.Linux{}, peerSocket)
	}
	ap, err := netip.ParseAddrPort(target)
	if err != nil {
		return fmt.Errorf("bench: %s: the server's address: %w", mode, err)
	}
	switch mode {
	case "udp-ping-linux":
		s, err := UDPRoundTrips(socket.Linux{}, ap, size)
		if err != nil {
			return err
		}
		return writeSample(out, s)
	case "udp-blast-linux":
		r, err := Blast(socket.Linux{}, ap, StreamOptions{Count: StreamCount, Size: size, Search: o.Search})
		if err != nil {
			return err
		}
		return writeJSON(out, r)
	}
	return fmt.Errorf("bench: unknown mode %q", mode)
}

// tcpPeer runs the Linux side of bench tcp for PeerMain: the server modes
// on the listening socket at peerSocket, the client modes connecting to
// target.
func tcpPeer(mode, target, out string, size int) error {
	api := socket.Linux{}
	switch mode {
	case "tcp-sink-linux":
		r, err := TCPSink(api, peerSocket, 30*time.Second)
		if err != nil {
			r.Error = err.Error()
		}
		return writeJSON(out, r)
	case "tcp-accept-linux":
		defer api.Close(peerSocket)
		return TCPAccepts(api, peerSocket, size+1)
	}
	ap, err := netip.ParseAddrPort(target)
	if err != nil {
		return fmt.Errorf("bench: %s: the server's address: %w", mode, err)
	}
	switch mode {
	case "tcp-source-linux":
		return TCPSource(api, ap, int64(size))
	case "tcp-connect-linux":
		r, err := TCPConnects(api, ap, size, connBatches)
		if err != nil {
			r.Error = err.Error()
		}
		return writeJSON(out, r)
	}
	return fmt.Errorf("bench: unknown mode %q", mode)
}

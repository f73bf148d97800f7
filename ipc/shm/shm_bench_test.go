package shm

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/ipc"
)

// BenchmarkPingPong measures a round trip over two rings between two
// goroutines on threads pinned to CPUs 0 and 1, both spinning: the in-process
// counterpart of `newtsim bench ipc`'s shm-spin-2core row.
func BenchmarkPingPong(b *testing.B) {
	for _, slots := range []int{2, 8, 16, 32, 64, 256} {
		b.Run(fmt.Sprintf("slots=%d", slots), func(b *testing.B) { pingPong(b, slots) })
	}
}

func pingPong(b *testing.B, slots int) {
	pingIn := newInbox(b, slots, 0, txSlot) // rxEP's
	pongIn := newInbox(b, slots, 0, rxSlot) // txEP's
	poll := ipc.WaitPolicy{Spin: ipc.SpinForever}
	ping, err := Open(Config{Self: rxEP, Inbox: pingIn.receiver(), Peers: map[int]PeerFiles{txSlot: pongIn.sender(rxSlot)}, Wait: poll})
	if err != nil {
		b.Fatal(err)
	}
	pong, err := Open(Config{Self: txEP, Inbox: pongIn.receiver(), Peers: map[int]PeerFiles{rxSlot: pingIn.sender(txSlot)}, Wait: poll})
	if err != nil {
		b.Fatal(err)
	}
	defer ping.Close()
	defer pong.Close()
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		cpu.PinThread([]int{1})
		var m ipc.Message
		for {
			if err := pong.Recv(&m); err != nil {
				b.Error(err)
				return
			}
			if m.Type == ipc.Shutdown {
				close(done)
				return
			}
			m.Dst, m.Type = rxEP, ipc.Pong
			if err := pong.Send(&m); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu.PinThread([]int{0})
	var m, r ipc.Message
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m = ipc.Message{Dst: txEP, Type: ipc.Ping, Seq: uint32(i)}
		if err := ping.Send(&m); err != nil {
			b.Fatal(err)
		}
		if err := ping.Recv(&r); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	m = ipc.Message{Dst: txEP, Type: ipc.Shutdown}
	ping.Send(&m)
	<-done
}

// BenchmarkSendRecvLocal sends and receives in one goroutine: the
// transport's own instruction cost, with no cache line crossing cores.
// traced=off is the cost with the trace recorder's hooks in place and off
// (compare with a build before them); traced=on records a put and a take
// per message (package internal/trace).
func BenchmarkSendRecvLocal(b *testing.B) {
	b.Run("traced=off", func(b *testing.B) { sendRecvLocal(b) })
	b.Run("traced=on", func(b *testing.B) {
		trace.Enable("bench", "bench", rxSlot)
		defer trace.Disable()
		sendRecvLocal(b)
	})
}

func sendRecvLocal(b *testing.B) {
	in := newInbox(b, 256, 0, txSlot)
	rx, err := Open(Config{Self: rxEP, Inbox: in.receiver()})
	if err != nil {
		b.Fatal(err)
	}
	tx, err := Open(Config{Self: txEP, Peers: map[int]PeerFiles{rxSlot: in.sender(txSlot)}, Owners: in.owners})
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	defer tx.Close()
	var m, r ipc.Message
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m = ipc.Message{Dst: rxEP, Type: ipc.Ping, Seq: uint32(i)}
		if err := tx.Send(&m); err != nil {
			b.Fatal(err)
		}
		if err := rx.Recv(&r); err != nil {
			b.Fatal(err)
		}
	}
}

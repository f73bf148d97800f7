package sockcall

import (
	"net/netip"
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
)

var (
	peer   = netip.MustParseAddrPort("198.18.0.1:4242")
	caller = ipc.MakeEndpoint(9, 2)
	buf    = pool.MakeRef(9, 4096, 1200)
)

func TestCallRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    Call
	}{
		{"open", Call{Op: ipc.OpOpen, Type: 1, Caller: caller}},
		{"open exposed", Call{Op: ipc.OpOpen, Type: 1, Exposed: true, Region: 77}},
		{"bind", Call{Op: ipc.OpBind, Sock: 3, Addr: peer}},
		{"bind nowhere", Call{Op: ipc.OpBind, Sock: 3}},
		{"connect", Call{Op: ipc.OpConnect, Sock: 3, Addr: peer, Flags: 0x40, Caller: caller}},
		{"sendto", Call{Op: ipc.OpSendTo, Sock: 3, Addr: peer, Buf: buf, Flags: 0x40}},
		{"send connected", Call{Op: ipc.OpSendTo, Sock: 3, Buf: buf}},
		{"recvfrom", Call{Op: ipc.OpRecvFrom, Sock: 3, Max: 512, Flags: 0x2}},
		{"accept", Call{Op: ipc.OpAccept, Sock: 4, Flags: 0x40}},
		{"listen", Call{Op: ipc.OpListen, Sock: 4, Backlog: -1}},
		{"poll", Call{Op: ipc.OpPoll, Sock: 4, Events: -0x8000 | 0x5}},
		{"shutdown", Call{Op: ipc.OpShutdown, Sock: 4, How: 2}},
		{"shutdown bad", Call{Op: ipc.OpShutdown, Sock: 4, How: -1}},
		{"setopt", Call{Op: ipc.OpSetOpt, Sock: 4, Level: 1, Option: 2, Value: -7}},
		{"getopt", Call{Op: ipc.OpGetOpt, Sock: 4, Level: 6, Option: 1}},
		{"close", Call{Op: ipc.OpClose, Sock: 1 << 40, Caller: caller}},
		{"localaddr", Call{Op: ipc.OpLocalAddr, Sock: 5}},
		{"dropidle", Call{Op: ipc.OpDropIdle, Epoch: 12}},
		{"pollset", Call{Op: ipc.OpPollSet, Count: 200, Timeout: 20 * time.Millisecond, Buf: buf, Caller: caller}},
		{"pollset forever", Call{Op: ipc.OpPollSet, Count: 1, Timeout: -1, Buf: buf}},
		{"unknown", Call{Op: 99, Sock: 5, Caller: caller}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ipc.Message{Src: caller, Dst: ipc.MakeEndpoint(3, 1), Seq: 7}
			tt.c.Encode(&m)
			if m.Type != ipc.Socket || ipc.SocketOp(m.Flags) != tt.c.Op || m.Src != caller || m.Seq != 7 {
				t.Fatalf("header %v: want a Socket call of op %d, the header kept", &m, tt.c.Op)
			}
			var got Call
			got.Decode(&m)
			if got != tt.c {
				t.Fatalf("round trip: got %+v, want %+v", got, tt.c)
			}
		})
	}
}

func TestReplyRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    Reply
	}{
		{"open", Reply{Op: ipc.OpOpen, Result: 3, Caller: caller}},
		{"open exposed", Reply{Op: ipc.OpOpen, Result: 3, Region: 1<<60 | 5}},
		{"failure", Reply{Op: ipc.OpConnect, Result: -111, Caller: caller}},
		{"accept", Reply{Op: ipc.OpAccept, Result: 8, Addr: peer}},
		{"recvfrom", Reply{Op: ipc.OpRecvFrom, Result: 1200, Addr: peer, Buf: buf}},
		{"end of file", Reply{Op: ipc.OpRecvFrom, Addr: netip.MustParseAddrPort("0.0.0.0:0")}},
		{"localaddr", Reply{Op: ipc.OpLocalAddr, Addr: peer}},
		{"poll", Reply{Op: ipc.OpPoll, Result: 5}},
		{"pollset none", Reply{Op: ipc.OpPollSet}},
		{"pollset failed", Reply{Op: ipc.OpPollSet, Result: -22}},
		{"pollset three", Reply{Op: ipc.OpPollSet, Result: 3, Ready: [MaxPollReady]PollReady{{0, 1}, {7, -0x8000 | 0x18}, {65535, 4}}}},
		{"pollset more than reported", Reply{Op: ipc.OpPollSet, Result: 300, Ready: [MaxPollReady]PollReady{
			{1, 1}, {2, 4}, {3, 5}, {4, 8}, {5, 0x10}, {6, 0x20}, {7, 1}, {9, 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m ipc.Message
			tt.r.Encode(&m)
			if m.Type != ipc.SocketReply || ipc.SocketOp(m.Flags) != tt.r.Op {
				t.Fatalf("header %v: want a reply of op %d", &m, tt.r.Op)
			}
			var got Reply
			got.Decode(&m)
			if got != tt.r {
				t.Fatalf("round trip: got %+v, want %+v", got, tt.r)
			}
		})
	}
}

// An unbound socket's name (the zero AddrPort) reads back as 0.0.0.0:0, as
// getsockname gives on Linux; a call's missing address stays missing.
func TestZeroAddress(t *testing.T) {
	var m ipc.Message
	Reply{Op: ipc.OpLocalAddr}.Encode(&m)
	var r Reply
	r.Decode(&m)
	if want := netip.MustParseAddrPort("0.0.0.0:0"); r.Addr != want {
		t.Fatalf("reply address %v, want %v", r.Addr, want)
	}
	Call{Op: ipc.OpSendTo, Sock: 3}.Encode(&m)
	var c Call
	c.Decode(&m)
	if c.Addr.IsValid() {
		t.Fatalf("call address %v, want none", c.Addr)
	}
}

func TestCallReply(t *testing.T) {
	c := Call{Op: ipc.OpAccept, Sock: 4, Caller: caller}
	if r := c.Reply(-11); r != (Reply{Op: ipc.OpAccept, Result: -11, Caller: caller}) {
		t.Fatalf("Reply = %+v", r)
	}
}

func TestDoorbellAndWake(t *testing.T) {
	var m ipc.Message
	Doorbell{Sock: 1<<48 | 3}.Encode(&m)
	var d Doorbell
	d.Decode(&m)
	if m.Type != ipc.Doorbell || d.Sock != 1<<48|3 {
		t.Fatalf("doorbell %v decodes as %+v", &m, d)
	}
	want := Wake{Sock: 9, Caller: caller, Events: -0x8000 | 0x11}
	want.Encode(&m)
	var w Wake
	w.Decode(&m)
	if m.Type != ipc.Wake || w != want {
		t.Fatalf("wake %v decodes as %+v, want %+v", &m, w, want)
	}
}

func TestPollSet(t *testing.T) {
	set := []PollEntry{{3, 1}, {1<<32 - 1, 4}, {1 << 24, -0x8000 | 5}}
	b := make([]byte, 64)
	for i := range b {
		b[i] = 0xff // what was in the buffer before
	}
	if n := PutPollSet(b, set); n != len(set)*PollEntrySize {
		t.Fatalf("PutPollSet wrote %d bytes, want %d", n, len(set)*PollEntrySize)
	}
	tests := []struct {
		name string
		b    []byte
		n    int
		want []PollEntry
		err  error
	}{
		{"the set", b, len(set), set, nil},
		{"none", b, 0, nil, nil},
		{"a prefix", b, 2, set[:2], nil},
		{"more than the buffer holds", b[:2*PollEntrySize], 3, nil, ErrPollSet},
		{"a negative count", b, -1, nil, ErrPollSet},
		{"more than an index names", make([]byte, (1<<16+1)*PollEntrySize), 1<<16 + 1, nil, ErrPollSet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadPollSet(nil, tt.b, tt.n)
			if err != tt.err {
				t.Fatalf("ReadPollSet: %v, want %v", err, tt.err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ReadPollSet = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("ReadPollSet = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// FuzzDecode feeds arbitrary messages to the decoders: a decoded call or
// reply encodes to a message that decodes to the same value, so what a
// server reads is what it would pass on.
func FuzzDecode(f *testing.F) {
	seed := func(e interface{ Encode(*ipc.Message) }) {
		var m ipc.Message
		e.Encode(&m)
		var b [ipc.MessageSize]byte
		m.Marshal(b[:])
		f.Add(b[:])
	}
	seed(Call{Op: ipc.OpSendTo, Sock: 3, Addr: peer, Buf: buf, Flags: 0x40, Caller: caller})
	seed(Call{Op: ipc.OpOpen, Type: 1, Exposed: true, Region: 77})
	seed(Reply{Op: ipc.OpRecvFrom, Result: 1200, Addr: peer, Buf: buf})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m ipc.Message
		if m.Unmarshal(b) != nil {
			return
		}
		var c, c2 Call
		c.Decode(&m)
		var m2 ipc.Message
		c.Encode(&m2)
		c2.Decode(&m2)
		if c2 != c {
			t.Fatalf("call %+v encodes as %v, which decodes as %+v", c, &m2, c2)
		}
		var r, r2 Reply
		r.Decode(&m)
		r.Encode(&m2)
		r2.Decode(&m2)
		if r2 != r {
			t.Fatalf("reply %+v encodes as %v, which decodes as %+v", r, &m2, r2)
		}
	})
}

package socket

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/sockcall"
)

// pollSyscall is a fake syscall for the message backend's Poll: it
// answers an OpPollSet from ready (descriptor to events), naming at most
// sockcall.MaxPollReady, and OpPoll the same way, and records the calls.
type pollSyscall struct {
	p      *pool.Pool
	ready  map[FD]int16
	dead   bool // every call fails as on a syscall that died
	sets   [][]sockcall.PollEntry
	tmo    []time.Duration
	single int // OpPoll calls
}

func newPollSyscall(t *testing.T, bufSize int) *pollSyscall {
	p, err := pool.NewMemory(pool.Config{ID: 8, Path: "app.pool", Count: 4, BufSize: bufSize, Owner: ipc.MakeEndpoint(8, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return &pollSyscall{p: p, ready: map[FD]int16{}}
}

func (c *pollSyscall) Call(m *ipc.Message) (ipc.Message, error) {
	var call sockcall.Call
	call.Decode(m)
	if c.dead {
		if call.Buf != 0 {
			c.p.Free(call.Buf) // the runtime gives back what a failed send carried
		}
		return ipc.Message{}, fmt.Errorf("fake: syscall died: %w", ipc.ErrDeadEndpoint)
	}
	var r sockcall.Reply
	switch call.Op {
	case ipc.OpPoll:
		c.single++
		r = call.Reply(int64(c.ready[FD(call.Sock)] & (call.Events | POLLERR | POLLHUP | POLLNVAL)))
	case ipc.OpPollSet:
		b, err := c.p.Bytes(call.Buf, ipc.MakeEndpoint(8, 1))
		if err != nil {
			return ipc.Message{}, err
		}
		set, err := sockcall.ReadPollSet(nil, b, call.Count)
		if err != nil {
			return ipc.Message{}, err
		}
		c.p.Free(call.Buf)
		c.sets, c.tmo = append(c.sets, set), append(c.tmo, call.Timeout)
		n := 0
		for i, e := range set {
			if ev := c.ready[FD(e.Sock)] & (e.Events | POLLERR | POLLHUP | POLLNVAL); ev != 0 {
				if n < sockcall.MaxPollReady {
					r.Ready[n] = sockcall.PollReady{Index: uint16(i), Revents: ev}
				}
				n++
			}
		}
		r.Op, r.Result = ipc.OpPollSet, int64(n)
	default:
		return ipc.Message{}, fmt.Errorf("fake: op %d", call.Op)
	}
	var rm ipc.Message
	r.Encode(&rm)
	return rm, nil
}

func (c *pollSyscall) Alloc() (pool.Ref, []byte, error)              { return c.p.Alloc() }
func (c *pollSyscall) Slice(ref pool.Ref, n int) pool.Ref            { return c.p.Slice(ref, n) }
func (c *pollSyscall) Buffer(*ipc.Message, pool.Ref) ([]byte, error) { return nil, pool.ErrEmpty }
func (c *pollSyscall) Release(ref pool.Ref) error                    { return c.p.Free(ref) }
func (c *pollSyscall) WaitWake(time.Duration) error                  { return nil }
func (c *pollSyscall) CallTo(string, *ipc.Message) (ipc.Message, error) {
	return ipc.Message{}, errors.ErrUnsupported
}

func TestMessagePollSet(t *testing.T) {
	many := func(n int) []PollFD {
		var fds []PollFD
		for i := range n {
			fds = append(fds, PollFD{FD: FD(100 + i), Events: POLLIN})
		}
		return fds
	}
	tests := []struct {
		name    string
		fds     []PollFD
		ready   map[FD]int16
		bufSize int
		dead    bool
		timeout time.Duration
		n       int
		want    map[int]int16 // entry -> revents; the others 0
		calls   int           // OpPollSet calls
		single  int           // OpPoll calls
	}{
		{name: "one call for the set, a skipped descriptor left out",
			fds:   []PollFD{{FD: 3, Events: POLLIN}, {FD: -1, Events: POLLIN}, {FD: 4, Events: POLLOUT}, {FD: 5, Events: POLLIN}},
			ready: map[FD]int16{4: POLLOUT, 5: POLLIN | POLLHUP}, timeout: 20 * time.Millisecond,
			n: 2, want: map[int]int16{2: POLLOUT, 3: POLLIN | POLLHUP}, calls: 1},
		{name: "nothing ready", fds: []PollFD{{FD: 3, Events: POLLIN}}, timeout: -1, n: 0, calls: 1},
		{name: "more ready than a reply names: one more call for the rest",
			fds: many(12), ready: map[FD]int16{100: POLLIN, 101: POLLIN, 102: POLLIN, 103: POLLIN, 104: POLLIN,
				105: POLLIN, 106: POLLIN, 107: POLLIN, 109: POLLIN, 111: POLLIN}, timeout: time.Second,
			n: 10, want: map[int]int16{0: POLLIN, 1: POLLIN, 2: POLLIN, 3: POLLIN, 4: POLLIN, 5: POLLIN, 6: POLLIN,
				7: POLLIN, 9: POLLIN, 11: POLLIN}, calls: 2},
		{name: "syscall died: every descriptor is gone", fds: []PollFD{{FD: 3, Events: POLLIN}, {FD: 4, Events: POLLIN}},
			dead: true, timeout: -1, n: 2, want: map[int]int16{0: POLLNVAL, 1: POLLNVAL}},
		{name: "a set no buffer holds: one call a descriptor",
			fds: many(9), ready: map[FD]int16{104: POLLIN}, bufSize: 64, timeout: time.Second,
			n: 1, want: map[int]int16{4: POLLIN}, single: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.bufSize == 0 {
				tt.bufSize = pool.DefaultBufSize
			}
			c := newPollSyscall(t, tt.bufSize)
			c.ready, c.dead = tt.ready, tt.dead
			for i := range tt.fds {
				tt.fds[i].Revents = -1 // what a last poll left
			}
			n, err := NewMessage(c).Poll(tt.fds, tt.timeout)
			if err != nil || n != tt.n {
				t.Fatalf("Poll = %d, %v; want %d", n, err, tt.n)
			}
			for i, p := range tt.fds {
				if p.Revents != tt.want[i] {
					t.Errorf("entry %d (fd %d): revents %#x, want %#x", i, p.FD, p.Revents, tt.want[i])
				}
			}
			if len(c.sets) != tt.calls || c.single != tt.single {
				t.Fatalf("%d poll set calls, %d single polls; want %d and %d", len(c.sets), c.single, tt.calls, tt.single)
			}
			if tt.calls > 0 && c.tmo[0] != tt.timeout {
				t.Errorf("first call's timeout %v, want %v", c.tmo[0], tt.timeout)
			}
			for _, tmo := range c.tmo[min(1, len(c.tmo)):] {
				if tmo != 0 {
					t.Errorf("a call for the rest waits %v, want 0", tmo)
				}
			}
			if tt.calls == 2 && (len(c.sets[1]) != 4 || c.sets[1][0].Sock != 108) {
				t.Errorf("second call's set %v, want the 4 entries after the last named", c.sets[1])
			}
			if st := c.p.Stats(); st.Allocated != 0 {
				t.Errorf("%d buffers not given back", st.Allocated)
			}
		})
	}
}

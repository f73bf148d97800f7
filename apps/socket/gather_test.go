package socket

import (
	"bytes"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/sockcall"
)

func TestPiecesAndGather(t *testing.T) {
	bufs := [][]byte{[]byte("head:"), nil, []byte("body"), {}, []byte("!")}
	stream := []byte("head:body!")
	for off := 0; off <= len(stream)+1; off++ {
		var got []byte
		for p := range Pieces(bufs, off) {
			if len(p) == 0 {
				t.Errorf("offset %d: an empty piece", off)
			}
			got = append(got, p...)
		}
		want := stream[min(off, len(stream)):]
		if !bytes.Equal(got, want) {
			t.Errorf("Pieces(%d) = %q, want %q", off, got, want)
		}
		for _, size := range []int{0, 1, 3, 7, 20} {
			dst := make([]byte, size)
			n := Gather(dst, bufs, off)
			w := want[:min(size, len(want))]
			if n != len(w) || !bytes.Equal(dst[:n], w) {
				t.Errorf("Gather(%d bytes, off %d) = %d %q, want %q", size, off, n, dst[:n], w)
			}
		}
	}
	if Size(bufs) != len(stream) {
		t.Errorf("Size = %d, want %d", Size(bufs), len(stream))
	}
}

// streamSyscall is a fake syscall for the message backend's sends on
// a stream socket: it takes at most room bytes in all, then answers
// EAGAIN, and keeps what it took.
type streamSyscall struct {
	p     *pool.Pool
	room  int
	got   []byte
	calls int
}

func (c *streamSyscall) Call(m *ipc.Message) (ipc.Message, error) {
	var call sockcall.Call
	call.Decode(m)
	var r sockcall.Reply
	switch call.Op {
	case ipc.OpOpen:
		r = call.Reply(3)
	case ipc.OpSendTo:
		c.calls++
		b, err := c.p.Bytes(call.Buf, ipc.MakeEndpoint(8, 1))
		if err != nil {
			return ipc.Message{}, err
		}
		n := min(len(b), c.room-len(c.got))
		c.got = append(c.got, b[:n]...)
		c.p.Free(call.Buf)
		if n == 0 {
			r = call.Reply(-int64(unix.EAGAIN))
		} else {
			r = call.Reply(int64(n))
		}
	default:
		r = call.Reply(-int64(unix.EINVAL))
	}
	var rm ipc.Message
	r.Encode(&rm)
	return rm, nil
}

func (c *streamSyscall) Alloc() (pool.Ref, []byte, error)              { return c.p.Alloc() }
func (c *streamSyscall) Slice(ref pool.Ref, n int) pool.Ref            { return c.p.Slice(ref, n) }
func (c *streamSyscall) Buffer(*ipc.Message, pool.Ref) ([]byte, error) { return nil, pool.ErrEmpty }
func (c *streamSyscall) Release(ref pool.Ref) error                    { return c.p.Free(ref) }
func (c *streamSyscall) WaitWake(time.Duration) error                  { return nil }

// The message backend's Writev sends a header and a large body from where
// they lie, a pool buffer at a time, and a partial write (no room left on
// a non-blocking socket) takes up where it stopped, as writev(2) does.
func TestMessageWritevGathers(t *testing.T) {
	p, err := pool.NewMemory(pool.Config{ID: 8, Path: "app.pool", Count: 4, BufSize: 4096, Owner: ipc.MakeEndpoint(8, 1)})
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 100_000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	want := slices.Concat([]byte("HTTP/1.1 200 OK\r\n\r\n"), body)
	for _, tc := range []struct {
		name string
		room int
	}{
		{"everything fits", len(want)},
		{"a partial write", 50_001},
		{"room for the header alone", 19},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &streamSyscall{p: p, room: tc.room}
			k := NewMessage(c)
			fd, err := k.Socket(AF_INET, SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			k.SetNonblock(fd, true)
			iov := [][]byte{want[:19], body}
			total := 0
			for total < len(want) {
				n, err := k.Writev(fd, iov)
				if err == unix.EAGAIN {
					if c.room >= len(want) {
						t.Fatalf("EAGAIN with room left, after %d bytes", total)
					}
					c.room = len(want) // the peer reads: room for the rest
					continue
				}
				if err != nil || n <= 0 {
					t.Fatalf("Writev = %d, %v after %d bytes", n, err, total)
				}
				total += n
				iov = slices.Collect(Pieces(iov, n))
			}
			if !bytes.Equal(c.got, want) {
				t.Fatalf("the stream differs from the header and body joined (%d bytes of %d)", len(c.got), len(want))
			}
			if min := (len(want) + 4095) / 4096; c.calls < min {
				t.Errorf("%d sends, want at least %d (a 4096-byte pool buffer each)", c.calls, min)
			}
		})
	}
}

// Writev copies from the caller's buffers into the pool buffers: what it
// allocates does not grow with the body (before, it joined the header and
// the body into a new buffer on every call).
func TestMessageWritevCopiesNoBody(t *testing.T) {
	p, err := pool.NewMemory(pool.Config{ID: 8, Path: "app.pool", Count: 4, BufSize: 4096, Owner: ipc.MakeEndpoint(8, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c := &streamSyscall{p: p, room: 1 << 30}
	k := NewMessage(c)
	fd, err := k.Socket(AF_INET, SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	const calls = 8
	body := make([]byte, 512<<10)
	iov := [][]byte{[]byte("HTTP/1.1 200 OK\r\n\r\n"), body}
	c.got = make([]byte, 0, calls*Size(iov))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range calls {
		if n, err := k.Writev(fd, iov); err != nil || n != Size(iov) {
			t.Fatalf("Writev = %d, %v", n, err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / calls; per >= uint64(len(body))/4 {
		t.Errorf("Writev of a %d-byte body allocated %d bytes a call", len(body), per)
	}
}

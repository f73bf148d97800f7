package socket

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/memfd"
	"github.com/newtsim/newtsim/ipc/pool"
	"github.com/newtsim/newtsim/ipc/sockbuf"
	"github.com/newtsim/newtsim/ipc/sockcall"
)

// deadServer is a process whose server answers opens (exposed, with a
// region it makes) and fails every other call as a dead server's would:
// ipc.ErrDeadEndpoint.
type deadServer struct {
	t      *testing.T
	deaths int
	next   uint64
	alive  bool
	awake  *os.File            // tcp's awake word
	made   map[uint64]*os.File // regions made, not yet collected
}

func (c *deadServer) Call(m *ipc.Message) (ipc.Message, error) { return c.CallTo("syscall", m) }

func (c *deadServer) CallTo(peer string, m *ipc.Message) (ipc.Message, error) {
	var call sockcall.Call
	call.Decode(m)
	if !c.alive || call.Op != ipc.OpOpen {
		return ipc.Message{}, fmt.Errorf("fake: %s died: %w", peer, ipc.ErrDeadEndpoint)
	}
	c.next++
	f, err := memfd.Create(sockbuf.RegionName("socktest", "tcp", c.next), sockbuf.Size)
	if err != nil {
		c.t.Fatal(err)
	}
	reg, err := sockbuf.New(f)
	if err != nil {
		c.t.Fatal(err)
	}
	reg.Close()
	if c.made == nil {
		c.made = map[uint64]*os.File{}
	}
	c.made[c.next] = f
	var r ipc.Message
	sockcall.Reply{Op: ipc.OpOpen, Result: int64(c.next), Region: c.next}.Encode(&r)
	return r, nil
}

func (c *deadServer) Alloc() (pool.Ref, []byte, error)              { return 0, nil, pool.ErrExhausted }
func (c *deadServer) Slice(ref pool.Ref, n int) pool.Ref            { return ref }
func (c *deadServer) Buffer(*ipc.Message, pool.Ref) ([]byte, error) { return nil, pool.ErrEmpty }
func (c *deadServer) Release(pool.Ref) error                        { return nil }
func (c *deadServer) Notify(string, *ipc.Message) error             { return nil }
func (c *deadServer) WaitWake(time.Duration) error                  { return nil }

func (c *deadServer) Collect(_ string, id uint64) (*os.File, error) {
	f, ok := c.made[id]
	if !ok {
		return nil, fmt.Errorf("fake: no region %d: %w", id, ipc.ErrDeadEndpoint)
	}
	delete(c.made, id)
	return f, nil
}
func (c *deadServer) AwakeFile(string) (*os.File, error) { return c.awake, nil }
func (c *deadServer) Deaths(string) int                  { return c.deaths }

// A call whose server died fails with an errno: ECONNRESET from the
// transport itself, EBADF through syscall (the descriptors died with it).
func TestMessageServerDied(t *testing.T) {
	c := &deadServer{t: t}
	if _, err := NewMessage(c).Recv(3, make([]byte, 8), 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("through a dead syscall: %v, want EBADF", err)
	}
	if _, err := NewMessageDirect(c, "tcp").Recv(3, make([]byte, 8), 0); !errors.Is(err, unix.ECONNRESET) {
		t.Errorf("straight to a dead tcp: %v, want ECONNRESET", err)
	}
}

// When the tcp server dies, its exposed sockets are reset: poll finds
// them ready with an error, receive says ECONNRESET once and then end of
// file, send EPIPE after that, close returns at once.
func TestExposedServerDied(t *testing.T) {
	awake, err := memfd.Create("awake", sockbuf.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer awake.Close()
	if _, err := sockbuf.New(awake); err != nil {
		t.Fatal(err)
	}
	c := &deadServer{t: t, alive: true, awake: awake}
	k, err := NewExposed(c, "tcp")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := k.Socket(AF_INET, SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	k.SetNonblock(fd, true)
	if _, err := k.Recv(fd, make([]byte, 8), 0); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("receive on a new socket: %v", err)
	}
	c.deaths, c.alive = 1, false
	p := []PollFD{{FD: fd, Events: POLLIN}}
	if n, err := k.Poll(p, -1); n != 1 || err != nil || p[0].Revents != POLLIN|POLLERR|POLLHUP {
		t.Fatalf("poll = %d, %v, revents %#x; want the socket ready with POLLERR|POLLHUP", n, err, p[0].Revents)
	}
	steps := []struct {
		name string
		call func() error
		want error
	}{
		{"receive", func() error { _, err := k.Recv(fd, make([]byte, 8), 0); return err }, unix.ECONNRESET},
		{"receive again", func() error { _, err := k.Recv(fd, make([]byte, 8), 0); return err }, nil},
		{"send", func() error { _, err := k.Send(fd, []byte("x"), 0); return err }, unix.EPIPE},
		{"close", func() error { return k.Close(fd) }, nil},
	}
	for _, st := range steps {
		if err := st.call(); !errors.Is(err, st.want) && err != st.want {
			t.Errorf("%s: %v, want %v", st.name, err, st.want)
		}
	}
}

package servers

import (
	"flag"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/sockcall"
	"github.com/newtsim/newtsim/servers/sys"
)

// syscallServer is where applications' socket calls land with the
// `message` backend, as in NewtOS: it keeps each application's descriptors,
// forwards every call to the transport server owning the socket (naming
// the caller), and passes the replies back.
type syscallServer struct {
	udp  string
	tcp  string
	fds  map[uint64]fdEntry
	next uint64
}

// fdEntry is one descriptor: whose it is, and which socket of which
// transport it names.
type fdEntry struct {
	app       int // the application's slot
	transport string
	sock      uint64
}

// Syscall starts the syscall role: applications' descriptor tables, forwarding each socket call to its transport.
func Syscall(s *sys.Server) (sys.Handler, error) {
	c := &syscallServer{fds: map[uint64]fdEntry{}, next: 3}
	fs := flag.NewFlagSet("syscall", flag.ContinueOnError)
	fs.StringVar(&c.udp, "udp", "udp", "the UDP server")
	fs.StringVar(&c.tcp, "tcp", "tcp", "the TCP server")
	return c, fs.Parse(s.Opts.Args)
}

func (c *syscallServer) Handle(s *sys.Server, m *ipc.Message) error {
	switch m.Type {
	case ipc.Socket:
		return c.call(s, m)
	case ipc.SocketReply:
		return c.back(s, m)
	}
	return nil
}

// call passes an application's call to the transport owning the socket,
// naming the caller and the transport's own socket; an open goes to the
// transport of its type.
func (c *syscallServer) call(s *sys.Server, m *ipc.Message) error {
	q := newRequest(m)
	to := ""
	if q.Op == ipc.OpOpen {
		switch q.Type {
		case unix.SOCK_DGRAM:
			to = c.udp
		case unix.SOCK_STREAM:
			to = c.tcp
		default:
			return q.fail(s, unix.EPROTONOSUPPORT)
		}
	} else {
		e, ok := c.fds[q.Sock]
		if !ok || e.app != m.Src.Slot() {
			return q.fail(s, unix.EBADF)
		}
		if q.Op == ipc.OpClose {
			delete(c.fds, q.Sock) // the descriptor goes whatever the transport says
		}
		to, q.Sock = e.transport, e.sock
	}
	f := *m
	q.Caller = m.Src
	q.Encode(&f)
	return s.SendTo(to, &f)
}

// back passes a transport's reply to the application that called; a new
// socket gets a descriptor.
func (c *syscallServer) back(s *sys.Server, m *ipc.Message) error {
	var r sockcall.Reply
	r.Decode(m)
	app := r.Caller
	r.Caller = 0
	if (r.Op == ipc.OpOpen || r.Op == ipc.OpAccept) && r.Result >= 0 {
		fd := c.next
		c.next++
		c.fds[fd] = fdEntry{app: app.Slot(), transport: s.PeerName(m.Src.Slot()), sock: uint64(r.Result)}
		r.Result = int64(fd)
	}
	f := *m
	f.Dst = app
	r.Encode(&f)
	return s.Send(&f)
}

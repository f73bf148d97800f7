package servers

import (
	"flag"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
)

// syscallServer is where applications' socket calls land with the
// `message` backend, as in NewtOS: it keeps each application's descriptors,
// forwards every call to the transport server owning the socket (with the
// caller's endpoint in Arg[5]), and passes the replies back.
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

// fail answers an application's call at once.
func fail(s *sys.Server, m *ipc.Message, e unix.Errno) error { return sendReply(s, m, -int64(e)) }

func (c *syscallServer) call(s *sys.Server, m *ipc.Message) error {
	f := *m
	f.Arg[5] = uint64(m.Src)
	if ipc.SocketOp(m.Flags) == ipc.OpOpen {
		switch m.Arg[0] {
		case unix.SOCK_DGRAM:
			return s.SendTo(c.udp, &f)
		case unix.SOCK_STREAM:
			return s.SendTo(c.tcp, &f)
		}
		return fail(s, m, unix.EPROTONOSUPPORT)
	}
	e, ok := c.fds[m.Arg[0]]
	if !ok || e.app != m.Src.Slot() {
		return fail(s, m, unix.EBADF)
	}
	if ipc.SocketOp(m.Flags) == ipc.OpClose {
		delete(c.fds, m.Arg[0]) // the descriptor goes whatever the transport says
	}
	f.Arg[0] = e.sock
	return s.SendTo(e.transport, &f)
}

// back passes a transport's reply to the application that called.
func (c *syscallServer) back(s *sys.Server, m *ipc.Message) error {
	app := ipc.Endpoint(m.Arg[5])
	r := *m
	r.Dst, r.Arg[5] = app, 0
	if op := ipc.SocketOp(m.Flags); (op == ipc.OpOpen || op == ipc.OpAccept) && int64(m.Arg[0]) >= 0 {
		fd := c.next
		c.next++
		c.fds[fd] = fdEntry{app: app.Slot(), transport: s.PeerName(m.Src.Slot()), sock: m.Arg[0]}
		r.Arg[0] = fd
	}
	return s.Send(&r)
}

package conformance

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/sockbuf"
	"github.com/newtsim/newtsim/servers/sys"
)

// The xhostile role is an application that writes into its exposed
// sockets' shared memory what a hostile or broken one would, then checks
// that only those sockets ended and that its other socket still works.

// HostileResult is what the xhostile role found.
type HostileResult struct {
	Victims     map[string]string `json:"victims"` // how each scribbled socket ended ("" if it did not)
	GoodSocket  string            `json:"good_socket"`
	GoodWorks   bool              `json:"good_works"`
	ServerAlive bool              `json:"server_alive"`
}

type hostileApp struct{ out string }

// HostileRole starts the xhostile role: an application that writes garbage into its exposed sockets' regions.
func HostileRole(s *sys.Server) (sys.Handler, error) {
	a := &hostileApp{}
	fs := flag.NewFlagSet("xhostile", flag.ContinueOnError)
	fs.StringVar(&a.out, "out", "", "where to write the result")
	return a, fs.Parse(s.Opts.Args)
}

func (a *hostileApp) Handle(*sys.Server, *ipc.Message) error { return nil }

// pair connects two exposed sockets over loopback.
func pair(api *socket.Exposed, ln socket.FD, addr netip.AddrPort) (socket.FD, socket.FD, error) {
	c, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return -1, -1, err
	}
	if err := api.Connect(c, addr); err != nil {
		return -1, -1, err
	}
	s, _, err := api.Accept(ln)
	return c, s, err
}

// Run scribbles, checks, writes the result, then serves.
func (a *hostileApp) Run(s *sys.Server) error {
	res := HostileResult{Victims: map[string]string{}}
	err := func() error {
		x, err := socket.NewExposed(s, "tcp")
		if err != nil {
			return err
		}
		ln, err := x.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		x.Bind(ln, netip.MustParseAddrPort("127.0.0.1:0"))
		if err := x.Listen(ln, 8); err != nil {
			return err
		}
		addr, _ := x.LocalAddr(ln)
		scribbles := map[string]func(r *sockbuf.Region){
			"head past the ring": func(r *sockbuf.Region) { r.TX().Head().Store(r.TX().Tail().Load() + 5000) },
			"data outside the area": func(r *sockbuf.Region) {
				r.TX().Put(&sockbuf.Desc{Kind: sockbuf.KindData, Off: sockbuf.AreaSize - 10, Len: 1 << 20})
			},
			"unknown descriptor":     func(r *sockbuf.Region) { r.TX().Put(&sockbuf.Desc{Kind: 99}) },
			"tail ahead of the head": func(r *sockbuf.Region) { r.RX().Tail().Store(r.RX().Head().Load() + 7) },
		}
		victims := map[string]socket.FD{}
		for name := range scribbles {
			c, _, err := pair(x, ln, addr)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			victims[name] = c
		}
		good, goodPeer, err := pair(x, ln, addr)
		if err != nil {
			return err
		}
		for name, fd := range victims {
			scribbles[name](x.Region(fd))
			x.RingDoorbell(fd)
		}
		deadline := time.Now().Add(5 * time.Second)
		for name, fd := range victims {
			for {
				st := x.Region(fd).State().Load()
				if st&sockbuf.StFailed != 0 {
					res.Victims[name] = fmt.Sprintf("failed, errno %d", st>>32)
					break
				}
				if time.Now().After(deadline) {
					res.Victims[name] = ""
					break
				}
				x.RingDoorbell(fd)
				time.Sleep(time.Millisecond)
			}
		}
		msg := []byte("still here")
		if _, err := x.Send(good, msg, 0); err != nil {
			res.GoodSocket = err.Error()
			return nil
		}
		buf := make([]byte, 64)
		n, err := x.Recv(goodPeer, buf, 0)
		res.GoodWorks = err == nil && bytes.Equal(buf[:n], msg)
		if !res.GoodWorks {
			res.GoodSocket = fmt.Sprintf("got %q, %v", buf[:max(n, 0)], err)
		}
		// The server still answers calls.
		_, err = x.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
		res.ServerAlive = err == nil
		return nil
	}()
	if err != nil {
		res.GoodSocket = err.Error()
	}
	if err := sys.WriteResult(a.out, res); err != nil {
		return err
	}
	return s.Serve(a)
}

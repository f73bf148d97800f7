package servers

import (
	"errors"
	"flag"
	"net/netip"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/udp"
)

func init() { Register("udp", newUDP) }

// udpServer is the UDP transport server: the udp engine (package
// servers/udp) fed with the datagrams ip hands up. A datagram whose port has
// no socket goes back to ip as Unreachable, which answers with ICMP.
type udpServer struct {
	ip    string
	table *udp.Table
	drops *drops
}

func newUDP(s *Server) (Handler, error) {
	u := &udpServer{}
	fs := flag.NewFlagSet("udp", flag.ContinueOnError)
	fs.StringVar(&u.ip, "ip", "ip", "the IP server")
	addr := fs.String("addr", "198.18.0.2", "the host's address")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(*addr)
	if err != nil {
		return nil, err
	}
	u.table = udp.New(udp.Config{Addrs: []netip.Addr{a}})
	u.drops = newDrops(s, "udp", u.table.Drops)
	return u, nil
}

func (u *udpServer) Handle(s *Server, m *ipc.Message) error {
	if m.Type != ipc.Datagram {
		return nil
	}
	b, ref, err := s.Buffer(m)
	if err != nil {
		return nil
	}
	defer u.drops.update(time.Now(), u.table.Drops)
	off := int(m.Arg[1])
	if off < 20 || off > len(b) {
		return s.Release(ref) // not a packet ip would send: counted by nobody, freed
	}
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	_, err = u.table.Input(src, dst, b[off:])
	if errors.Is(err, udp.ErrNoSocket) {
		r := ipc.Message{Type: ipc.Unreachable, Arg: [ipc.NumArgs]uint64{uint64(ref)}}
		return s.SendTo(u.ip, &r)
	}
	return s.Release(ref)
}

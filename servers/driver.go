package servers

import (
	"flag"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/servers/sys"
)

// driver moves descriptors between the device and the stack: FrameRx up,
// FrameTx down. It copies nothing.
type driver struct{ up, down string }

// Driver starts the driver role: moves frames between the nic and pf.
func Driver(s *sys.Server) (sys.Handler, error) {
	d := &driver{}
	fs := flag.NewFlagSet("driver", flag.ContinueOnError)
	fs.StringVar(&d.up, "up", "pf", "the server above")
	fs.StringVar(&d.down, "down", "nic", "the device below")
	return d, fs.Parse(s.Opts.Args)
}

func (d *driver) Handle(s *sys.Server, m *ipc.Message) error {
	switch m.Type {
	case ipc.FrameRx:
		return forward(s, d.up, m)
	case ipc.FrameTx:
		return forward(s, d.down, m)
	}
	return nil
}

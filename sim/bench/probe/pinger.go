package probe

import (
	"flag"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/servers/sys"
)

// The pinger role measures round trips to a peer over whatever transport the
// topology gives it: Ping out, Pong back, through the same Transport a
// server uses.

type pinger struct {
	target string
	out    string
	pair   string // cache line file: measure the bare reference beside the ring
	budget Budget
}

// PingerRole starts the pinger role: the measuring side of `bench ipc`.
func PingerRole(s *sys.Server) (sys.Handler, error) {
	p := &pinger{budget: DefaultBudget}
	fs := flag.NewFlagSet("pinger", flag.ContinueOnError)
	fs.StringVar(&p.target, "target", "echo", "the peer to ping")
	fs.StringVar(&p.out, "out", "", "file to write the result to")
	fs.StringVar(&p.pair, "pair", "", "a cache line file shared with the target (a reflector): "+
		"alternate batches over the ring with batches of the bare cache-line ping-pong")
	fs.DurationVar(&p.budget.Batch, "batch", p.budget.Batch, "length of one batch")
	fs.IntVar(&p.budget.Batches, "batches", p.budget.Batches, "batches")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	if p.out == "" {
		return nil, fmt.Errorf("pinger: --out is required")
	}
	return p, nil
}

// Handle ignores stray messages; the measurement reads its own.
func (p *pinger) Handle(*sys.Server, *ipc.Message) error { return nil }

// call sends m to dst and waits for its Pong.
func call(s *sys.Server, m *ipc.Message) error {
	if err := s.T.Send(m); err != nil {
		return err
	}
	var r ipc.Message
	if err := s.T.Recv(&r); err != nil {
		return err
	}
	if r.Type != ipc.Pong || r.Seq != m.Seq {
		return fmt.Errorf("pinger: %s %d answered by %v", m.Type, m.Seq, &r)
	}
	return nil
}

// Run measures, writes the result, then serves until shut down.
func (p *pinger) Run(s *sys.Server) error {
	dst, ok := s.Peer(p.target)
	if !ok {
		return fmt.Errorf("pinger: %s is not a peer", p.target)
	}
	seq := uint32(0)
	ring := func(n int) (float64, float64, error) {
		return timed(0, n, func(int) error {
			seq++
			return call(s, &ipc.Message{Dst: dst, Type: ipc.Ping, Seq: seq})
		})
	}
	if p.pair == "" {
		sample, _, _, err := measure(p.budget, ring, nil)
		if err != nil {
			return err
		}
		if err := writeSample(p.out, sample); err != nil {
			return err
		}
		return s.Serve(p)
	}
	w, closeLine, err := openLine(p.pair)
	if err != nil {
		return err
	}
	defer closeLine()
	next := uint64(1)
	line := func(n int) (float64, float64, error) {
		// Ask the reflector, over the ring, to answer n pings on the line,
		// then time them; its Pong comes when it is done.
		seq++
		m := ipc.Message{Dst: dst, Seq: seq}
		ipc.BenchRequest{Count: uint64(n)}.Encode(&m)
		if err := s.T.Send(&m); err != nil {
			return 0, 0, err
		}
		ns, cyc, err := timed(0, n, func(int) error {
			cachelinePing(w, next)
			next += 2
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
		var r ipc.Message
		if err := s.T.Recv(&r); err != nil || r.Type != ipc.Pong || r.Seq != m.Seq {
			return 0, 0, fmt.Errorf("pinger: bench request %d answered by %v (%v)", m.Seq, &r, err)
		}
		return ns, cyc, nil
	}
	sample, ref, ratios, err := MeasurePaired(p.budget, ring, line)
	if err != nil {
		return err
	}
	if err := writeResult(p.out, Result{Sample: sample, Ref: &ref, Ratios: ratios}); err != nil {
		return err
	}
	return s.Serve(p)
}

// The reflector role is an echo server that also answers Bench requests by
// ponging on a shared cache line: the far side of a paired measurement.

type reflector struct {
	w    *atomic.Uint64
	last uint64
}

// ReflectorRole starts the reflector role: the far side of `bench ipc`, which answers every ping.
func ReflectorRole(s *sys.Server) (sys.Handler, error) {
	fs := flag.NewFlagSet("reflector", flag.ContinueOnError)
	path := fs.String("line", "", "the cache line file shared with the pinger")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	r := &reflector{}
	if *path != "" {
		w, _, err := openLine(*path)
		if err != nil {
			return nil, err
		}
		r.w = w // mapped for the life of the process
	}
	return r, nil
}

func (r *reflector) Handle(s *sys.Server, m *ipc.Message) error {
	if m.Type != ipc.Bench || r.w == nil {
		return nil
	}
	var b ipc.BenchRequest
	b.Decode(m)
	for n := b.Count; n > 0; n-- {
		for {
			v := r.w.Load()
			if v&1 == 1 && v != r.last {
				r.w.Store(v + 1)
				r.last = v
				break
			}
		}
	}
	return s.Reply(m, &ipc.Message{Type: ipc.Pong})
}

// openLine maps the cache line file used by the reference measurements.
func openLine(path string) (*atomic.Uint64, func() error, error) {
	reg, err := shm.OpenRegion(path)
	if err != nil {
		return nil, nil, err
	}
	if len(reg.Mem) < 128 {
		reg.Close()
		return nil, nil, fmt.Errorf("bench: %s is too small for a cache line", path)
	}
	return (*atomic.Uint64)(unsafe.Pointer(&reg.Mem[64])), reg.Close, nil
}

// cachelinePing stores the odd value v and waits for the pong side's v+1.
func cachelinePing(w *atomic.Uint64, v uint64) {
	w.Store(v)
	for w.Load() != v+1 {
	}
}

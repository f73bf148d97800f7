package bench

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/shm"
	"github.com/newtsim/newtsim/servers"
)

// The pinger role measures round trips to a peer over whatever transport the
// topology gives it: Ping out, Pong back, through the same Transport a
// server uses.
func init() { servers.Register("pinger", newPinger) }

type pinger struct {
	target string
	out    string
	budget Budget
}

func newPinger(s *servers.Server) (servers.Handler, error) {
	p := &pinger{budget: DefaultBudget}
	fs := flag.NewFlagSet("pinger", flag.ContinueOnError)
	fs.StringVar(&p.target, "target", "echo", "the peer to ping")
	fs.StringVar(&p.out, "out", "", "file to write the result to")
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
func (p *pinger) Handle(*servers.Server, *ipc.Message) error { return nil }

// Run measures, writes the result, then serves until shut down.
func (p *pinger) Run(s *servers.Server) error {
	dst, ok := s.Peer(p.target)
	if !ok {
		return fmt.Errorf("pinger: %s is not a peer", p.target)
	}
	var m, r ipc.Message
	sample, err := Measure(p.budget, func(i int) error {
		m = ipc.Message{Dst: dst, Type: ipc.Ping, Seq: uint32(i)}
		if err := s.T.Send(&m); err != nil {
			return err
		}
		if err := s.T.Recv(&r); err != nil {
			return err
		}
		if r.Type != ipc.Pong || r.Seq != uint32(i) {
			return fmt.Errorf("pinger: round trip %d answered by %v", i, &r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := writeSample(p.out, sample); err != nil {
		return err
	}
	return s.Serve(p)
}

// PeerMain runs one side of a reference measurement: `newtsim bench peer`.
// Modes: cacheline-ping and cacheline-pong share one cache line in the file
// at path; pipe-ping and pipe-pong use the pipes at fds 3 (read) and 4
// (write). The ping side measures and writes its Sample to out.
func PeerMain(mode, path, out string) error {
	switch mode {
	case "cacheline-ping", "cacheline-pong":
		reg, err := shm.OpenRegion(path)
		if err != nil {
			return err
		}
		defer reg.Close()
		w := (*atomic.Uint64)(unsafe.Pointer(&reg.Mem[64]))
		if mode == "cacheline-pong" {
			return cachelinePong(w)
		}
		s, err := Measure(DefaultBudget, func(i int) error {
			v := uint64(2*i + 1)
			w.Store(v)
			for w.Load() != v+1 {
			}
			return nil
		})
		w.Store(^uint64(0)) // tells the pong side to stop
		if err != nil {
			return err
		}
		return writeSample(out, s)
	case "pipe-ping", "pipe-pong":
		rd, wr := os.NewFile(3, "pipe-read"), os.NewFile(4, "pipe-write")
		b := make([]byte, 1)
		if mode == "pipe-pong" {
			for {
				if _, err := rd.Read(b); err != nil {
					return nil // EOF: the ping side is done
				}
				if _, err := wr.Write(b); err != nil {
					return err
				}
			}
		}
		s, err := Measure(DefaultBudget, func(int) error {
			if _, err := wr.Write(b); err != nil {
				return err
			}
			_, err := rd.Read(b)
			return err
		})
		wr.Close()
		if err != nil {
			return err
		}
		return writeSample(out, s)
	}
	return fmt.Errorf("bench-peer: unknown mode %q", mode)
}

// cachelinePong answers every odd value with the next even one, spinning,
// until it sees the stop value or a minute without a ping.
func cachelinePong(w *atomic.Uint64) error {
	last := uint64(0)
	answered := false
	idle := time.Now()
	for n := 0; ; n++ {
		v := w.Load()
		if v == ^uint64(0) {
			return nil
		}
		if v&1 == 1 && v != last {
			w.Store(v + 1)
			last, answered = v, true
			continue
		}
		if n&0xffff == 0 {
			if answered {
				idle, answered = time.Now(), false
			} else if time.Since(idle) > time.Minute {
				return fmt.Errorf("bench-peer: no ping for a minute")
			}
		}
	}
}

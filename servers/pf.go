package servers

import (
	"errors"
	"flag"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/packet"
	"github.com/newtsim/newtsim/servers/pf"
	"github.com/newtsim/newtsim/servers/sys"
)

// pfServer checks every frame passing through against the rules in force;
// a dropped frame's buffer goes back to its owner. It checks and forwards
// a copy of the frame in a buffer of its own pool, which no other process
// can write: the frame's buffer is its owner's (the nic's, on the wire
// backend the far host's nic's), and bytes checked in it could be
// rewritten between the verdict and their use above or below (a time of
// check to time of use race). The bytes forwarded are the bytes checked.
type pfServer struct {
	up, down string
	filter   *pf.Filter
	verdicts *prometheus.CounterVec
}

// PF starts the pf role: the packet filter between driver and ip.
func PF(s *sys.Server) (sys.Handler, error) {
	p := &pfServer{}
	fs := flag.NewFlagSet("pf", flag.ContinueOnError)
	fs.StringVar(&p.up, "up", "ip", "the server above")
	fs.StringVar(&p.down, "down", "driver", "the server below")
	rules := fs.String("rules", "", "rules file (default: allow everything)")
	if err := fs.Parse(s.Opts.Args); err != nil {
		return nil, err
	}
	rs := &pf.Ruleset{}
	if *rules != "" {
		f, err := os.Open(*rules)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if rs, err = pf.Parse(f, *rules); err != nil {
			return nil, err
		}
	}
	p.filter = pf.NewFilter(rs)
	p.verdicts = counter(s, "pf", "frames_total", "Frames checked, by direction and verdict.", "direction", "verdict")
	s.Registry.MustRegister(&pfHits{p.filter})
	if *rules != "" {
		go p.reloadOnHangup(s, *rules)
	}
	return p, nil
}

// reloadOnHangup reloads the rules file on SIGHUP, without a restart. A
// file that does not parse is refused, with its line and reason in the log,
// and the rules in force stay. Filter.Reload is safe beside the loop's
// checks: it swaps the rules and their counters in one atomic step.
func (p *pfServer) reloadOnHangup(s *sys.Server, path string) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for range hup {
		f, err := os.Open(path)
		if err == nil {
			err = p.filter.Reload(f, path)
			f.Close()
		}
		if err != nil {
			s.Log.Printf("rules not reloaded: %v", err)
			continue
		}
		s.Log.Printf("rules reloaded from %s: %d rules", path, len(p.filter.Ruleset().Rules))
	}
}

func (p *pfServer) Handle(s *sys.Server, m *ipc.Message) error {
	var dir pf.Direction
	var next string
	switch m.Type {
	case ipc.FrameRx:
		dir, next = pf.In, p.up
	case ipc.FrameTx:
		dir, next = pf.Out, p.down
	default:
		return nil
	}
	var f packet.Frame
	f.Decode(m)
	b, err := s.Buffer(m, f.Buf)
	if err != nil {
		return nil
	}
	ref, err := s.Copy(b)
	s.Release(f.Buf) // the owner's buffer goes back at once, copied or not
	if err != nil {  // no buffer of our own, even after BufferWait: dropped
		p.verdicts.WithLabelValues(dir.String(), "no-buffer").Inc()
		return nil
	}
	if b, err = s.Pool.Bytes(ref, s.Pool.Owner()); err != nil {
		return s.Release(ref) // cannot happen: our own buffer, just made
	}
	// The action decides; the error only says why (a frame that is not
	// IPv4, such as ARP, is allowed unchecked; a malformed one dropped).
	act, err := p.filter.CheckFrame(dir, b)
	verdict := act.String()
	switch {
	case errors.Is(err, pf.ErrNotIPv4):
		verdict = "not-ipv4"
	case err != nil:
		verdict = "malformed"
	}
	p.verdicts.WithLabelValues(dir.String(), verdict).Inc()
	if act != pf.Allow {
		return s.Release(ref)
	}
	f.Buf = ref
	var c ipc.Message
	f.Encode(&c)
	return s.SendTo(next, &c) // a failed send frees the copy
}

// pfHits exports the rule counters of the filter in force.
type pfHits struct{ f *pf.Filter }

var (
	descRuleHits = prometheus.NewDesc("newtsim_pf_rule_hits_total",
		"Packets each rule matched (rule -1: the default).", []string{"rule", "line", "action"}, nil)
	descReloads = prometheus.NewDesc("newtsim_pf_reloads_total",
		"Rules file reloads, by result (ok, or refused with the rules in force kept).", []string{"result"}, nil)
)

func (h *pfHits) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRuleHits
	ch <- descReloads
}

func (h *pfHits) Collect(ch chan<- prometheus.Metric) {
	st := h.f.Stats()
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(st.Reloads), "ok")
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(st.FailedReloads), "refused")
	for _, r := range h.f.Hits() {
		ch <- prometheus.MustNewConstMetric(descRuleHits, prometheus.CounterValue, float64(r.Hits),
			strconv.Itoa(r.Index), strconv.Itoa(r.Line), r.Action.String())
	}
}

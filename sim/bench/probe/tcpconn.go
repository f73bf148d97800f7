package probe

import (
	"flag"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/newtsim/newtsim/apps/socket"
	"github.com/newtsim/newtsim/internal/stats"
	"github.com/newtsim/newtsim/servers/sys"
)

// Connection set-up: a client connects, the server accepts and closes at
// once, the client reads the end of file and closes, and the next
// connection starts. The server closes first, so TIME-WAIT stays on the
// server's side, keyed by the whole 4-tuple, and the client's ports are
// free again as soon as each connection is over.

// TCPConnResult is what a connecting client measured.
type TCPConnResult struct {
	Conns     int     `json:"conns"`       // connections completed and timed
	Batches   int     `json:"batches"`     // timed in this many equal batches
	PerSec    float64 `json:"conns_per_s"` // median over the batches
	MinPerSec float64 `json:"min_conns_per_s"`
	MaxPerSec float64 `json:"max_conns_per_s"`
	Seconds   float64 `json:"seconds"` // all the batches
	// BatchRates are the batches' rates in the order they ran: a trend
	// shows a cost that grows with the connections made before.
	BatchRates []float64 `json:"batch_rates"`
	Error      string    `json:"error,omitempty"`
}

// AcceptBacklog is the backlog of an acceptor's listening socket.
const AcceptBacklog = 128

// TCPAccepts accepts count connections on ln, a listening socket, closing
// each as soon as it is accepted; count <= 0 accepts until an error.
func TCPAccepts(api socket.API, ln socket.FD, count int) error {
	for n := 0; count <= 0 || n < count; n++ {
		fd, _, err := api.Accept(ln)
		if err != nil {
			return fmt.Errorf("bench: acceptor: accept %d: %w", n, err)
		}
		if err := api.Close(fd); err != nil {
			return fmt.Errorf("bench: acceptor: close %d: %w", n, err)
		}
	}
	return nil
}

// tcpConnectOnce connects to target, waits for the server's close (end
// of file) and closes.
func tcpConnectOnce(api socket.API, target netip.AddrPort, buf []byte) error {
	fd, err := api.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	if err := api.Connect(fd, target); err != nil {
		api.Close(fd)
		return fmt.Errorf("connect: %w", err)
	}
	n, err := api.Recv(fd, buf, 0)
	if err == nil && n != 0 {
		err = fmt.Errorf("%d bytes where the server's close was expected", n)
	}
	if err != nil {
		api.Close(fd)
		return fmt.Errorf("recv: %w", err)
	}
	if err := api.Close(fd); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// TCPConnects makes count+1 connections to target, one after the other,
// each a connect, the server's close and our close: the first not counted,
// the other count timed in batches equal batches (the last takes what is
// left). The server must be listening already and accept count+1.
func TCPConnects(api socket.API, target netip.AddrPort, count, batches int) (TCPConnResult, error) {
	r := TCPConnResult{}
	buf := make([]byte, 64)
	if err := tcpConnectOnce(api, target, buf); err != nil {
		return r, fmt.Errorf("bench: connector: first connection to %v: %w", target, err)
	}
	batches = max(min(batches, count), 1)
	per := count / batches
	var rates []float64
	start := time.Now()
	for b := 0; b < batches; b++ {
		n := per
		if b == batches-1 {
			n = count - per*(batches-1)
		}
		t0 := time.Now()
		for i := 0; i < n; i++ {
			if err := tcpConnectOnce(api, target, buf); err != nil {
				return r, fmt.Errorf("bench: connector: connection %d: %w", r.Conns, err)
			}
			r.Conns++
		}
		rates = append(rates, float64(n)/time.Since(t0).Seconds())
	}
	r.Seconds = time.Since(start).Seconds()
	r.Batches, r.BatchRates = len(rates), append([]float64(nil), rates...)
	r.PerSec = stats.Median(rates)
	sort.Float64s(rates)
	r.MinPerSec, r.MaxPerSec = rates[0], rates[len(rates)-1]
	return r, nil
}

// connBatches is how many batches a connection rate is timed in.
const connBatches = 10

// The tcpaccept and tcpconnect roles measure connection set-up on a
// simulated host.
// TCPAcceptRole starts the tcpaccept role: the accepting side of the TCP connection benchmark.
var TCPAcceptRole sys.Starter = newTCPConnRole(true)

// TCPConnectRole starts the tcpconnect role: the connecting side of the TCP connection benchmark.
var TCPConnectRole sys.Starter = newTCPConnRole(false)

type tcpConnRole struct {
	accept bool
	target netip.AddrPort
	count  int
	out    string
	ready  string
}

func newTCPConnRole(accept bool) sys.Starter {
	return func(s *sys.Server) (sys.Handler, error) {
		r := &tcpConnRole{accept: accept}
		fs := flag.NewFlagSet("tcpconn", flag.ContinueOnError)
		fs.IntVar(&r.count, "count", 1000, "connections timed (the acceptor accepts one more: the connector's first)")
		fs.StringVar(&r.out, "out", "", "where the connector writes its result")
		fs.StringVar(&r.ready, "ready", "", readyUsage)
		var err error
		r.target, err = parseTarget(fs, s.Opts.Args, "the acceptor's address (the acceptor listens on its port; 0: one the stack picks)")
		return onHost(r.run), err
	}
}

// run accepts or connects.
func (r *tcpConnRole) run(s *sys.Server, api socket.API) error {
	if r.accept {
		if err := r.acceptor(api); err != nil {
			s.Log.Printf("%v", err)
		}
	} else {
		res, err := func() (TCPConnResult, error) {
			target, err := awaitListener(r.target, r.ready)
			if err != nil {
				return TCPConnResult{}, fmt.Errorf("bench: connector: %w", err)
			}
			return TCPConnects(api, target, r.count, connBatches)
		}()
		if err != nil {
			res.Error = err.Error()
		}
		if err := writeJSON(r.out, res); err != nil {
			return err
		}
	}
	return nil
}

func (r *tcpConnRole) acceptor(api socket.API) error {
	ln, err := listenReady(api, r.target.Port(), AcceptBacklog, r.ready)
	if err != nil {
		return fmt.Errorf("bench: acceptor: %w", err)
	}
	defer api.Close(ln)
	return TCPAccepts(api, ln, r.count+1)
}

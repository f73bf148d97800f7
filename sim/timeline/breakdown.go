package timeline

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/ipc"
)

// Hop is one row of a breakdown: the messages one process sent another on
// a request's path, and what each cost, in microseconds. The named fields
// are medians over the hop's messages; P99 and Mean fields stand beside.
type Hop struct {
	Hop       string  `json:"hop"` // "from -> to"
	From      string  `json:"from"`
	To        string  `json:"to"`
	Requests  int     `json:"requests"` // requests followed across the hop (and the whole path)
	QueuedUS  float64 `json:"queued_us"`
	WakeUS    float64 `json:"wake_us"`
	ServiceUS float64 `json:"service_us"`
	TotalUS   float64 `json:"total_us"`

	QueuedP99US  float64 `json:"queued_p99_us"`
	WakeP99US    float64 `json:"wake_p99_us"`
	ServiceP99US float64 `json:"service_p99_us"`
	TotalP99US   float64 `json:"total_p99_us"`
	TotalMeanUS  float64 `json:"total_mean_us"`
}

// Breakdown is a request's time, hop by hop.
type Breakdown struct {
	Hops []Hop `json:"hops"`
	// SumUS is what is compared with the measured figure, as Basis
	// says: "mean", the sum of the hops' means (SumMeanUS, which is the
	// followed requests' mean time), or "median", the followed requests'
	// median time (RequestMedianUS). SumMedianUS sums the hops' medians,
	// which is not a request's median: each hop's median may come from
	// another request.
	SumUS           float64 `json:"sum_us"`
	Basis           string  `json:"basis"` // "mean", "median" or "batch"
	SumMeanUS       float64 `json:"sum_mean_us"`
	SumMedianUS     float64 `json:"sum_median_us"`
	RequestMedianUS float64 `json:"request_median_us"`
	// MeasuredMeanUS is the load generator's mean latency, when the
	// caller has one.
	MeasuredMeanUS float64 `json:"measured_mean_us"`
	// Within10 says whether SumUS is within 10% of MeasuredMeanUS;
	// Check says so in words, and which hop holds the most time.
	Within10 bool   `json:"within_10pct"`
	Check    string `json:"check"`
	// Requests is how many requests were followed across the whole
	// path, of Started that entered it in the window.
	Requests int `json:"requests"`
	Started  int `json:"started"`
	// Window is the span of the requests followed, in milliseconds.
	WindowMS float64 `json:"window_ms"`
	// On a path from and back to the client: ClientRequests is every
	// request the client's stamps show answered (its put on the first hop
	// to its take on the last, followed or not), ClientMeanUS their mean,
	// to set the followed requests against.
	ClientRequests int     `json:"client_requests,omitempty"`
	ClientMeanUS   float64 `json:"client_mean_us,omitempty"`
}

// Skipped are the message types a breakdown leaves out: buffers going
// back to their owners travel beside a request, not on its path.
var Skipped = []ipc.Type{ipc.BufFree}

// Options say how Compute sums and compares.
type Options struct {
	// MeasuredUS is the load generator's figure for a request (0: none).
	MeasuredUS float64
	// Median compares the followed requests' median time with
	// MeasuredUS, for a measured figure that is itself a median; else
	// the sum of the hops' means.
	Median bool
	// ClosedLoop adds a row for the path's first process's own time: from
	// its take of an answer (the last hop) to its next put on the first
	// hop, as a client that sends its next call once answered spends.
	ClosedLoop bool
	// Batch, with ClosedLoop, compares what a prober that times its
	// calls in batches of Batch reports: the median over batches of each
	// batch's mean time per call, a call's time taken from its first put
	// to the next call's.
	Batch int
	// TimedFrom and TimedTo, with Batch, bound the calls the prober
	// timed (its marks, Marked): the batches are made of the calls that
	// began between them (the first call after ends the last batch), not
	// of its warm-up or a pass it counted but did not time. Zero: every
	// call followed.
	TimedFrom, TimedTo uint64
}

// Compute makes the breakdown of the messages along path, a list of
// process names in the order a request crosses them (such as nic, driver,
// pf, ip, tcp, web, tcp, ip, pf, driver, nic): a row for each consecutive
// pair. names maps slots to process names; hz is the time-stamp counter's
// rate.
//
// A request is followed as a chain of messages (Chains); a hop's figures
// are over the chains that crossed the whole path. Its service time is the
// receiver's time from taking the request to putting it on the next hop
// (on the last hop, the receiver's handling), so the hops' means add up to
// the chains' mean, put on the first hop to the end of the last.
func Compute(msgs []Message, names map[int]string, path []string, hz float64, o Options) Breakdown {
	us := func(c uint64) float64 { return float64(c) / hz * 1e6 }
	var b Breakdown
	cs, started := Chains(msgs, names, path)
	b.Requests, b.Started = len(cs), started
	reqs := make([]float64, len(cs)) // each request's time
	for i := 0; i+1 < len(path); i++ {
		var q, w, s, t []float64
		for k, c := range cs {
			m := c[i]
			svc := m.Service()
			if i+1 < len(c) {
				svc = c[i+1].Put - m.Take
			}
			q, w, s = append(q, us(m.Queued())), append(w, us(m.Wakeup())), append(s, us(svc))
			t = append(t, us(m.Queued()+m.Wakeup()+svc))
			reqs[k] += t[len(t)-1]
		}
		b.Hops = append(b.Hops, Hop{Hop: path[i] + " -> " + path[i+1], From: path[i], To: path[i+1], Requests: len(t),
			QueuedUS: quantile(q, 0.5), WakeUS: quantile(w, 0.5), ServiceUS: quantile(s, 0.5), TotalUS: quantile(t, 0.5),
			QueuedP99US: quantile(q, 0.99), WakeP99US: quantile(w, 0.99), ServiceP99US: quantile(s, 0.99), TotalP99US: quantile(t, 0.99),
			TotalMeanUS: mean(t)})
	}
	b.RequestMedianUS = quantile(reqs, 0.5)
	b.ClientRequests, b.ClientMeanUS = clientTimes(msgs, names, path, us)
	if o.ClosedLoop && len(path) > 1 {
		own := ownTime(msgs, names, path, us)
		b.Hops = append(b.Hops, own)
		b.RequestMedianUS += own.TotalUS
	}
	for _, h := range b.Hops {
		b.SumMeanUS += h.TotalMeanUS
		b.SumMedianUS += h.TotalUS
	}
	b.SumUS, b.Basis = b.SumMeanUS, "mean"
	switch {
	case o.ClosedLoop && o.Batch > 0:
		timed := cs
		if o.TimedTo > o.TimedFrom {
			i, _ := slices.BinarySearchFunc(cs, o.TimedFrom, func(c []Message, t uint64) int { return cmp.Compare(c[0].Put, t) })
			j, _ := slices.BinarySearchFunc(cs, o.TimedTo, func(c []Message, t uint64) int { return cmp.Compare(c[0].Put, t) })
			timed = cs[i:min(j+1, len(cs))] // and the first call after, whose put ends the last batch
		}
		b.SumUS, b.Basis = batchMedian(timed, o.Batch, us), "batch"
	case o.Median:
		b.SumUS, b.Basis = b.RequestMedianUS, "median"
	}
	if len(cs) > 0 {
		b.WindowMS = us(cs[len(cs)-1][len(path)-2].Take-cs[0][0].Put) / 1e3
	}
	b.MeasuredMeanUS = o.MeasuredUS
	b.judge()
	return b
}

// Chains follows requests along path, which goes out to a turning point
// (its middle: the application, or the server of a call) and back. It
// returns the requests followed across the whole path, in order, and how
// many entered it (messages on its first hop).
//
// On the way in, a request goes on, at each process, as the first message
// the process put on the next hop after taking it, and before it took the
// next message of the hop the request came in on: a message that is no
// request, such as a bare ACK, goes no further, and takes no request's
// place. On the way back, a request is followed backwards from the last
// hop: a message put by a process was caused by the message it took last
// before (a server's loop handles one message at a time), if it took that
// after its previous put on the same hop (a message that caused a put
// before causes no other: a response sent on tcp's own initiative, with
// no doorbell, is not followed). Each way back is
// then joined with the latest way in of its flow not yet joined that
// reached the turning point before it left, and after the flow's way back
// before it left: what the turning point did between (more calls of its
// own, such as a poll and a read before the answer) is its service.
//
// A path from and back to the client (trace.Outside, whose messages name
// its connection's port) has a flow per connection, and a client sends a
// connection's next request once the answer before is read: a way in is
// joined only with a way back to its own connection, and only if it left
// the client after that connection's answer before (every answer the
// client took counts, followed or not). Each chain is then one request,
// from its first byte written to its answer read, whatever a process in
// the middle did with several at once. Other paths have one flow: with one
// request in flight this is exact; with several, an answer may be joined
// with a request that is not its own, and a request that came in while an
// answer was being made is not followed. A message goes on one request at
// most.
func Chains(msgs []Message, names map[int]string, path []string) ([][]Message, int) {
	n := len(path) - 1
	if n < 1 {
		return nil, 0
	}
	hops := make([][]Message, n) // each hop's messages, by put
	takes := make([][]uint64, n) // and their takes, in order
	for _, m := range msgs {
		if slices.Contains(Skipped, m.Type) {
			continue
		}
		for i := range n {
			if names[m.From] == path[i] && names[m.To] == path[i+1] {
				hops[i] = append(hops[i], m)
			}
		}
	}
	byTake := make([][]int, n) // each hop's messages' indices, by take
	for i := range n {
		slices.SortFunc(hops[i], func(a, b Message) int { return cmp.Compare(a.Put, b.Put) })
		byTake[i] = make([]int, len(hops[i]))
		for k := range byTake[i] {
			byTake[i][k] = k
		}
		slices.SortFunc(byTake[i], func(a, b int) int { return cmp.Compare(hops[i][a].Take, hops[i][b].Take) })
		takes[i] = make([]uint64, len(hops[i]))
		for k, x := range byTake[i] {
			takes[i][k] = hops[i][x].Take
		}
	}
	used := make([][]bool, n)
	for i := range n {
		used[i] = make([]bool, len(hops[i]))
	}
	mid := (n + 1) / 2 // hops [0, mid) go in, [mid, n) come back
	// The ways in.
	var ins [][]int
	for k, m0 := range hops[0] {
		way := []int{k}
		prev := m0
		for i := 1; i < mid; i++ {
			limit := uint64(math.MaxUint64)
			if j, _ := slices.BinarySearch(takes[i-1], prev.Take+1); j < len(takes[i-1]) {
				limit = takes[i-1][j]
			}
			j, _ := slices.BinarySearchFunc(hops[i], prev.Take, func(m Message, t uint64) int { return cmp.Compare(m.Put, t) })
			for j < len(hops[i]) && used[i][j] {
				j++
			}
			if j == len(hops[i]) || hops[i][j].Put >= limit {
				break
			}
			way = append(way, j)
			prev = hops[i][j]
		}
		if len(way) == mid {
			for i, j := range way {
				used[i][j] = true
			}
			ins = append(ins, way)
		}
	}
	// The ways back, from the last hop backwards.
	var outs [][]int
	for k := range hops[n-1] {
		way := []int{k}
		cur, at := hops[n-1][k], k
		for i := n - 2; i >= mid; i-- {
			// The message of hop i taken last before cur was put, and
			// after the put before cur on cur's hop (else it caused
			// that one).
			t, _ := slices.BinarySearch(takes[i], cur.Put+1)
			if t == 0 || used[i][byTake[i][t-1]] {
				break
			}
			j := byTake[i][t-1]
			if at > 0 && hops[i][j].Take < hops[i+1][at-1].Put {
				break
			}
			way = append(way, j)
			cur, at = hops[i][j], j
		}
		if len(way) == n-mid {
			slices.Reverse(way)
			for x, j := range way {
				used[mid+x][j] = true
			}
			outs = append(outs, way)
		}
	}
	slices.SortFunc(outs, func(a, b []int) int { return cmp.Compare(hops[mid][a[0]].Put, hops[mid][b[0]].Put) })
	// Join them: each way back with the latest way in of its flow not yet
	// joined that arrived before it left (the turning point answers what
	// it took last).
	slices.SortFunc(ins, func(a, b []int) int {
		return cmp.Compare(hops[mid-1][a[mid-1]].Take, hops[mid-1][b[mid-1]].Take)
	})
	type flow struct {
		ins      []int    // indices in ins, by arrival
		arrivals []uint64 // their arrivals at the turning point
		left     uint64   // when the flow's last way back left the turning point
		ends     []uint64 // a client's flow: the takes of its every answer, in order
	}
	flows := map[uint32]*flow{}
	flowOf := func(key uint32) *flow {
		f := flows[key]
		if f == nil {
			f = &flow{}
			flows[key] = f
		}
		return f
	}
	for x, in := range ins {
		f := flowOf(flowKey(hops[0][in[0]], true))
		f.ins, f.arrivals = append(f.ins, x), append(f.arrivals, hops[mid-1][in[mid-1]].Take)
	}
	for _, x := range byTake[n-1] {
		if k := flowKey(hops[n-1][x], false); k != 0 {
			f := flowOf(k)
			f.ends = append(f.ends, hops[n-1][x].Take)
		}
	}
	joined := make([]bool, len(ins))
	var chains [][]Message
	for _, out := range outs {
		put, last := hops[mid][out[0]].Put, hops[n-1][out[len(out)-1]]
		f := flowOf(flowKey(last, false))
		y, _ := slices.BinarySearch(f.arrivals, put+1)
		for y--; y >= 0 && joined[f.ins[y]]; y-- {
		}
		prev := f.left
		f.left = put
		if y < 0 || f.arrivals[y] < prev {
			continue // nothing came in since the last answer left
		}
		if f.ends != nil {
			// A client sends its next request once answered: the way
			// in must have left the client after the answer before.
			e, _ := slices.BinarySearch(f.ends, last.Take)
			if e > 0 && hops[0][ins[f.ins[y]][0]].Put < f.ends[e-1] {
				continue
			}
		}
		x := f.ins[y]
		joined[x] = true
		c := make([]Message, 0, n)
		for i, j := range ins[x] {
			c = append(c, hops[i][j])
		}
		for y, j := range out {
			c = append(c, hops[mid+y][j])
		}
		chains = append(chains, c)
	}
	slices.SortFunc(chains, func(a, b []Message) int { return cmp.Compare(a[0].Put, b[0].Put) })
	return chains, len(hops[0])
}

// flowKey is the flow a request's first message (in) or last message (not
// in) names: a message from or to outside the simulated host (the client,
// trace.Outside) is named by the client's port, so that a way back joins
// only a way in of its own connection; every other request is in flow 0.
// The identifiers of messages between processes (ring numbers, hashes)
// name no flow.
func flowKey(m Message, in bool) uint32 {
	switch {
	case in && m.From == trace.Outside, !in && m.To == trace.Outside:
		return m.ID + 1
	}
	return 0
}

// Marked returns the span the process named process marked as timed: its
// first trace.MarkTimed and the first trace.MarkUntimed after it.
func Marked(snaps []trace.Snapshot, process string) (from, to uint64, ok bool) {
	for _, s := range snaps {
		if s.Process != process {
			continue
		}
		for _, e := range s.Events {
			switch {
			case e.Kind != trace.Mark:
			case e.ID == trace.MarkTimed && from == 0:
				from = e.TSC
			case e.ID == trace.MarkUntimed && from != 0:
				return from, e.TSC, true
			}
		}
	}
	return 0, 0, false
}

// clientTimes is the count and mean of every request the client's stamps
// show answered, on a path from and back to the client: each take of the
// last hop with the latest put of its connection on the first hop after
// the connection's take before.
func clientTimes(msgs []Message, names map[int]string, path []string, us func(uint64) float64) (int, float64) {
	n := len(path) - 1
	if n < 1 {
		return 0, 0
	}
	puts, takes := map[uint32][]uint64{}, map[uint32][]uint64{}
	for _, m := range msgs {
		switch {
		case m.From == trace.Outside && names[m.To] == path[1]:
			puts[m.ID] = append(puts[m.ID], m.Put)
		case m.To == trace.Outside && names[m.From] == path[n-1]:
			takes[m.ID] = append(takes[m.ID], m.Take)
		}
	}
	var t []float64
	for id, ts := range takes {
		ps := puts[id]
		slices.Sort(ps)
		slices.Sort(ts)
		for i, at := range ts {
			j, _ := slices.BinarySearch(ps, at)
			if j == 0 || (i > 0 && ps[j-1] < ts[i-1]) {
				continue // its request's put is not in the window
			}
			t = append(t, us(at-ps[j-1]))
		}
	}
	return len(t), mean(t)
}

// ownTime is the row of the first process's own time in a closed loop:
// from each take of the last hop to its next put on the first hop.
func ownTime(msgs []Message, names map[int]string, path []string, us func(uint64) float64) Hop {
	p0, p1, pl := path[0], path[1], path[len(path)-2]
	var takes, puts []uint64
	for _, m := range msgs {
		switch {
		case slices.Contains(Skipped, m.Type):
		case names[m.From] == pl && names[m.To] == p0:
			takes = append(takes, m.Take)
		case names[m.From] == p0 && names[m.To] == p1:
			puts = append(puts, m.Put)
		}
	}
	slices.Sort(takes)
	slices.Sort(puts)
	var s []float64
	for i, t := range takes {
		j, _ := slices.BinarySearch(puts, t)
		if j == len(puts) || (i+1 < len(takes) && puts[j] > takes[i+1]) {
			continue // no put before the next answer: not a closed loop there
		}
		s = append(s, us(puts[j]-t))
	}
	return Hop{Hop: p0 + " (own time)", From: p0, To: p0, Requests: len(s), ServiceUS: quantile(s, 0.5), TotalUS: quantile(s, 0.5),
		ServiceP99US: quantile(s, 0.99), TotalP99US: quantile(s, 0.99), TotalMeanUS: mean(s)}
}

// judge fills Within10 and Check.
func (b *Breakdown) judge() {
	top := -1
	for i, h := range b.Hops {
		if top < 0 || h.TotalMeanUS > b.Hops[top].TotalMeanUS {
			top = i
		}
	}
	holds := "no traced hop"
	if top >= 0 {
		h := b.Hops[top]
		holds = fmt.Sprintf("%s holds the most (mean %.1f us: queued %.1f, wake-up %.1f, service %.1f median)",
			h.Hop, h.TotalMeanUS, h.QueuedUS, h.WakeUS, h.ServiceUS)
	}
	if b.MeasuredMeanUS <= 0 {
		b.Check = fmt.Sprintf("the hops add up to %.1f us (%s); no measured figure to compare; %s", b.SumUS, b.basisText(), holds)
		return
	}
	ratio := b.SumUS / b.MeasuredMeanUS
	b.Within10 = math.Abs(ratio-1) <= 0.10
	verdict := "within 10%"
	if !b.Within10 {
		verdict = "NOT within 10%"
	}
	b.Check = fmt.Sprintf("the hops add up to %.1f us (%s) against a measured %.1f us (%.0f%%): %s; %s",
		b.SumUS, b.basisText(), b.MeasuredMeanUS, 100*ratio, verdict, holds)
	if ratio < 0.9 {
		b.Check += fmt.Sprintf("; %.1f us of the mean is not in the hops: outside the traced path, or in requests not followed",
			b.MeasuredMeanUS-b.SumUS)
	}
}

// basisText says what SumUS is.
func (b *Breakdown) basisText() string {
	switch b.Basis {
	case "median":
		return "the followed requests' median"
	case "batch":
		return "the followed calls timed as the prober does: the median over batches of the mean from one call to the next"
	}
	return "the sum of the hops' means"
}

// batchMedian is the median over batches of n consecutive calls of each
// batch's mean time from a call's first put to the next call's.
func batchMedian(cs [][]Message, n int, us func(uint64) float64) float64 {
	var means []float64
	for i := 0; i+n < len(cs); i += n {
		means = append(means, us(cs[i+n][0].Put-cs[i][0].Put)/float64(n))
	}
	// The middle one, or the mean of the middle two, as the prober takes it.
	slices.Sort(means)
	switch k := len(means); {
	case k == 0:
		return 0
	case k%2 == 0:
		return (means[k/2-1] + means[k/2]) / 2
	default:
		return means[k/2]
	}
}

// Table formats the breakdown as a Markdown table with the check below.
func (b Breakdown) Table() string {
	var sb strings.Builder
	sb.WriteString("| hop | requests | queued us (p99) | wake-up us (p99) | service us (p99) | total us (p99) | total mean us |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
	for _, h := range b.Hops {
		fmt.Fprintf(&sb, "| %s | %d | %.1f (%.1f) | %.1f (%.1f) | %.1f (%.1f) | %.1f (%.1f) | %.1f |\n", h.Hop, h.Requests,
			h.QueuedUS, h.QueuedP99US, h.WakeUS, h.WakeP99US, h.ServiceUS, h.ServiceP99US, h.TotalUS, h.TotalP99US, h.TotalMeanUS)
	}
	fmt.Fprintf(&sb, "| sum | | | | | %.1f (medians) | %.1f |\n\n%d of %d requests followed across the whole path; their median %.1f us. %s\n",
		b.SumMedianUS, b.SumMeanUS, b.Requests, b.Started, b.RequestMedianUS, b.Check)
	if b.ClientRequests > 0 {
		fmt.Fprintf(&sb, "\nThe client's own stamps: %d requests answered, mean %.1f us (followed or not; the followed: %.1f us).\n",
			b.ClientRequests, b.ClientMeanUS, b.SumMeanUS)
	}
	return sb.String()
}

// quantile is the q-quantile of v (nearest rank), 0 for none.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var t float64
	for _, x := range v {
		t += x
	}
	return t / float64(len(v))
}

package bench

import (
	"fmt"
	"strings"

	"github.com/newtsim/newtsim/internal/stats"
	"github.com/newtsim/newtsim/sim/machine"
)

// Confidence is the confidence of the intervals --repeat reports.
const Confidence = 0.95

// MergeHTTP makes one report of N repetitions of the same HTTP matrix
// (`--repeat N`: the whole matrix measured N times over, so that each
// cell's repetitions are spread over the run rather than back to back).
// Each row's requests per second, mean, p50, p99 and system calls per
// request are the medians of its repetitions, every repetition's figure is kept
// (req_per_s_samples, p50_us_samples, p99_us_samples) with the least and
// greatest requests per second and, from 6 repetitions, a 95% interval of
// the median (order statistics: no assumption about the noise); errors and
// retransmits are summed. The checks are judged again on the merged rows; each
// repetition's notes are kept, numbered.
func MergeHTTP(reps []*HTTPReport) (*HTTPReport, error) {
	if len(reps) == 0 {
		return nil, fmt.Errorf("bench http: no repetition to merge")
	}
	if len(reps) == 1 {
		return reps[0], nil
	}
	m := *reps[0]
	m.Rows, m.Cells, m.Checks, m.Notes = nil, nil, nil, nil
	for _, row := range reps[0].Rows {
		var same []HTTPRow
		for i, r := range reps {
			x := r.row(row.Workload, row.Server)
			if x == nil {
				return nil, fmt.Errorf("bench http: repetition %d has no %s on %s", i+1, row.Workload, row.Server)
			}
			same = append(same, *x)
		}
		m.Rows = append(m.Rows, mergeRow(same))
	}
	for i, r := range reps {
		m.Cells = append(m.Cells, r.Cells...)
		for _, n := range r.Notes {
			m.Notes = append(m.Notes, fmt.Sprintf("repetition %d of %d: %s", i+1, len(reps), n))
		}
	}
	m.Notes = append([]string{fmt.Sprintf("every cell measured %d times, in %d passes over the matrix; req/s, p50, p99, "+
		"system calls, CPU time and context switches per request are medians, with req/s's least and greatest, errors and retransmits summed", len(reps), len(reps))}, m.Notes...)
	var procNS, procCPU, threadNS, threadCPU, procSw []float64
	for _, r := range reps {
		if h := r.SwitchHop; h != nil {
			procNS, procCPU, procSw = append(procNS, h.ProcessNS), append(procCPU, h.ProcessCPUNS), append(procSw, h.ProcessSwitches)
			threadNS, threadCPU = append(threadNS, h.ThreadNS), append(threadCPU, h.ThreadCPUNS)
		}
	}
	if len(procNS) > 0 {
		h := *reps[0].SwitchHop
		h.ProcessNS, h.ProcessCPUNS, h.ProcessSwitches = stats.Median(procNS), stats.Median(procCPU), stats.Median(procSw)
		h.ThreadNS, h.ThreadCPUNS = stats.Median(threadNS), stats.Median(threadCPU)
		m.SwitchHop = &h
		m.setSwitchFloors()
	}
	m.judge()
	return &m, nil
}

// mergeRow merges one cell's repetitions.
func mergeRow(same []HTTPRow) HTTPRow {
	r := same[0]
	for _, x := range same {
		if x.NotInstalled != "" {
			return x
		}
	}
	var rps, mean, p50, p99, sys, cpu, sw []float64
	procCPU, procSw := map[string][]float64{}, map[string][]float64{}
	r.Errors, r.Retransmits = 0, nil
	for _, x := range same {
		if x.Retransmits != nil {
			sum := *x.Retransmits
			if r.Retransmits != nil {
				sum += *r.Retransmits
			}
			r.Retransmits = &sum
		}
		mean = append(mean, x.MeanUS)
		rps = append(rps, x.ReqPerS)
		p50 = append(p50, x.P50US)
		p99 = append(p99, x.P99US)
		sys = append(sys, x.LinuxSyscallsPerRequest)
		cpu = append(cpu, x.ServerCPUUSPerRequest)
		sw = append(sw, x.SwitchesPerRequest)
		for _, p := range x.Processes {
			procCPU[p.Name] = append(procCPU[p.Name], p.CPUUSPerRequest)
			procSw[p.Name] = append(procSw[p.Name], p.SwitchesPerRequest)
		}
		r.Errors += x.Errors
	}
	s := stats.Summarize(rps, Confidence)
	r.ReqPerS, r.MinReqPerS, r.MaxReqPerS = s.Median, s.Min, s.Max
	if s.HasCI {
		r.ReqPerSCI95 = []float64{s.Lo, s.Hi}
	}
	r.ReqPerSSamples, r.P50USSamples, r.P99USSamples = rps, p50, p99
	r.MeanUS, r.P50US, r.P99US = stats.Median(mean), stats.Median(p50), stats.Median(p99)
	r.LinuxSyscallsPerRequest = stats.Median(sys)
	r.ServerCPUUSPerRequest, r.SwitchesPerRequest = stats.Median(cpu), stats.Median(sw)
	r.Processes = nil
	for _, p := range same[0].Processes {
		r.Processes = append(r.Processes, ProcessCost{Name: p.Name, CPUUSPerRequest: stats.Median(procCPU[p.Name]),
			SwitchesPerRequest: stats.Median(procSw[p.Name])})
	}
	return r
}

// reqCell is a row's requests per second as the table prints it: with
// its spread over repetitions, and the interval where there is one.
func (row HTTPRow) reqCell() string {
	if len(row.ReqPerSSamples) < 2 {
		return fmt.Sprintf("%.0f", row.ReqPerS)
	}
	s := fmt.Sprintf("%.0f (%.0f-%.0f", row.ReqPerS, row.MinReqPerS, row.MaxReqPerS)
	if len(row.ReqPerSCI95) == 2 {
		s += fmt.Sprintf("; 95%% %.0f-%.0f", row.ReqPerSCI95[0], row.ReqPerSCI95[1])
	}
	return s + fmt.Sprintf(", n=%d)", len(row.ReqPerSSamples))
}

// Caption is what a chart says of where its figures come from: the
// machine, the commit and the command.
func Caption(m machine.Info, command string) string {
	s := fmt.Sprintf("%s, %d CPUs, host %s", m.CPUModel, m.CPUs, m.Hostname)
	if m.Commit != "" {
		s += ", newtsim " + m.Commit[:min(len(m.Commit), 12)]
		if strings.HasSuffix(m.Commit, "-dirty") {
			s += "-dirty"
		}
	}
	if command != "" {
		s += "; " + command
	}
	return s
}

package cpu

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// OnlinePath is where Linux lists the online CPUs.
const OnlinePath = "/sys/devices/system/cpu/online"

// Online returns the ids of the machine's online CPUs, read from
// /sys/devices/system/cpu/online. Unlike runtime.NumCPU it is not limited
// by the calling process's affinity mask.
func Online() ([]int, error) {
	b, err := os.ReadFile(OnlinePath)
	if err != nil {
		return nil, fmt.Errorf("cpu: online CPUs: %w", err)
	}
	cpus, err := ParseList(string(b))
	if err != nil {
		return nil, fmt.Errorf("cpu: online CPUs in %s: %w", OnlinePath, err)
	}
	return cpus, nil
}

// ParseList parses a CPU list in the kernel's format: comma-separated
// ids and inclusive ranges, such as "0-1", "0,2-3" or "4". Surrounding
// white space is ignored. The ids come back sorted, without duplicates.
func ParseList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty CPU list")
	}
	var cpus []int
	for item := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		first, err := parseCPU(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = parseCPU(hi); err != nil {
				return nil, fmt.Errorf("CPU list %q: %w", s, err)
			}
			if last < first {
				return nil, fmt.Errorf("CPU list %q: range %s runs backwards", s, item)
			}
		}
		for c := first; c <= last; c++ {
			cpus = append(cpus, c)
		}
	}
	slices.Sort(cpus)
	return slices.Compact(cpus), nil
}

// parseCPU parses one CPU id: decimal digits only, below Max.
func parseCPU(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing CPU id")
	}
	if strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("CPU id %q is not a number", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n >= Max {
		return 0, fmt.Errorf("CPU id %s is out of range 0-%d", s, Max-1)
	}
	return n, nil
}

// FormatList writes cpus in the format ParseList reads, joining runs
// of consecutive ids into ranges: [0 1 2 5] is "0-2,5". It keeps the order
// it is given; for sorted ids without duplicates, ParseList gives back
// the same slice.
func FormatList(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

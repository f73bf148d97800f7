package link

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Params describe one direction of a wire. The zero Params is a perfect
// wire: unlimited bandwidth, no delay, no impairment.
type Params struct {
	// Bandwidth is the wire's rate in bits per second: a frame of n
	// bytes takes 8n/Bandwidth seconds to send, after the frames queued
	// before it. 0 is unlimited; otherwise at least MinBandwidth.
	Bandwidth int64
	// Delay is the one-way propagation delay, added to every frame once
	// it has been sent.
	Delay time.Duration
	// Loss, Duplicate, Reorder and Corrupt are probabilities per frame,
	// from 0 to 1. A lost frame is never delivered; a duplicated one is
	// delivered twice; a reordered copy arrives ReorderDelay late, so
	// that frames sent after it overtake it; a corrupted copy has one bit
	// flipped. Each copy of a duplicated frame is reordered and corrupted
	// independently.
	Loss, Duplicate, Reorder, Corrupt float64
	// ReorderDelay is the extra delay of a reordered copy. 0 means 2*Delay,
	// or 1ms when Delay is 0.
	ReorderDelay time.Duration
	// QueueBytes bounds the bytes waiting for the wire, counting the rest
	// of the frame being sent and the new frame itself; a frame that does
	// not fit is dropped (Stats.QueueFull). 0 means DefaultQueueBytes. It
	// has no effect at unlimited bandwidth, where nothing waits.
	QueueBytes int
	// Seed seeds the random choices. The same Params and the same calls
	// give the same frames at the same times.
	Seed uint64
}

// Bounds and defaults of Params.
const (
	MinBandwidth      = 1000    // bits per second: 1 Kbit/s
	DefaultQueueBytes = 1 << 20 // 1 MiB
	MaxQueueBytes     = 1 << 40 // 1 TiB
)

// Validate reports the first field of p that is out of range.
func (p Params) Validate() error {
	switch {
	case p.Bandwidth < 0 || (p.Bandwidth > 0 && p.Bandwidth < MinBandwidth):
		return fmt.Errorf("link: bandwidth %d bit/s: want 0 (unlimited) or at least %d", p.Bandwidth, MinBandwidth)
	case p.Delay < 0:
		return fmt.Errorf("link: delay %v is negative", p.Delay)
	case p.ReorderDelay < 0:
		return fmt.Errorf("link: reorder delay %v is negative", p.ReorderDelay)
	case p.QueueBytes < 0 || p.QueueBytes > MaxQueueBytes:
		return fmt.Errorf("link: queue of %d bytes: want 0 (default) to %d", p.QueueBytes, MaxQueueBytes)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"loss", p.Loss}, {"dup", p.Duplicate}, {"reorder", p.Reorder}, {"corrupt", p.Corrupt}} {
		if !(f.v >= 0 && f.v <= 1) { // also refuses NaN
			return fmt.Errorf("link: %s probability %v: want 0 to 1", f.name, f.v)
		}
	}
	return nil
}

// withDefaults returns p with its zero defaults filled in.
func (p Params) withDefaults() Params {
	if p.ReorderDelay == 0 {
		p.ReorderDelay = time.Millisecond
		if p.Delay > 0 {
			p.ReorderDelay = 2 * p.Delay
			if p.ReorderDelay < p.Delay { // overflow
				p.ReorderDelay = math.MaxInt64
			}
		}
	}
	if p.QueueBytes == 0 {
		p.QueueBytes = DefaultQueueBytes
	}
	return p
}

// The keys of the textual form, in the order String writes them.
var keys = []string{"bw", "delay", "loss", "dup", "reorder", "reorder-delay", "corrupt", "queue", "seed"}

// ParseParams reads Params from their textual form, a comma-separated list
// of key=value items, for example
//
//	bw=100Mbit,delay=1ms,loss=0.05,dup=0.01,reorder=0.01,corrupt=0.001,queue=1MiB,seed=7
//
// Keys: bw (a number of bits per second, with an optional unit bit, Kbit,
// Mbit, Gbit or Tbit, powers of 1000, case ignored; 0 for unlimited),
// delay and reorder-delay (Go durations: 1ms, 250us, 1.5s), loss, dup,
// reorder and corrupt (probabilities: 0.05 or 5%), queue (bytes, with an
// optional unit B, KB, MB, GB or KiB, MiB, GiB, TiB, case ignored) and seed
// (an unsigned integer; 0x, 0o and 0b prefixes allowed). Numbers with
// units may have a fraction (1.5Mbit) if the result is whole. Each key
// may appear once; absent keys are zero, which for reorder-delay and queue
// means their defaults. The empty string is the zero Params. Blanks around
// items are ignored. The result is validated.
func ParseParams(s string) (Params, error) {
	var p Params
	if strings.TrimSpace(s) == "" {
		return p, nil
	}
	seen := make(map[string]bool)
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return Params{}, fmt.Errorf("link: params %q: item %q is not key=value", s, item)
		}
		if seen[k] {
			return Params{}, fmt.Errorf("link: params %q: %s given twice", s, k)
		}
		seen[k] = true
		var err error
		switch k {
		case "bw":
			var n uint64
			n, err = parseQuantity(v, bitUnits)
			if err == nil && n > math.MaxInt64 {
				err = errors.New("out of range")
			}
			p.Bandwidth = int64(n)
		case "delay":
			p.Delay, err = parseDuration(v)
		case "reorder-delay":
			p.ReorderDelay, err = parseDuration(v)
		case "loss":
			p.Loss, err = parseProb(v)
		case "dup":
			p.Duplicate, err = parseProb(v)
		case "reorder":
			p.Reorder, err = parseProb(v)
		case "corrupt":
			p.Corrupt, err = parseProb(v)
		case "queue":
			var n uint64
			n, err = parseQuantity(v, byteUnits)
			if err == nil && n > MaxQueueBytes {
				err = fmt.Errorf("more than %d bytes", MaxQueueBytes)
			}
			p.QueueBytes = int(n)
		case "seed":
			p.Seed, err = strconv.ParseUint(v, 0, 64)
		default:
			return Params{}, fmt.Errorf("link: params %q: unknown key %q (known: %s)", s, k, strings.Join(keys, ", "))
		}
		if err != nil {
			return Params{}, fmt.Errorf("link: params %q: %s %q: %w", s, k, v, err)
		}
	}
	if err := p.Validate(); err != nil {
		return Params{}, fmt.Errorf("link: params %q: %w", s, err)
	}
	return p, nil
}

// String returns p in the form ParseParams reads, giving back the same
// Params: the non-zero fields in a fixed order, each in its largest exact
// unit. The zero Params gives "".
func (p Params) String() string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	prob := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	if p.Bandwidth != 0 {
		add("bw", formatQuantity(uint64(p.Bandwidth), bitUnits))
	}
	if p.Delay != 0 {
		add("delay", p.Delay.String())
	}
	if p.Loss != 0 {
		add("loss", prob(p.Loss))
	}
	if p.Duplicate != 0 {
		add("dup", prob(p.Duplicate))
	}
	if p.Reorder != 0 {
		add("reorder", prob(p.Reorder))
	}
	if p.ReorderDelay != 0 {
		add("reorder-delay", p.ReorderDelay.String())
	}
	if p.Corrupt != 0 {
		add("corrupt", prob(p.Corrupt))
	}
	if p.QueueBytes != 0 {
		add("queue", formatQuantity(uint64(p.QueueBytes), byteUnits))
	}
	if p.Seed != 0 {
		add("seed", strconv.FormatUint(p.Seed, 10))
	}
	return b.String()
}

// A unit is a suffix and what it multiplies by.
type unit struct {
	name string
	mul  uint64
}

// Units of bandwidth and of queue size. formatQuantity uses the ones
// listed before the first blank name, largest first; parseQuantity all.
var (
	bitUnits = []unit{
		{"Tbit", 1e12}, {"Gbit", 1e9}, {"Mbit", 1e6}, {"Kbit", 1e3}, {"bit", 1},
		{"", 1}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"K", 1e3},
	}
	byteUnits = []unit{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1},
		{"", 1}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	}
)

// formatQuantity writes n in the largest unit that divides it.
func formatQuantity(n uint64, units []unit) string {
	for _, u := range units {
		if u.name == "" {
			break
		}
		if n%u.mul == 0 && (n != 0 || u.mul == 1) {
			return strconv.FormatUint(n/u.mul, 10) + u.name
		}
	}
	return strconv.FormatUint(n, 10) // not reached: the last named unit is 1
}

// parseQuantity reads a decimal number with an optional unit from units,
// exactly: the result must be a whole number.
func parseQuantity(s string, units []unit) (uint64, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, suffix := s[:i], strings.TrimSpace(s[i:])
	for _, u := range units {
		if strings.EqualFold(suffix, u.name) {
			return parseDecimal(num, u.mul)
		}
	}
	var names []string
	for _, u := range units {
		if u.name != "" {
			names = append(names, u.name)
		}
	}
	return 0, fmt.Errorf("unknown unit %q (known: %s)", suffix, strings.Join(names, ", "))
}

// parseDecimal returns num*mul for a decimal num (digits with at most one
// point), exactly, failing when the result is not whole or overflows.
func parseDecimal(num string, mul uint64) (uint64, error) {
	whole, frac, _ := strings.Cut(num, ".")
	frac = strings.TrimRight(frac, "0")
	if whole == "" && frac == "" && !strings.Contains(num, "0") {
		return 0, errors.New("no number")
	}
	if strings.ContainsRune(frac, '.') {
		return 0, errors.New("two decimal points")
	}
	if len(frac) > 19 {
		return 0, errors.New("too many decimal places")
	}
	var m uint64
	for _, c := range whole + frac {
		hi, lo := bits.Mul64(m, 10)
		lo, carry := bits.Add64(lo, uint64(c-'0'), 0)
		if hi != 0 || carry != 0 {
			return 0, errors.New("out of range")
		}
		m = lo
	}
	hi, lo := bits.Mul64(m, mul)
	div := uint64(1)
	for range len(frac) {
		div *= 10
	}
	if hi >= div {
		return 0, errors.New("out of range")
	}
	q, r := bits.Div64(hi, lo, div)
	if r != 0 {
		return 0, errors.New("not a whole number")
	}
	return q, nil
}

// parseDuration reads a non-negative Go duration.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, errors.New("negative")
	}
	return d, nil
}

// parseProb reads a probability, a number from 0 to 1 or a percentage.
func parseProb(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, err
	}
	if pct {
		f /= 100
	}
	if f == 0 {
		f = 0 // not -0
	}
	if !(f >= 0 && f <= 1) {
		return 0, errors.New("not between 0 and 1")
	}
	return f, nil
}

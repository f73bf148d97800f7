package pf

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// Filter holds the ruleset in force, a hit counter for each of its rules
// and for the default, and the filter's statistics.
//
// One goroutine, the server loop, calls Check and Reload. Hits and Stats
// read atomic counters and may be called from any goroutine at the same
// time, by a metrics collector say. Check and Reload are also safe to call
// concurrently, though the filter is meant to have one evaluator.
//
// The zero Filter has no rules: it allows everything.
type Filter struct {
	t atomic.Pointer[table]

	allowed, dropped atomic.Uint64
	malformed        atomic.Uint64
	notIPv4          atomic.Uint64
	reloads          atomic.Uint64
	failedReloads    atomic.Uint64
}

// table is one ruleset in force with its counters. Reload replaces the
// whole table, so rules and their counters always go together.
type table struct {
	rs    *Ruleset
	rules []compiled
	// hits counts per rule of rs, by index; the last counts the packets
	// no rule matched.
	hits []atomic.Uint64
}

// newTable makes the table for rs, which it keeps.
func newTable(rs *Ruleset) *table {
	return &table{
		rs:    rs,
		rules: compileAll(rs),
		hits:  make([]atomic.Uint64, len(rs.Rules)+1),
	}
}

// emptyRules is the ruleset of a zero Filter.
var emptyRules = &Ruleset{}

// NewFilter returns a Filter with a copy of rs in force. A nil rs is no
// rules: everything is allowed.
func NewFilter(rs *Ruleset) *Filter {
	f := &Filter{}
	f.t.Store(newTable(rs.Clone()))
	return f
}

// table returns the table in force, and installs an empty one in a zero
// Filter.
func (f *Filter) table() *table {
	if t := f.t.Load(); t != nil {
		return t
	}
	f.t.CompareAndSwap(nil, newTable(emptyRules))
	return f.t.Load()
}

// Check returns what to do with p: the action of the first rule it
// matches, or Allow. It counts a hit on that rule, or on the default.
func (f *Filter) Check(p Packet) Action {
	t := f.table()
	k := keyOf(p)
	action, hit := Allow, len(t.hits)-1
	if c := first(t.rules, k); c != nil {
		action, hit = c.action, c.index
	}
	t.hits[hit].Add(1)
	if action == Allow {
		f.allowed.Add(1)
	} else {
		f.dropped.Add(1)
	}
	return action
}

// CheckIPv4 decodes the IPv4 packet b and checks it as Check does. A
// malformed packet is dropped and counted, not checked: CheckIPv4 then
// returns Drop with Decode's error.
func (f *Filter) CheckIPv4(dir Direction, b []byte) (Action, error) {
	p, err := Decode(dir, b)
	if err != nil {
		f.malformed.Add(1)
		return Drop, err
	}
	return f.Check(p), nil
}

// CheckFrame decodes the Ethernet II frame (without its FCS) and checks
// the IPv4 packet in it as Check does. A malformed frame or packet is
// dropped and counted as CheckIPv4's are. A frame that carries no IPv4
// (ARP, say) is allowed and counted, not checked, and the error wrapping
// ErrNotIPv4 says so: pf filters IPv4 only, and ip drops the types it
// does not know.
func (f *Filter) CheckFrame(dir Direction, frame []byte) (Action, error) {
	p, err := DecodeFrame(dir, frame)
	switch {
	case err == nil:
		return f.Check(p), nil
	case errors.Is(err, ErrNotIPv4):
		f.notIPv4.Add(1)
		return Allow, err
	}
	f.malformed.Add(1)
	return Drop, err
}

// Reload parses a new rules file from r, as Parse does, and puts it in
// force with its counters at zero. If the file is refused the rules in
// force stay, with their counters, and the failed reload is counted; the
// error says why and wraps Parse's *ParseError.
func (f *Filter) Reload(r io.Reader, name string) error {
	rs, err := Parse(r, name)
	if err != nil {
		f.failedReloads.Add(1)
		old := f.table().rs
		return fmt.Errorf("pf: reload refused, the %d rules from %q stay in force: %w",
			len(old.Rules), old.Source, err)
	}
	f.t.Store(newTable(rs))
	f.reloads.Add(1)
	return nil
}

// Ruleset returns a copy of the ruleset in force.
func (f *Filter) Ruleset() *Ruleset {
	return f.table().rs.Clone()
}

// RuleHits is the hit count of one rule in force, or of the default.
type RuleHits struct {
	// Index is the rule's index in the Ruleset, or -1 for the default.
	Index int
	// Line and Text are the rule's, as in Rule; the default has Line 0
	// and Text "default allow".
	Line int
	Text string
	// Action is the rule's action; Allow for the default.
	Action Action
	// Hits counts the packets the rule decided since it was put in
	// force.
	Hits uint64
}

// DefaultText is the Text of the default's RuleHits.
const DefaultText = "default allow"

// Hits returns the hit count of every rule in force, in order, and last
// that of the default (Index -1): the packets no rule matched.
func (f *Filter) Hits() []RuleHits {
	t := f.table()
	hs := make([]RuleHits, 0, len(t.hits))
	for i, r := range t.rs.Rules {
		hs = append(hs, RuleHits{
			Index:  i,
			Line:   r.Line,
			Text:   r.Text,
			Action: r.Action,
			Hits:   t.hits[i].Load(),
		})
	}
	return append(hs, RuleHits{
		Index:  -1,
		Text:   DefaultText,
		Action: Allow,
		Hits:   t.hits[len(t.hits)-1].Load(),
	})
}

// Stats are a Filter's counters since it was made. They never go down:
// a reload resets the per-rule hits, not these.
type Stats struct {
	// Checks counts the packets judged by the rules: Allowed plus
	// Dropped.
	Checks uint64
	// Allowed and Dropped count the packets judged by the rules (or the
	// default) by their verdict.
	Allowed, Dropped uint64
	// Malformed counts the packets and frames CheckIPv4 and CheckFrame
	// dropped without judging them, because they did not decode.
	Malformed uint64
	// NotIPv4 counts the frames CheckFrame allowed because they carry
	// no IPv4.
	NotIPv4 uint64
	// Reloads counts the reloads that put new rules in force, and
	// FailedReloads those refused.
	Reloads, FailedReloads uint64
	// Rules is the number of rules in force.
	Rules int
}

// Stats returns the filter's counters.
func (f *Filter) Stats() Stats {
	s := Stats{
		Allowed:       f.allowed.Load(),
		Dropped:       f.dropped.Load(),
		Malformed:     f.malformed.Load(),
		NotIPv4:       f.notIPv4.Load(),
		Reloads:       f.reloads.Load(),
		FailedReloads: f.failedReloads.Load(),
		Rules:         len(f.table().rs.Rules),
	}
	s.Checks = s.Allowed + s.Dropped
	return s
}

package pf_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/newtsim/newtsim/servers/pf"
	"github.com/newtsim/newtsim/servers/proto"
)

var (
	telnet = pkt(pf.In, proto.TCP, "198.18.0.1", 40000, "198.18.0.2", 23)
	dns    = pkt(pf.Out, proto.UDP, "198.18.0.2", 5353, "192.0.2.53", 53)
	ping   = pkt(pf.In, proto.ICMP, "198.18.0.1", 0, "198.18.0.2", 0)
)

const twoRules = "drop in proto tcp to any port 23\n\nallow out proto udp to any port 53\n"

// hits returns the Hits counts alone.
func hits(f *pf.Filter) []uint64 {
	var n []uint64
	for _, h := range f.Hits() {
		n = append(n, h.Hits)
	}
	return n
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFilterCheckCounts(t *testing.T) {
	f := pf.NewFilter(mustParse(t, twoRules))
	for _, c := range []struct {
		p    pf.Packet
		want pf.Action
	}{{telnet, pf.Drop}, {telnet, pf.Drop}, {dns, pf.Allow}, {ping, pf.Allow}, {ping, pf.Allow}, {ping, pf.Allow}} {
		if got := f.Check(c.p); got != c.want {
			t.Fatalf("Check(%+v) = %v, want %v", c.p, got, c.want)
		}
	}
	want := []pf.RuleHits{
		{Index: 0, Line: 1, Text: "drop in proto tcp to any port 23", Action: pf.Drop, Hits: 2},
		{Index: 1, Line: 3, Text: "allow out proto udp to any port 53", Action: pf.Allow, Hits: 1},
		{Index: -1, Line: 0, Text: pf.DefaultText, Action: pf.Allow, Hits: 3},
	}
	if got := f.Hits(); !equal(got, want) {
		t.Errorf("Hits:\n got %+v\nwant %+v", got, want)
	}
	wantStats := pf.Stats{Checks: 6, Allowed: 4, Dropped: 2, Rules: 2}
	if got := f.Stats(); got != wantStats {
		t.Errorf("Stats = %+v, want %+v", got, wantStats)
	}
}

func TestFilterReload(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		err      string // "" when the reload succeeds
		rules    int    // rules in force after it
		hits     []uint64
		verdict  pf.Action // of telnet after it
		reloads  uint64
		failures uint64
	}{
		{
			name:  "good file replaces the rules and zeroes the hits",
			text:  "allow in proto tcp to any port 23\ndrop in proto icmp\ndrop out\n",
			rules: 3, hits: []uint64{0, 0, 0, 0}, verdict: pf.Allow, reloads: 1,
		},
		{
			name:  "empty file allows everything",
			text:  "# nothing\n",
			rules: 0, hits: []uint64{0}, verdict: pf.Allow, reloads: 1,
		},
		{
			name:  "bad file keeps the rules and their hits",
			text:  "allow in\ndrop in proto tcp to any port 0\n",
			err:   `pf: reload refused, the 2 rules from "old.rules" stay in force: new.rules:2: expected ports after "port"`,
			rules: 2, hits: []uint64{1, 1, 1}, verdict: pf.Drop, failures: 1,
		},
		{
			name:  "too long a line keeps the rules",
			text:  "allow in " + strings.Repeat("#", pf.MaxLineLen),
			err:   "new.rules:1: line too long",
			rules: 2, hits: []uint64{1, 1, 1}, verdict: pf.Drop, failures: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, err := pf.Parse(strings.NewReader(twoRules), "old.rules")
			if err != nil {
				t.Fatal(err)
			}
			f := pf.NewFilter(old)
			f.Check(telnet)
			f.Check(dns)
			f.Check(ping)

			err = f.Reload(strings.NewReader(tt.text), "new.rules")
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Reload: %v", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Reload error = %v, want one containing %q", err, tt.err)
				}
				var pe *pf.ParseError
				if !errors.As(err, &pe) || pe.Name != "new.rules" {
					t.Errorf("Reload error does not wrap the ParseError: %#v", err)
				}
			}
			if got := hits(f); !equal(got, tt.hits) {
				t.Errorf("hits after reload = %v, want %v", got, tt.hits)
			}
			s := f.Stats()
			if s.Rules != tt.rules || s.Reloads != tt.reloads || s.FailedReloads != tt.failures {
				t.Errorf("Stats = %+v; want %d rules, %d reloads, %d failed", s, tt.rules, tt.reloads, tt.failures)
			}
			if s.Checks != 3 || s.Allowed != 2 || s.Dropped != 1 {
				t.Errorf("Stats = %+v: a reload must not reset the verdict counts", s)
			}
			if got := f.Check(telnet); got != tt.verdict {
				t.Errorf("telnet after reload: %v, want %v", got, tt.verdict)
			}
			if tt.err != "" && f.Ruleset().Source != "old.rules" {
				t.Errorf("Source after a failed reload = %q", f.Ruleset().Source)
			}
		})
	}
}

func TestFilterReloadReadError(t *testing.T) {
	f := pf.NewFilter(mustParse(t, twoRules))
	boom := errors.New("EIO")
	err := f.Reload(iotest.ErrReader(boom), "gone.rules")
	if !errors.Is(err, boom) {
		t.Fatalf("Reload error %v does not wrap the read error", err)
	}
	if err := f.Reload(nil, "nil.rules"); err == nil {
		t.Fatal("Reload(nil) succeeded")
	}
	if s := f.Stats(); s.Rules != 2 || s.FailedReloads != 2 {
		t.Errorf("Stats = %+v, want 2 rules, 2 failed reloads", s)
	}
}

func TestFilterKeepsItsCopy(t *testing.T) {
	rs := mustParse(t, twoRules)
	f := pf.NewFilter(rs)
	rs.Rules[0].Action = pf.Allow // the caller's copy
	if got := f.Check(telnet); got != pf.Drop {
		t.Errorf("Check = %v: the filter shares its rules with the caller", got)
	}
	got := f.Ruleset()
	got.Rules[0].Text = "changed"
	if f.Hits()[0].Text == "changed" {
		t.Error("Ruleset() shares the rules in force")
	}
}

func TestZeroFilter(t *testing.T) {
	var f pf.Filter
	if got := f.Check(telnet); got != pf.Allow {
		t.Errorf("zero Filter Check = %v, want allow", got)
	}
	want := []pf.RuleHits{{Index: -1, Text: pf.DefaultText, Action: pf.Allow, Hits: 1}}
	if got := f.Hits(); !equal(got, want) {
		t.Errorf("Hits = %+v, want %+v", got, want)
	}
	if err := f.Reload(strings.NewReader("drop in\n"), "x"); err != nil {
		t.Fatal(err)
	}
	if got := f.Check(telnet); got != pf.Drop {
		t.Errorf("Check after Reload = %v, want drop", got)
	}
	if got := pf.NewFilter(nil).Check(telnet); got != pf.Allow {
		t.Errorf("NewFilter(nil) Check = %v, want allow", got)
	}
}

func TestFilterCheckBytes(t *testing.T) {
	f := pf.NewFilter(mustParse(t, "drop in proto tcp to any port 23\ndrop out proto udp\n"))
	telnetPkt := ipv4(proto.TCP, "198.18.0.1", "198.18.0.2", tcp(40000, 23, 0, nil))
	sshPkt := ipv4(proto.TCP, "198.18.0.1", "198.18.0.2", tcp(40000, 22, 0, nil))
	udpPkt := ipv4(proto.UDP, "198.18.0.2", "198.18.0.1", udp(1, 2, nil))
	tests := []struct {
		name  string
		check func() (pf.Action, error)
		want  pf.Action
		isErr error
	}{
		{"ipv4 dropped", func() (pf.Action, error) { return f.CheckIPv4(pf.In, telnetPkt) }, pf.Drop, nil},
		{"ipv4 allowed", func() (pf.Action, error) { return f.CheckIPv4(pf.In, sshPkt) }, pf.Allow, nil},
		{"ipv4 malformed", func() (pf.Action, error) { return f.CheckIPv4(pf.In, sshPkt[:30]) }, pf.Drop, pf.ErrMalformed},
		{"frame dropped", func() (pf.Action, error) { return f.CheckFrame(pf.Out, ether(0x0800, udpPkt)) }, pf.Drop, nil},
		{"frame allowed", func() (pf.Action, error) { return f.CheckFrame(pf.In, ether(0x0800, udpPkt)) }, pf.Allow, nil},
		{"arp frame", func() (pf.Action, error) { return f.CheckFrame(pf.In, ether(0x0806, make([]byte, 28))) }, pf.Allow, pf.ErrNotIPv4},
		{"runt frame", func() (pf.Action, error) { return f.CheckFrame(pf.In, []byte{1, 2, 3}) }, pf.Drop, pf.ErrMalformed},
		{"frame with a bad packet", func() (pf.Action, error) { return f.CheckFrame(pf.In, ether(0x0800, []byte{0x45})) }, pf.Drop, pf.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.check()
			if got != tt.want {
				t.Errorf("action = %v, want %v", got, tt.want)
			}
			if !errors.Is(err, tt.isErr) || (err == nil) != (tt.isErr == nil) {
				t.Errorf("error = %v, want %v", err, tt.isErr)
			}
		})
	}
	want := pf.Stats{Checks: 4, Allowed: 2, Dropped: 2, Malformed: 3, NotIPv4: 1, Rules: 2}
	if got := f.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if got := hits(f); !equal(got, []uint64{1, 1, 2}) {
		t.Errorf("hits = %v, want [1 1 2]", got)
	}
}

// TestFilterConcurrentReaders runs Check and Reload in one goroutine while
// others read the counters, as a metrics collector does; run it with
// -race.
func TestFilterConcurrentReaders(t *testing.T) {
	f := pf.NewFilter(mustParse(t, twoRules))
	const n = 20000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			var last uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := f.Stats()
				if s.Checks < last {
					t.Errorf("Checks went down: %d after %d", s.Checks, last)
					return
				}
				last = s.Checks
				if h := f.Hits(); h[len(h)-1].Index != -1 {
					t.Errorf("Hits does not end with the default: %+v", h)
					return
				}
			}
		})
	}
	for i := range n {
		f.Check(telnet)
		f.Check(ping)
		if i%1000 == 0 {
			text := twoRules
			if i%2000 == 0 {
				text = "drop in\n"
			}
			if err := f.Reload(strings.NewReader(text), "r"); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	if s := f.Stats(); s.Checks != 2*n || s.Reloads != n/1000 {
		t.Errorf("Stats = %+v", s)
	}
}

package link_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/newtsim/newtsim/nic/link"
)

func TestParseParams(t *testing.T) {
	tests := []struct {
		in   string
		want link.Params
	}{
		{"", link.Params{}},
		{"  ", link.Params{}},
		{"bw=100Mbit,delay=1ms,loss=0.05,dup=0.01,reorder=0.01,corrupt=0.001,queue=1MiB,seed=7",
			link.Params{Bandwidth: 100e6, Delay: time.Millisecond, Loss: 0.05, Duplicate: 0.01, Reorder: 0.01, Corrupt: 0.001, QueueBytes: 1 << 20, Seed: 7}},
		{"bw=12000000", link.Params{Bandwidth: 12e6}},
		{"bw=1.5Gbit", link.Params{Bandwidth: 1.5e9}},
		{"bw=10gbit", link.Params{Bandwidth: 10e9}},
		{"bw=10G", link.Params{Bandwidth: 10e9}},
		{"bw=0.001Mbit", link.Params{Bandwidth: 1000}},
		{"bw=1Tbit", link.Params{Bandwidth: 1e12}},
		{"bw=0", link.Params{}},
		{"bw=1000bit", link.Params{Bandwidth: 1000}},
		{"bw = 100 Mbit , delay = 2ms", link.Params{Bandwidth: 100e6, Delay: 2 * time.Millisecond}},
		{"delay=1.5ms,reorder-delay=250us", link.Params{Delay: 1500 * time.Microsecond, ReorderDelay: 250 * time.Microsecond}},
		{"loss=5%", link.Params{Loss: 0.05}},
		{"loss=1", link.Params{Loss: 1}},
		{"loss=100%", link.Params{Loss: 1}},
		{"loss=-0", link.Params{}},
		{"queue=64KiB", link.Params{QueueBytes: 64 << 10}},
		{"queue=64kb", link.Params{QueueBytes: 64000}},
		{"queue=1.5KiB", link.Params{QueueBytes: 1536}},
		{"queue=1500", link.Params{QueueBytes: 1500}},
		{"queue=1TiB", link.Params{QueueBytes: 1 << 40}},
		{"seed=0x10", link.Params{Seed: 16}},
		{"seed=18446744073709551615", link.Params{Seed: math.MaxUint64}},
	}
	for _, tt := range tests {
		got, err := link.ParseParams(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseParams(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseParamsErrors(t *testing.T) {
	tests := []struct {
		in, want string // want: a part of the error
	}{
		{"bw", "not key=value"},
		{"=1", "not key=value"},
		{"bw=1Mbit,", "not key=value"},
		{"bw=1Mbit,bw=2Mbit", "given twice"},
		{"speed=1", `unknown key "speed"`},
		{"bw=fast", "unknown unit"},
		{"bw=1Mbps", "unknown unit"},
		{"bw=1MiB", "unknown unit"},
		{"bw=Mbit", "no number"},
		{"bw=1.2.3Mbit", "two decimal points"},
		{"bw=1.5bit", "not a whole number"},
		{"bw=10000000000Tbit", "out of range"},
		{"bw=99999999999999999999", "out of range"},
		{"bw=500", "at least 1000"},
		{"bw=-1", "unknown unit"},
		{"delay=1", "missing unit"},
		{"delay=-1ms", "negative"},
		{"reorder-delay=soon", "invalid duration"},
		{"loss=1.01", "between 0 and 1"},
		{"loss=NaN", "between 0 and 1"},
		{"dup=-0.1", "between 0 and 1"},
		{"reorder=much", "invalid syntax"},
		{"corrupt=200%", "between 0 and 1"},
		{"queue=1MB/s", "unknown unit"},
		{"queue=2TiB", "more than"},
		{"queue=0.5B", "not a whole number"},
		{"seed=-1", "invalid syntax"},
		{"seed=18446744073709551616", "out of range"},
	}
	for _, tt := range tests {
		p, err := link.ParseParams(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) || p != (link.Params{}) {
			t.Errorf("ParseParams(%q) = %+v, %v; want an error with %q", tt.in, p, err, tt.want)
		}
	}
}

func TestParamsString(t *testing.T) {
	tests := []struct {
		p    link.Params
		want string
	}{
		{link.Params{}, ""},
		{link.Params{Bandwidth: 100e6, Delay: time.Millisecond, Loss: 0.05, Duplicate: 0.01, Reorder: 0.01, Corrupt: 0.001, QueueBytes: 1 << 20, Seed: 7},
			"bw=100Mbit,delay=1ms,loss=0.05,dup=0.01,reorder=0.01,corrupt=0.001,queue=1MiB,seed=7"},
		{link.Params{Bandwidth: 1500, QueueBytes: 1500}, "bw=1500bit,queue=1500B"},
		{link.Params{Bandwidth: 2.5e9, QueueBytes: 3 << 30}, "bw=2500Mbit,queue=3GiB"},
		{link.Params{Delay: 1500 * time.Microsecond, ReorderDelay: 90 * time.Minute}, "delay=1.5ms,reorder-delay=1h30m0s"},
		{link.Params{Loss: 1.0 / 3, Seed: math.MaxUint64}, "loss=0.3333333333333333,seed=18446744073709551615"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
		back, err := link.ParseParams(tt.p.String())
		if err != nil || back != tt.p {
			t.Errorf("ParseParams(%q) = %+v, %v; want %+v", tt.p.String(), back, err, tt.p)
		}
	}
}

// FuzzParseParams feeds ParseParams arbitrary text. It must never panic;
// what it accepts must validate, make a Link, and come back unchanged
// through String.
func FuzzParseParams(f *testing.F) {
	for _, s := range []string{
		"", "bw=100Mbit,delay=1ms,loss=0.05,dup=0.01,reorder=0.01,corrupt=0.001,queue=1MiB,seed=7",
		"bw=1.5Gbit", "loss=5%", "delay=1h2m3.000000004s", "queue=0.5KiB", "bw=1e9", "seed=0b101",
		"bw=,", "reorder-delay=-1ns", "loss=0x1p-4", "bw = 1 kbit",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := link.ParseParams(s)
		if err != nil {
			if p != (link.Params{}) {
				t.Fatalf("ParseParams(%q) failed (%v) but returned %+v", s, err, p)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParseParams(%q) = %+v, which does not validate: %v", s, p, err)
		}
		if _, err := link.New(p); err != nil {
			t.Fatalf("New(%+v): %v", p, err)
		}
		str := p.String()
		back, err := link.ParseParams(str)
		if err != nil || back != p {
			t.Fatalf("ParseParams(%q) = %+v; its String %q parses to %+v, %v", s, p, str, back, err)
		}
		if back.String() != str {
			t.Fatalf("String not stable: %q, then %q", str, back.String())
		}
	})
}

package ipc

import (
	"errors"
	"testing"
)

func TestMarshalRoundTrip(t *testing.T) {
	m := Message{Src: MakeEndpoint(3, 7), Dst: Kernel, Type: Lookup, Flags: 0xbeef, Seq: 42,
		Arg: [NumArgs]uint64{1, 2, 3, 1 << 63, 5, 6}}
	var b [MessageSize]byte
	m.Marshal(b[:])
	var got Message
	if err := got.Unmarshal(b[:]); err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Fatalf("round trip: got %v, want %v", &got, &m)
	}
}

func TestUnmarshalLength(t *testing.T) {
	for _, n := range []int{0, 1, 63, 65, 128} {
		var m Message
		if err := m.Unmarshal(make([]byte, n)); !errors.Is(err, ErrMessageSize) {
			t.Errorf("%d bytes: %v, want ErrMessageSize", n, err)
		}
	}
}

func TestEndpoint(t *testing.T) {
	tests := []struct {
		slot, gen int
		valid     bool
		str       string
	}{
		{0, 1, true, "0.1"},
		{5, 2, true, "5.2"},
		{5, 0, false, "5.0"},
		{63, 65535, true, "63.65535"},
		{64, 1, false, "64.1"},
	}
	for _, tt := range tests {
		e := MakeEndpoint(tt.slot, tt.gen)
		if e.Slot() != tt.slot || e.Generation() != tt.gen || e.Valid() != tt.valid || e.String() != tt.str {
			t.Errorf("MakeEndpoint(%d, %d) = %s slot %d gen %d valid %v", tt.slot, tt.gen, e, e.Slot(), e.Generation(), e.Valid())
		}
	}
}

func TestName(t *testing.T) {
	for _, name := range []string{"", "tcp", "a-forty-byte-name-that-fills-all-5-words"} {
		var m Message
		if err := m.SetName(name); err != nil {
			t.Fatal(err)
		}
		if got := m.Name(); got != name {
			t.Errorf("Name() = %q, want %q", got, name)
		}
	}
	var m Message
	if err := m.SetName("a-name-that-is-longer-than-forty-bytes-in-all"); err == nil {
		t.Error("SetName accepted 45 bytes")
	}
}

func TestParseWaitPolicy(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"block", "block", false},
		{"block-go", "block-go", false},
		{"poll", "poll", false},
		{"20us", "spin 20µs then block", false},
		{"yield", "yield 200µs then block", false},
		{"yield:50us", "yield 50µs then block", false},
		{"yield:0s", "", true},
		{"yield:x", "", true},
		{"-1s", "", true},
		{"fast", "", true},
	}
	for _, tt := range tests {
		p, err := ParseWaitPolicy(tt.in)
		if (err != nil) != tt.err || (!tt.err && p.String() != tt.want) {
			t.Errorf("ParseWaitPolicy(%q) = %v, %v", tt.in, p, err)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	var b [MessageSize]byte
	(&Message{Src: 1, Dst: 2, Type: Ping, Seq: 3}).Marshal(b[:])
	f.Add(b[:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := m.Unmarshal(data); err != nil {
			return
		}
		var out [MessageSize]byte
		m.Marshal(out[:])
		if string(out[:]) != string(data) {
			t.Fatalf("re-marshal differs")
		}
		_ = m.Type.String() + m.Name() + m.String()
	})
}

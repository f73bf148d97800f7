package trace

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// reset gives each test a recorder of its own: off, empty.
func reset(t *testing.T) {
	t.Helper()
	Disable()
	ring, label = nil, struct {
		name, role string
		slot       int
	}{}
	next.Store(0)
	t.Cleanup(func() { Disable(); ring = nil; next.Store(0) })
}

func TestOffRecordsNothing(t *testing.T) {
	reset(t)
	if On() {
		t.Fatal("the recorder is on by default")
	}
	if On() {
		Record(Put, 1, 2, 3, 4)
	}
	Record(Put, 1, 2, 3, 4) // before Enable there is no ring: a stray call is harmless
	if s := Copy(); s.Recorded != 0 || len(s.Events) != 0 {
		t.Fatalf("off: recorded %d, events %v", s.Recorded, s.Events)
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", Path, nil))
	if rec.Code != 404 {
		t.Fatalf("the handler answers %d while off, want 404", rec.Code)
	}
}

func TestRingKeepsTheNewest(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		first  uint32 // ID of the oldest event kept
		events int
	}{
		{"empty", 0, 0, 0},
		{"a few", 5, 0, 5},
		{"exactly full", Size, 0, Size},
		{"wrapped once and a bit", Size + 7, 7, Size},
		{"wrapped twice", 2*Size + 3, Size + 3, Size},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reset(t)
			Enable("ip", "ip", 4)
			for i := range tt.n {
				Record(Put, 160, 4, 5, uint32(i))
			}
			s := Copy()
			if s.Process != "ip" || s.Slot != 4 || s.Recorded != uint64(tt.n) || len(s.Events) != tt.events {
				t.Fatalf("snapshot %s slot %d recorded %d with %d events, want ip 4 %d %d",
					s.Process, s.Slot, s.Recorded, len(s.Events), tt.n, tt.events)
			}
			for i, e := range s.Events {
				if e.ID != tt.first+uint32(i) {
					t.Fatalf("event %d has ID %d, want %d: not oldest first", i, e.ID, tt.first+uint32(i))
				}
				if i > 0 && e.TSC < s.Events[i-1].TSC {
					t.Fatalf("event %d stamped before event %d", i, i-1)
				}
			}
		})
	}
}

func TestSnapshotJSONRoundTrip(t *testing.T) {
	reset(t)
	Enable("tcp", "tcp", 2)
	Record(Take, 163, 4, 2, 1<<32-1)
	Record(Begin, 163, 4, 0, 0)
	Record(End, 163, 0, 0, 0)
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", Path, nil))
	var s Snapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatalf("decode: %v\n%s", err, rec.Body)
	}
	want := Copy()
	if len(s.Events) != 3 || s.Process != "tcp" {
		t.Fatalf("got %+v", s)
	}
	for i := range s.Events {
		if s.Events[i] != want.Events[i] {
			t.Errorf("event %d: %+v, want %+v", i, s.Events[i], want.Events[i])
		}
	}
	var e Event
	for _, bad := range []string{`[1,2,3]`, `[1,256,0,0,0,0]`, `[1,1,0,0,0,4294967296]`, `{}`} {
		if err := e.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("UnmarshalJSON(%s) accepted it", bad)
		}
	}
}

// BenchmarkHookOff is the cost a hook adds with the recorder off.
func BenchmarkHookOff(b *testing.B) {
	Disable()
	for i := 0; b.Loop(); i++ {
		if On() {
			Record(Put, 1, 2, 3, uint32(i))
		}
	}
}

// BenchmarkRecord is the cost of one event with the recorder on.
func BenchmarkRecord(b *testing.B) {
	Enable("bench", "bench", 1)
	defer Disable()
	for i := 0; b.Loop(); i++ {
		Record(Put, 1, 2, 3, uint32(i))
	}
}

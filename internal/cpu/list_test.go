package cpu

import (
	"slices"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []int
		wantErr string
	}{
		{name: "single", in: "0", want: []int{0}},
		{name: "range", in: "0-1", want: []int{0, 1}},
		{name: "sysfs newline", in: "0-3\n", want: []int{0, 1, 2, 3}},
		{name: "mixed", in: "0,2-3", want: []int{0, 2, 3}},
		{name: "range and single", in: "0-1,4", want: []int{0, 1, 4}},
		{name: "unsorted and duplicates", in: "4,1-2,2", want: []int{1, 2, 4}},
		{name: "one-element range", in: "5-5", want: []int{5}},
		{name: "leading zero", in: "07", want: []int{7}},
		{name: "largest", in: "1023", want: []int{Max - 1}},
		{name: "empty", in: "", wantErr: "empty CPU list"},
		{name: "blank", in: " \n", wantErr: "empty CPU list"},
		{name: "empty item", in: "0,,1", wantErr: "missing CPU id"},
		{name: "trailing comma", in: "0,", wantErr: "missing CPU id"},
		{name: "open range", in: "2-", wantErr: "missing CPU id"},
		{name: "backwards", in: "3-1", wantErr: "runs backwards"},
		{name: "negative", in: "-1", wantErr: "missing CPU id"},
		{name: "sign", in: "+1", wantErr: "not a number"},
		{name: "word", in: "all", wantErr: "not a number"},
		{name: "inner space", in: "0, 1", wantErr: "not a number"},
		{name: "double range", in: "1-2-3", wantErr: "not a number"},
		{name: "too large", in: "1024", wantErr: "out of range"},
		{name: "huge", in: "0-99999999999999999999", wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseList(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseList(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatList(t *testing.T) {
	tests := []struct {
		name string
		in   []int
		want string
	}{
		{name: "none", in: nil, want: ""},
		{name: "one", in: []int{3}, want: "3"},
		{name: "pair", in: []int{0, 1}, want: "0-1"},
		{name: "gap", in: []int{0, 2}, want: "0,2"},
		{name: "runs", in: []int{0, 1, 2, 5, 7, 8}, want: "0-2,5,7-8"},
		{name: "kept order", in: []int{3, 1}, want: "3,1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FormatList(tt.in)
			if got != tt.want {
				t.Fatalf("FormatList(%v) = %q, want %q", tt.in, got, tt.want)
			}
			if len(tt.in) == 0 || !slices.IsSorted(tt.in) {
				return
			}
			back, err := ParseList(got)
			if err != nil || !slices.Equal(back, tt.in) {
				t.Errorf("ParseList(%q) = %v, %v; want %v", got, back, err, tt.in)
			}
		})
	}
}

func TestOnline(t *testing.T) {
	cpus, err := Online()
	if err != nil {
		t.Skipf("no %s here: %v", OnlinePath, err)
	}
	if len(cpus) == 0 || !slices.IsSorted(cpus) {
		t.Fatalf("Online() = %v, want a sorted non-empty list", cpus)
	}
}

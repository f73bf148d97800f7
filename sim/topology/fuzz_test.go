package topology

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts,
// Format writes back so that Parse gives the same topology. Seeds are in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add(Default().Format())
	f.Add("process a role echo cores 0-1,3 wait 20us args --size 64\nprocess b\nlink a b\n")
	f.Fuzz(func(t *testing.T, in string) {
		top, err := Parse(strings.NewReader(in), "fuzz")
		if err != nil {
			return
		}
		if err := top.Validate(); err != nil {
			t.Fatalf("Parse accepted a topology Validate refuses: %v", err)
		}
		out := top.Format()
		back, err := Parse(strings.NewReader(out), "formatted")
		if err != nil {
			t.Fatalf("Parse(Format()) = %v\ninput:\n%q\nformat:\n%q", err, in, out)
		}
		if !reflect.DeepEqual(back, top) {
			t.Fatalf("Parse(Format()) =\n%#v\nwant\n%#v", back, top)
		}
		if again := back.Format(); again != out {
			t.Fatalf("Format is not stable:\n%q\nthen\n%q", out, again)
		}
	})
}

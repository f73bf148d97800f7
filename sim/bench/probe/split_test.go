package probe

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// imports lists the packages the non-test Go files in dir import.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no imports in %s", dir)
	}
	return out
}

// TestSplit keeps the two sides of the benchmarks apart: this package,
// which runs inside the measured processes, starts none, and package
// bench, which starts them, defines no role (a role is a sys.Starter).
func TestSplit(t *testing.T) {
	const module = "github.com/newtsim/newtsim/"
	tests := []struct {
		name, dir string
		never     []string
	}{
		{"probe starts no processes", ".", []string{module + "internal/spawn", module + "sim/launch", "os/exec"}},
		{"bench defines no roles", "..", []string{module + "servers/sys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, imp := range imports(t, tt.dir) {
				if slices.Contains(tt.never, imp) {
					t.Errorf("%s imports %s", tt.dir, imp)
				}
			}
		})
	}
}

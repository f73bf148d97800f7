package launch_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// testingDoc is the page that lists the tests needing real programs.
const testingDoc = "docs/TESTING.md"

// TestRealToolTestsListed: the tests of this package that run real
// programs (those calling needTools) are exactly those docs/TESTING.md
// lists, each with the same programs, and those the Makefile's
// REAL_TOOL_TESTS leaves out of `make test-bare`; so a test that starts
// needing a program cannot slip into the bare run, nor one stay out of it
// that no longer needs one.
func TestRealToolTestsListed(t *testing.T) {
	inCode := needToolsCalls(t)
	if len(inCode) == 0 {
		t.Fatal("no test calls needTools: the parse found nothing")
	}
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, testingDoc))
	if err != nil {
		t.Fatal(err)
	}
	inDoc := map[string][]string{}
	row := regexp.MustCompile("(?m)^\\| `(Test\\w+)` \\| ([^|]+) \\|")
	prog := regexp.MustCompile("`([^`]+)`")
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		var tools []string
		for _, p := range prog.FindAllStringSubmatch(m[2], -1) {
			tools = append(tools, p[1])
		}
		slices.Sort(tools)
		inDoc[m[1]] = tools
	}
	for name, tools := range inCode {
		if got, ok := inDoc[name]; !ok {
			t.Errorf("%s runs %v, and %s does not list it", name, tools, testingDoc)
		} else if !slices.Equal(got, tools) {
			t.Errorf("%s runs %v; %s says %v", name, tools, testingDoc, got)
		}
	}
	for name := range inDoc {
		if _, ok := inCode[name]; !ok {
			t.Errorf("%s lists %s, which runs no program (calls no needTools)", testingDoc, name)
		}
	}

	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^REAL_TOOL_TESTS\s*:=((?:[^\n]*\\\n)*[^\n]*)`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile has no REAL_TOOL_TESTS")
	}
	inMake := strings.Fields(strings.ReplaceAll(string(m[1]), "\\", " "))
	slices.Sort(inMake)
	if want := slices.Sorted(maps.Keys(inCode)); !slices.Equal(inMake, want) {
		t.Errorf("the Makefile's REAL_TOOL_TESTS is %v, the tests calling needTools %v", inMake, want)
	}
}

// needToolsCalls parses this package's tests and returns, for each Test
// function that calls needTools, the programs it names, sorted.
func needToolsCalls(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	calls := map[string][]string{}
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				c, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				if id, ok := c.Fun.(*ast.Ident); !ok || id.Name != "needTools" {
					return true
				}
				for _, a := range c.Args[1:] {
					lit, ok := a.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: %s calls needTools with %T: name each program as a string", fset.Position(a.Pos()), fn.Name.Name, a)
					}
					s, _ := strconv.Unquote(lit.Value)
					calls[fn.Name.Name] = append(calls[fn.Name.Name], s)
				}
				return true
			})
		}
	}
	for _, v := range calls {
		slices.Sort(v)
	}
	return calls
}

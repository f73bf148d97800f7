package topology

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Topology
	}{
		{
			name: "spec example",
			in: `# an example
name default
transport shm            # shm | kernel
wait auto                # auto | block | poll | <duration>
process syscall role syscall
process tcp role tcp cores 1 wait poll
process echo role echo args --size 64
link syscall tcp
`,
			want: &Topology{Name: "default", Transport: Shm, Processes: []Process{
				{Name: "syscall", Role: "syscall"},
				{Name: "tcp", Role: "tcp", Cores: []int{1}, Wait: "poll"},
				{Name: "echo", Role: "echo", Args: []string{"--size", "64"}},
			}, Links: []Link{{"syscall", "tcp"}}},
		},
		{
			name: "defaults",
			in:   "process a\n",
			want: &Topology{Transport: Shm, Processes: []Process{{Name: "a", Role: "a"}}},
		},
		{
			name: "empty file",
			in:   "",
			want: &Topology{Transport: Shm},
		},
		{
			name: "options in any order, tabs, CRLF",
			in:   "transport\tkernel\r\nwait 20us\r\nprocess b wait block cores 2-3,0 role echo\r\nprocess a args x#comment\r\n  link  b a  \r\n",
			want: &Topology{Transport: Kernel, Wait: "20us", Processes: []Process{
				{Name: "b", Role: "echo", Cores: []int{0, 2, 3}, Wait: "block"},
				{Name: "a", Role: "a", Args: []string{"x"}},
			}, Links: []Link{{"b", "a"}}},
		},
		{
			name: "process wait auto is the plan's",
			in:   "wait poll\nprocess a wait auto\n",
			want: &Topology{Transport: Shm, Wait: "poll", Processes: []Process{{Name: "a", Role: "a"}}},
		},
		{
			name: "args take the rest of the line, keywords and all",
			in:   "process a args role x cores 1\nprocess b args\n",
			want: &Topology{Transport: Shm, Processes: []Process{
				{Name: "a", Role: "a", Args: []string{"role", "x", "cores", "1"}},
				{Name: "b", Role: "b"},
			}},
		},
		{
			name: "link before its processes",
			in:   "link a b\nprocess a\nprocess b\n",
			want: &Topology{Transport: Shm, Processes: []Process{{Name: "a", Role: "a"}, {Name: "b", Role: "b"}},
				Links: []Link{{"a", "b"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in), "x.topo")
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse() =\n%#v\nwant\n%#v", got, tt.want)
			}
			back, err := Parse(strings.NewReader(got.Format()), "formatted")
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Fatalf("Parse(Format()) = %#v, %v\nformat:\n%s", back, err, got.Format())
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "unknown keyword", in: "name x\n\nrpocess a\n", want: `x.topo:3: unknown keyword "rpocess"`},
		{name: "name twice", in: "name a\nname b\n", want: "x.topo:2: name given twice (first on line 1)"},
		{name: "name without value", in: "name\n", want: "x.topo:1: name: want one value, got 0"},
		{name: "name with two values", in: "name a b\n", want: "x.topo:1: name: want one value, got 2"},
		{name: "bad name", in: "name a/b\n", want: `x.topo:1: topology name "a/b"`},
		{name: "unknown transport", in: "transport tcp\n", want: `x.topo:1: transport "tcp": want shm or kernel`},
		{name: "bad wait", in: "# c\nwait sometimes\n", want: `x.topo:2: wait "sometimes"`},
		{name: "process without name", in: "process\n", want: "x.topo:1: process: missing name"},
		{name: "bad process name", in: "process Tcp\n", want: `x.topo:1: process: name "Tcp"`},
		{name: "unknown option", in: "process a core 1\n", want: `x.topo:1: process a: unknown option "core"`},
		{name: "option twice", in: "process a role x role y\n", want: "x.topo:1: process a: role given twice"},
		{name: "missing value", in: "process a cores\n", want: "x.topo:1: process a: cores: missing value"},
		{name: "bad cores", in: "process a cores 1-x\n", want: `x.topo:1: process a: cores: CPU list "1-x": CPU id "x" is not a number`},
		{name: "backwards cores", in: "process a cores 3-1\n", want: "x.topo:1: process a: cores: CPU list \"3-1\": range 3-1 runs backwards"},
		{name: "bad process wait", in: "process a wait 10\n", want: `x.topo:1: process a: wait: wait "10"`},
		{name: "bad role", in: "process a role R\n", want: `x.topo:1: process a: role: role "R"`},
		{name: "duplicate process", in: "process a\nprocess b\nprocess a\n", want: "x.topo:3: process a: duplicate name (process 1 has it too)"},
		{name: "link arity", in: "link a\n", want: "x.topo:1: link: want two process names, got 1"},
		{name: "link unknown", in: "process a\n\nlink a b\n", want: `x.topo:3: link a b: no process is called "b"`},
		{name: "self link", in: "process a\nlink a a\n", want: "x.topo:2: link a a: links a process to itself"},
		{name: "kernel link", in: "process a\nlink kernel a\n", want: "x.topo:2: link kernel a: the kernel is linked"},
		{name: "duplicate link", in: "process a\nprocess b\nlink a b\nlink b a\n", want: "x.topo:4: link b a: duplicate link"},
		{name: "64 processes", in: manyProcesses(64), want: "x.topo:64: process p63: more than 63 processes"},
		{name: "line too long", in: "name a\n" + strings.Repeat("x", maxLine+1), want: "x.topo:2: bufio.Scanner: token too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in), "x.topo")
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Parse() = %+v, %v\nwant an error starting %q", got, err, tt.want)
			}
		})
	}
}

// manyProcesses returns n process lines, p0 to p(n-1).
func manyProcesses(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("process p" + strconv.Itoa(i) + "\n")
	}
	return b.String()
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name string
		in   *Topology
		want string
	}{
		{
			name: "everything",
			in: &Topology{Name: "t", Transport: Kernel, Wait: "block", Processes: []Process{
				{Name: "a", Role: "echo", Cores: []int{0, 1, 3}, Wait: "20us", Args: []string{"--size", "64"}},
				{Name: "b", Role: "b"},
			}, Links: []Link{{"a", "b"}}},
			want: "name t\ntransport kernel\nwait block\n\n" +
				"process a role echo cores 0-1,3 wait 20us args --size 64\nprocess b\n\nlink a b\n",
		},
		{
			name: "defaults written as Parse fills them",
			in:   &Topology{Transport: Shm, Wait: "auto", Processes: []Process{{Name: "a", Wait: "auto"}}},
			want: "transport shm\nwait auto\n\nprocess a\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.Format(); got != tt.want {
				t.Fatalf("Format() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestDefaultFile(t *testing.T) {
	path := filepath.Join("testdata", "default.topo")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), Default().Format(); got != want {
		t.Errorf("%s =\n%s\nwant Default().Format() =\n%s", path, got, want)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s) = %v", path, err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("Load(%s) = %#v, want Default()", path, got)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nosuch.topo"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want a not-exist error", err)
	}
}

package topology

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/newtsim/newtsim/internal/cpu"
)

// Load reads and checks the topology file at path.
func Load(path string) (*Topology, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

// maxLine is the longest line Parse reads.
const maxLine = 1 << 20

// Parse reads a topology file and checks it as Validate does. Errors name
// the place as "filename:LINE: reason". A file without a transport line
// gets Shm.
func Parse(r io.Reader, filename string) (*Topology, error) {
	p := parser{file: filename, t: &Topology{}, first: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLine)
	for sc.Scan() {
		p.line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		if f := strings.Fields(text); len(f) > 0 {
			if err := p.directive(f); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", p.file, p.line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", p.file, p.line+1, err)
	}
	if p.t.Transport == "" {
		p.t.Transport = Shm
	}
	if bad := p.t.check(); bad != nil {
		line := 0
		switch {
		case bad.process >= 0:
			line = p.processLines[bad.process]
		case bad.link >= 0:
			line = p.linkLines[bad.link]
		}
		if line == 0 {
			return nil, fmt.Errorf("%s: %w", p.file, bad)
		}
		return nil, fmt.Errorf("%s:%d: %w", p.file, line, bad)
	}
	return p.t, nil
}

// parser is the state of one Parse.
type parser struct {
	file         string
	line         int
	t            *Topology
	first        map[string]int // line of each one-off directive seen
	processLines []int          // line of each process
	linkLines    []int          // line of each link
}

// directive reads one line's fields.
func (p *parser) directive(f []string) error {
	switch kw := f[0]; kw {
	case "name", "transport", "wait":
		if len(f) != 2 {
			return fmt.Errorf("%s: want one value, got %d", kw, len(f)-1)
		}
		if l, dup := p.first[kw]; dup {
			return fmt.Errorf("%s given twice (first on line %d)", kw, l)
		}
		p.first[kw] = p.line
		switch kw {
		case "name":
			p.t.Name = f[1]
			return checkTopologyName(f[1])
		case "transport":
			p.t.Transport = Transport(f[1])
			return checkTransport(p.t.Transport)
		default:
			p.t.Wait = autoless(f[1])
			return checkWait(f[1])
		}
	case "process":
		pr, err := parseProcess(f[1:])
		if err != nil {
			return err
		}
		p.t.Processes = append(p.t.Processes, pr)
		p.processLines = append(p.processLines, p.line)
	case "link":
		if len(f) != 3 {
			return fmt.Errorf("link: want two process names, got %d", len(f)-1)
		}
		p.t.Links = append(p.t.Links, Link{A: f[1], B: f[2]})
		p.linkLines = append(p.linkLines, p.line)
	default:
		return fmt.Errorf("unknown keyword %q (want name, transport, wait, process or link)", kw)
	}
	return nil
}

// parseProcess reads the fields after "process": NAME [role ROLE]
// [cores LIST] [wait POLICY] [args ...], the options in any order.
func parseProcess(f []string) (Process, error) {
	if len(f) == 0 {
		return Process{}, errors.New("process: missing name")
	}
	p := Process{Name: f[0]}
	if err := checkProcessName(p.Name); err != nil {
		return Process{}, fmt.Errorf("process: %w", err)
	}
	seen := map[string]bool{}
	for i := 1; i < len(f); i += 2 {
		opt := f[i]
		if opt == "args" {
			if len(f) > i+1 {
				p.Args = append([]string(nil), f[i+1:]...)
			}
			break
		}
		switch opt {
		case "role", "cores", "wait":
		default:
			return Process{}, fmt.Errorf("process %s: unknown option %q (want role, cores, wait or args)", p.Name, opt)
		}
		if seen[opt] {
			return Process{}, fmt.Errorf("process %s: %s given twice", p.Name, opt)
		}
		seen[opt] = true
		if i+1 == len(f) {
			return Process{}, fmt.Errorf("process %s: %s: missing value", p.Name, opt)
		}
		v := f[i+1]
		var err error
		switch opt {
		case "role":
			p.Role, err = v, checkRole(v)
		case "cores":
			p.Cores, err = cpu.ParseList(v)
		case "wait":
			p.Wait, err = autoless(v), checkWait(v)
		}
		if err != nil {
			return Process{}, fmt.Errorf("process %s: %s: %w", p.Name, opt, err)
		}
	}
	if p.Role == "" {
		p.Role = p.Name
	}
	return p, nil
}

// autoless maps the wait policy "auto" to "", which means the same.
func autoless(wait string) string {
	if wait == "auto" {
		return ""
	}
	return wait
}

// Format writes t in the file format. For a topology Parse returned,
// Parse(Format()) gives it back exactly. Elsewhere, Format writes an empty
// Role or Wait, and Wait "auto", as the defaults Parse fills in, and cores
// in ascending order as Parse returns them.
func (t *Topology) Format() string {
	var b strings.Builder
	if t.Name != "" {
		fmt.Fprintf(&b, "name %s\n", t.Name)
	}
	fmt.Fprintf(&b, "transport %s\n", t.Transport)
	fmt.Fprintf(&b, "wait %s\n", orAuto(t.Wait))
	if len(t.Processes) > 0 {
		b.WriteByte('\n')
	}
	for _, p := range t.Processes {
		b.WriteString("process " + p.Name)
		if p.Role != "" && p.Role != p.Name {
			b.WriteString(" role " + p.Role)
		}
		if len(p.Cores) > 0 {
			b.WriteString(" cores " + cpu.FormatList(p.Cores))
		}
		if w := autoless(p.Wait); w != "" {
			b.WriteString(" wait " + w)
		}
		if len(p.Args) > 0 {
			b.WriteString(" args " + strings.Join(p.Args, " "))
		}
		b.WriteByte('\n')
	}
	if len(t.Links) > 0 {
		b.WriteByte('\n')
	}
	for _, l := range t.Links {
		fmt.Fprintf(&b, "link %s %s\n", l.A, l.B)
	}
	return b.String()
}

// orAuto writes the wait policy "" as "auto".
func orAuto(wait string) string {
	if wait == "" {
		return "auto"
	}
	return wait
}

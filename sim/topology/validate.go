package topology

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/newtsim/newtsim/internal/cpu"
	"github.com/newtsim/newtsim/ipc"
)

// Validate reports the first thing wrong with t: a malformed or duplicate
// process name, a link naming an unknown process or joining a process to
// itself, an unknown transport, a wait policy that does not parse, more
// than MaxProcesses processes, a negative core, or an argument the file
// format cannot hold.
func (t *Topology) Validate() error {
	if p := t.check(); p != nil {
		return fmt.Errorf("topology %s: %w", t.Name, p)
	}
	return nil
}

// problem is what check found wrong, and where: a process or a link (by
// index), or the topology as a whole (both indexes -1).
type problem struct {
	process, link int
	err           error
}

func (p *problem) Error() string { return p.err.Error() }

// check does Validate's work, saying where the problem lies so that Parse
// can name the line.
func (t *Topology) check() *problem {
	whole := func(err error) *problem { return &problem{process: -1, link: -1, err: err} }
	if t.Name != "" {
		if err := checkTopologyName(t.Name); err != nil {
			return whole(err)
		}
	}
	if err := checkTransport(t.Transport); err != nil {
		return whole(err)
	}
	if err := checkWait(t.Wait); err != nil {
		return whole(err)
	}
	seen := make(map[string]int, len(t.Processes))
	for i, p := range t.Processes {
		bad := func(err error) *problem {
			return &problem{process: i, link: -1, err: fmt.Errorf("process %s: %w", p.Name, err)}
		}
		if i == MaxProcesses {
			return bad(fmt.Errorf("more than %d processes", MaxProcesses))
		}
		if err := checkProcessName(p.Name); err != nil {
			return bad(err)
		}
		if j, dup := seen[p.Name]; dup {
			return bad(fmt.Errorf("duplicate name (process %d has it too)", j+1))
		}
		seen[p.Name] = i
		if p.Role != "" {
			if err := checkRole(p.Role); err != nil {
				return bad(err)
			}
		}
		if err := checkCores(p.Cores); err != nil {
			return bad(err)
		}
		if err := checkWait(p.Wait); err != nil {
			return bad(err)
		}
		for _, a := range p.Args {
			if err := checkArg(a); err != nil {
				return bad(err)
			}
		}
	}
	type pair struct{ a, b string }
	links := make(map[pair]bool, len(t.Links))
	for j, l := range t.Links {
		bad := func(err error) *problem {
			return &problem{process: -1, link: j, err: fmt.Errorf("link %s %s: %w", l.A, l.B, err)}
		}
		for _, n := range []string{l.A, l.B} {
			if n == KernelName {
				return bad(errors.New("the kernel is linked to every process and is not listed"))
			}
			if _, ok := seen[n]; !ok {
				return bad(fmt.Errorf("no process is called %q", n))
			}
		}
		if l.A == l.B {
			return bad(errors.New("links a process to itself"))
		}
		if links[pair{l.A, l.B}] || links[pair{l.B, l.A}] {
			return bad(errors.New("duplicate link"))
		}
		links[pair{l.A, l.B}] = true
	}
	return nil
}

// checkTopologyName checks a topology's name: [A-Za-z0-9._-]{1,64}.
func checkTopologyName(s string) error {
	if !token(s, 64, func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
	}) {
		return fmt.Errorf("topology name %q: want 1 to 64 of A-Z a-z 0-9 . _ -", s)
	}
	return nil
}

// checkProcessName checks a process's name: [a-z0-9-]{1,32}, not "kernel".
func checkProcessName(s string) error {
	if !token(s, 32, lowerDigitDash) {
		return fmt.Errorf("name %q: want 1 to 32 of a-z 0-9 -", s)
	}
	if s == KernelName {
		return errors.New(`name "kernel" is the implicit kernel's`)
	}
	return nil
}

// checkRole checks a role: [a-z0-9-]{1,32}.
func checkRole(s string) error {
	if !token(s, 32, lowerDigitDash) {
		return fmt.Errorf("role %q: want 1 to 32 of a-z 0-9 -", s)
	}
	return nil
}

func lowerDigitDash(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' }

// token reports whether s is 1 to n bytes, every rune allowed by ok.
func token(s string, n int, ok func(rune) bool) bool {
	if s == "" || len(s) > n {
		return false
	}
	for _, r := range s {
		if !ok(r) {
			return false
		}
	}
	return true
}

// checkTransport checks that tr is a known transport.
func checkTransport(tr Transport) error {
	switch tr {
	case Shm, Kernel:
		return nil
	}
	return fmt.Errorf("transport %q: want %s or %s", tr, Shm, Kernel)
}

// checkWait checks a wait policy: "" or "auto" (from the plan), or one
// ipc.ParseWaitPolicy reads ("block", "poll", a duration of at least zero,
// "yield" or "yield:50us").
func checkWait(s string) error {
	if s == "" || s == "auto" {
		return nil
	}
	if _, err := ipc.ParseWaitPolicy(s); err != nil {
		return fmt.Errorf("wait %q: want auto, block, poll, a duration like 20us, yield or yield:50us", s)
	}
	return nil
}

// checkCores checks cores given by hand: CPU ids, each once.
func checkCores(cores []int) error {
	seen := make(map[int]bool, len(cores))
	for _, c := range cores {
		if c < 0 || c > (cpu.Max-1) {
			return fmt.Errorf("core %d is out of range 0-%d", c, (cpu.Max - 1))
		}
		if seen[c] {
			return fmt.Errorf("core %d is listed twice", c)
		}
		seen[c] = true
	}
	return nil
}

// checkArg checks that an argument is one field of the file format.
func checkArg(a string) error {
	if a == "" || strings.ContainsFunc(a, unicode.IsSpace) || strings.Contains(a, "#") {
		return fmt.Errorf("argument %q: want a non-empty word without white space or '#'", a)
	}
	return nil
}

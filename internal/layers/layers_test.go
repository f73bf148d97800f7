package layers

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		pkg     string
		imports []string
		bad     int
	}{
		{"servers", []string{Module + "/servers/sys", Module + "/ipc", Module + "/servers/tcp", "fmt"}, 0},
		{"servers/sys", []string{Module + "/servers"}, 1},
		{"kernel", []string{Module + "/sim/coreplan", Module + "/ipc", Module + "/internal/cpu"}, 1},
		{"internal/cpu", []string{Module + "/ipc"}, 1},
		{"servers/tcp", []string{Module + "/servers/checksum", "time", "net/netip"}, 0},
		{"servers/tcp", []string{Module + "/ipc"}, 1},
		{"servers/udp", []string{"os"}, 1},
		{"apps/httpd", []string{Module + "/sim/bench"}, 1},
		{"sim/bench", []string{Module + "/apps/httpd", Module + "/sim/host"}, 0},
		{"cmd/newtsim", []string{Module + "/sim/launch", Module + "/servers"}, 0},
		{"tools/x", nil, 1},
	}
	for _, tt := range tests {
		if got := Check(Module+"/"+tt.pkg, tt.imports); len(got) != tt.bad {
			t.Errorf("Check(%s, %v) = %q, want %d findings", tt.pkg, tt.imports, got, tt.bad)
		}
	}
}

// TestModule checks every package of the module as `go list` sees it: no
// import points up.
func TestModule(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", Module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		n++
		for _, b := range Check(f[0], f[1:]) {
			t.Error(b)
		}
	}
	if n < 30 {
		t.Fatalf("go list named %d packages; the module has more", n)
	}
}

package boot

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"server", Options{
			Name: "tcp", Role: "tcp", Endpoint: ipc.MakeEndpoint(3, 2), Run: "0a1b2c3d", Transport: "shm",
			Wait: ipc.WaitPolicy{}, Cores: []int{1},
			Peers:  map[string]int{"ip": 4, "syscall": 2},
			Procs:  map[string]int{"syscall": 2, "tcp": 3, "ip": 4, "nic": 5},
			Routes: map[string]string{"nic": "ip"},
		}},
		{"app with arguments", Options{
			Name: "web", Role: "httpd", Endpoint: ipc.MakeEndpoint(9, 1), Run: "ffffffff", Transport: "kernel",
			Wait: ipc.WaitPolicy{Spin: ipc.SpinForever}, Cores: []int{0, 2, 3}, ServiceTimes: true, Trace: true,
			Sandbox: 61000, Filter: "app",
			Peers: map[string]int{"syscall": 2}, Procs: map[string]int{"web": 9}, Routes: map[string]string{},
			Args: []string{"--backend", "exposed", "--", "-x"},
		}},
		{"spin then block", Options{
			Name: "ip", Role: "ip", Endpoint: ipc.MakeEndpoint(4, 1), Transport: "shm",
			Wait:  ipc.WaitPolicy{Spin: 20 * time.Microsecond},
			Peers: map[string]int{}, Procs: map[string]int{}, Routes: map[string]string{},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv := tt.o.Argv()
			got, err := Parse(argv)
			if err != nil {
				t.Fatalf("Parse(%q) = %v", argv, err)
			}
			if !reflect.DeepEqual(got, tt.o) {
				t.Errorf("Parse(Argv()) =\n%+v\nwant\n%+v\n(argv %q)", got, tt.o, argv)
			}
			if again := got.Argv(); !reflect.DeepEqual(again, argv) {
				t.Errorf("Argv is not stable: %q then %q", argv, again)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	base := []string{"--name", "tcp", "--role", "tcp"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no name", []string{"--role", "tcp"}, "required"},
		{"unknown flag", append(base, "--bogus", "1"), "bogus"},
		{"bad wait", append(base, "--wait", "sometimes"), "wait policy"},
		{"bad cores", append(base, "--cores", "1-0"), "--cores"},
		{"cores past the limit", append(base, "--cores", "4096"), "out of range"},
		{"bad peer", append(base, "--peer", "ip"), "--peer"},
		{"peer slot out of range", append(base, "--peer", "ip=64"), "--peer"},
		{"bad route", append(base, "--route", "nic"), "--route"},
		{"endpoint too large", append(base, "--endpoint", "4294967296"), "--endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

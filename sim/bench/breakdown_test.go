package bench

import (
	"slices"
	"testing"
)

func TestBreakdownPaths(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"http message", requestPath("message", "web", 1),
			[]string{"nic", "driver", "pf", "ip", "tcp", "syscall", "web", "syscall", "tcp", "ip", "pf", "driver", "nic"}},
		{"http message, ten in flight", requestPath("message", "web", 10),
			[]string{"nic", "driver", "pf", "ip", "tcp", "syscall", "web", "syscall", "tcp", "ip", "pf", "driver", "nic"}},
		{"http exposed", requestPath("exposed", "web", 1),
			[]string{"nic", "driver", "pf", "ip", "tcp", "web", "tcp", "ip", "pf", "driver", "nic"}},
		{"http exposed, ten in flight", requestPath("exposed", "web", 10),
			[]string{"nic", "driver", "pf", "ip", "tcp", "ip", "pf", "driver", "nic"}},
		{"from the client", clientPath(requestPath("message-direct", "web", 1)),
			[]string{"client", "nic", "driver", "pf", "ip", "tcp", "web", "tcp", "ip", "pf", "driver", "nic", "client"}},
		{"eagain message", callPath("message", "app"), []string{"app", "syscall", "tcp", "syscall", "app"}},
		{"eagain direct", callPath("message-direct", "app"), []string{"app", "tcp", "app"}},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

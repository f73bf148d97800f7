package httpd

import (
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc/boot"
	"github.com/newtsim/newtsim/servers/sys"
)

func TestRoleFlags(t *testing.T) {
	// knobs are the Config fields the flags tested set.
	type knobs struct {
		MaxConns, PressureConns, MinHeaderRate int
		PressureTimeout, HeaderGrace           time.Duration
	}
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want knobs
	}{{
		name: "defaults",
		want: knobs{MaxConns: DefaultMaxConns, PressureTimeout: DefaultPressureTimeout,
			HeaderGrace: DefaultHeaderGrace, MinHeaderRate: DefaultMinHeaderRate},
	}, {
		name: "shedding knobs",
		args: []string{"--max-conns", "100", "--pressure-conns", "80", "--pressure-timeout", "3s",
			"--header-grace", "7s", "--min-header-rate", "-1"},
		want: knobs{MaxConns: 100, PressureConns: 80, PressureTimeout: 3 * time.Second,
			HeaderGrace: 7 * time.Second, MinHeaderRate: -1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Role(&sys.Server{Opts: boot.Options{Args: append([]string{"--dir", dir}, tt.args...)}})
			if err != nil {
				t.Fatal(err)
			}
			c := h.(*role).c
			got := knobs{MaxConns: c.MaxConns, PressureConns: c.PressureConns, PressureTimeout: c.PressureTimeout,
				HeaderGrace: c.HeaderGrace, MinHeaderRate: c.MinHeaderRate}
			if got != tt.want {
				t.Errorf("config %+v, want %+v", got, tt.want)
			}
		})
	}
}

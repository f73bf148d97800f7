package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/newtsim/newtsim/internal/prom"
	"github.com/newtsim/newtsim/kernel"
)

// topMetrics is a tcp server's metrics, with every counter top reads
// scaled by k.
func topMetrics(t *testing.T, k float64) procSample {
	t.Helper()
	text := `# TYPE newtsim_ipc_messages_received_total counter
newtsim_ipc_messages_received_total{peer="ip",transport="shm"} ` + f(100*k) + `
newtsim_ipc_messages_received_total{peer="syscall",transport="shm"} ` + f(50*k) + `
# TYPE newtsim_ipc_messages_sent_total counter
newtsim_ipc_messages_sent_total{peer="ip",transport="shm"} ` + f(40*k) + `
# TYPE newtsim_ipc_sleeps_total counter
newtsim_ipc_sleeps_total{transport="shm"} ` + f(10*k) + `
# TYPE newtsim_ipc_wakeups_total counter
newtsim_ipc_wakeups_total{transport="shm"} ` + f(20*k) + `
# TYPE newtsim_tcp_dropped_total counter
newtsim_tcp_dropped_total{reason="bad-checksum"} ` + f(3*k) + `
newtsim_tcp_dropped_total{reason="no-socket"} 0
# TYPE newtsim_server_send_failures_total counter
newtsim_server_send_failures_total{peer="ip",reason="full"} ` + f(k) + `
newtsim_server_send_failures_total{peer="syscall",reason="full"} ` + f(k) + `
# TYPE newtsim_pool_buffers_in_use gauge
newtsim_pool_buffers_in_use 7
# TYPE newtsim_tcp_connections gauge
newtsim_tcp_connections{state="ESTABLISHED"} 2
newtsim_tcp_connections{state="LISTEN"} 1
newtsim_tcp_connections{state="SYN-SENT"} 0
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total ` + f(0.25*k) + `
`
	fams, err := prom.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return procSample{pid: 42, fams: fams}
}

func f(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

func TestBuildView(t *testing.T) {
	st := &kernel.Status{Run: "0badcafe", Topology: "default", Transport: "shm", Processes: []kernel.ProcStatus{
		{Name: "tcp", Role: "tcp", Pid: 42, Alive: true, MetricsPort: 1, Restarts: 1},
		{Name: "udp", Role: "udp", Pid: 43, Alive: false, Restarts: 2},
	}}
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name      string
		prev, cur procSample
		want      topRow
		wantDrops []dropRow
	}{
		{
			name: "rates over two seconds",
			prev: topMetrics(t, 1), cur: topMetrics(t, 3),
			// Each counter doubled its scale: (3-1)*x over 2 s is x a second.
			want: topRow{Name: "tcp", Role: "tcp", Pid: 42, Alive: true, Restarts: 1, In: 150, Out: 40, Sleeps: 10,
				Wakeups: 20, Drops: 3 + 2, Buffers: 7, CPU: 25},
			wantDrops: []dropRow{{"tcp", "send-full", 6, 2}, {"tcp", "tcp-bad-checksum", 9, 3}},
		},
		{
			name: "a restarted process has no rates",
			prev: func() procSample { s := topMetrics(t, 1); s.pid = 41; return s }(), cur: topMetrics(t, 3),
			want:      topRow{Name: "tcp", Role: "tcp", Pid: 42, Alive: true, Restarts: 1, Buffers: 7},
			wantDrops: []dropRow{{"tcp", "send-full", 6, 0}, {"tcp", "tcp-bad-checksum", 9, 0}},
		},
		{
			name: "a counter going down counts no rate",
			prev: topMetrics(t, 3), cur: topMetrics(t, 1),
			want:      topRow{Name: "tcp", Role: "tcp", Pid: 42, Alive: true, Restarts: 1, Buffers: 7},
			wantDrops: []dropRow{{"tcp", "send-full", 2, 0}, {"tcp", "tcp-bad-checksum", 3, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := buildView(st,
				runSample{at: t0, procs: map[string]procSample{"tcp": tt.prev}},
				runSample{at: t0.Add(2 * time.Second), procs: map[string]procSample{"tcp": tt.cur}})
			if len(v.Rows) != 2 {
				t.Fatalf("%d rows, want 2", len(v.Rows))
			}
			if v.Rows[0] != tt.want {
				t.Errorf("row\n %+v, want\n %+v", v.Rows[0], tt.want)
			}
			if got := v.Rows[1]; got.Err != "dead" || got.Restarts != 2 {
				t.Errorf("dead udp: %+v", got)
			}
			if len(v.Drops) != len(tt.wantDrops) {
				t.Fatalf("drops %+v, want %+v", v.Drops, tt.wantDrops)
			}
			for i := range v.Drops {
				if v.Drops[i] != tt.wantDrops[i] {
					t.Errorf("drop %d: %+v, want %+v", i, v.Drops[i], tt.wantDrops[i])
				}
			}
			if len(v.TCP) != 2 || v.TCP[0] != (stateCount{"ESTABLISHED", 2}) || v.TCP[1] != (stateCount{"LISTEN", 1}) {
				t.Errorf("tcp connections %+v, want ESTABLISHED 2, LISTEN 1", v.TCP)
			}
		})
	}
}

// TestTopWrite: plain lines keep the topology's order and have no escape
// sequence; the terminal's view puts the busiest first and colours dead
// and dropping processes.
func TestTopWrite(t *testing.T) {
	v := &topView{Run: "0badcafe", Topology: "default", Transport: "shm", Over: time.Second, Rows: []topRow{
		{Name: "udp", Role: "udp", Pid: 3, Alive: true, In: 5},
		{Name: "tcp", Role: "tcp", Pid: 4, Alive: true, In: 500, Out: 400, Drops: 1},
		{Name: "ip", Role: "ip", Pid: 5, Err: "dead"},
	}, Drops: []dropRow{{"tcp", "tcp-bad-checksum", 9, 1}}, TCP: []stateCount{{"LISTEN", 1}}}
	order := func(s string) []string {
		var names []string
		for _, l := range strings.Split(s, "\n")[2:5] {
			l = strings.TrimPrefix(l, red)
			l = strings.TrimPrefix(l, yellow)
			names = append(names, strings.Fields(l)[0])
		}
		return names
	}
	var plain, term bytes.Buffer
	v.write(&plain, false)
	v.write(&term, true)
	if strings.Contains(plain.String(), "\x1b") {
		t.Errorf("plain output has escape sequences:\n%q", plain.String())
	}
	if got := strings.Join(order(plain.String()), " "); got != "udp tcp ip" {
		t.Errorf("plain order %s, want the topology's: udp tcp ip\n%s", got, plain.String())
	}
	if got := strings.Join(order(term.String()), " "); got != "tcp udp ip" {
		t.Errorf("terminal order %s, want busiest first: tcp udp ip\n%s", got, term.String())
	}
	for _, want := range []string{red + "ip ", yellow + "tcp ", "tcp connections: LISTEN 1", "tcp-bad-checksum"} {
		if !strings.Contains(term.String(), want) {
			t.Errorf("terminal view lacks %q:\n%s", want, term.String())
		}
	}
}

package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestClassify: each error a request can end with is named for what
// failed, and only failures on an established connection count as lost
// connections.
func TestClassify(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		established bool
		want        outcome
		lost        bool
	}{
		{"success", nil, true, outOK, false},
		{"refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, false, outRefused, false},
		{"unreachable", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, false, outConnect, false},
		{"connect timeout", &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, false, outTimeout, true},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true, outReset, true},
		{"broken pipe", &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, true, outReset, true},
		{"end of file", io.EOF, true, outEOF, true},
		{"short body", io.ErrUnexpectedEOF, true, outEOF, true},
		{"silence", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, true, outTimeout, true},
		{"garbage", errors.New("malformed HTTP response"), true, outProtocol, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err, tt.established)
			if got != tt.want {
				t.Errorf("classify(%v, %v) = %v, want %v", tt.err, tt.established, got, tt.want)
			}
			// A failed connect is never a lost connection, whatever it was.
			if lost := tt.established && got.lost(); lost != (tt.lost && tt.established) {
				t.Errorf("lost = %v", lost)
			}
		})
	}
}

// TestSummarize: the window starts at the kill; recovery is the first
// success among requests started after the process was seen gone; a
// request cut off by the window's end is not counted.
func TestSummarize(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	recs := []reqRecord{
		{start: ms(0), end: ms(5), established: true, out: outOK},       // baseline
		{start: ms(5), end: ms(9), established: true, out: outReset},    // baseline failure
		{start: ms(95), end: ms(101), established: true, out: outOK},    // in flight at the kill, served
		{start: ms(99), end: ms(300), established: true, out: outReset}, // a connection lost
		{start: ms(102), end: ms(103), out: outRefused},                 // a failed connect
		{start: ms(100), end: ms(150), established: true, out: outOK},   // started before the death was seen
		{start: ms(250), end: ms(400), established: true, out: outOK},   // the second new success
		{start: ms(260), end: ms(380), established: true, out: outOK},   // the first new success to end
		{start: ms(270), end: ms(2300), established: true, out: outTimeout},
		{start: ms(900), end: ms(5000), established: true, out: outOK}, // after the window
	}
	w := summarize(recs, ms(100), ms(102), ms(3000))
	want := window{requests: 7, ok: 4, failed: 3, lost: 2, baselineOK: 1, baselineFailed: 1, recovered: ms(380)}
	want.failures[outReset], want.failures[outRefused], want.failures[outTimeout] = 1, 1, 1
	if w != want {
		t.Errorf("summarize:\n got %+v\nwant %+v", w, want)
	}
	if w := summarize(recs, ms(100), 0, ms(3000)); w.recovered != 0 {
		t.Errorf("recovered %v with the process never seen gone", w.recovered)
	}
}

// TestFaultReport: every row is judged against the targets (the failure
// targets only below tcp), a time that never came is NOT met, and the
// JSON rows carry the keys the checks read.
func TestFaultReport(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	r := &FaultReport{Bench: "faults", Rows: []FaultRow{
		{Backend: "message", Server: "ip", RestartMS: f(60), RecoveredMS: f(80), FailedRequests: 0, ConnectionsReset: 0},
		{Backend: "message", Server: "tcp", RestartMS: f(150), RecoveredMS: f(400), FailedRequests: 12, ConnectionsReset: 3},
		{Backend: "exposed", Server: "syscall", RestartMS: f(70), FailedRequests: 8, ConnectionsReset: 8, LeakedShmFiles: 2,
			Failures: map[string]int64{"timeout": 8}, ShmFilesBefore: 17, ShmFilesAfter: 47, Restarts: 8},
	}}
	r.judge()
	met := map[string]bool{}
	for _, c := range r.Checks {
		met[c.Name] = c.Met
	}
	want := map[string]bool{
		"message/ip: restart_ms": true, "message/ip: recovered_ms": true, "message/ip: failed_requests": true,
		"message/ip: connections_reset": true, "message/ip: leaked_processes": true, "message/ip: leaked_shm_files": true,
		"message/tcp: restart_ms": false, "message/tcp: recovered_ms": true,
		"message/tcp: leaked_processes": true, "message/tcp: leaked_shm_files": true,
		"exposed/syscall: restart_ms": true, "exposed/syscall: recovered_ms": false,
		"exposed/syscall: leaked_processes": true, "exposed/syscall: leaked_shm_files": false,
	}
	if len(met) != len(want) {
		t.Errorf("%d checks, want %d: %+v", len(met), len(want), r.Checks)
	}
	for name, w := range want {
		if m, ok := met[name]; !ok || m != w {
			t.Errorf("check %q: met %v (present %v), want %v", name, m, ok, w)
		}
	}
	js := filepath.Join(t.TempDir(), "faults.json")
	if err := r.WriteJSON(js); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(js)
	var raw struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"backend", "server", "restart_ms", "status_ms", "recovered_ms", "failed_requests", "connections_reset",
		"leaked_processes", "leaked_shm_files"} {
		if _, ok := raw.Rows[2][k]; !ok {
			t.Errorf("row lacks %q: %v", k, raw.Rows[2])
		}
	}
	if raw.Rows[2]["recovered_ms"] != nil {
		t.Errorf("recovered_ms of a row that never recovered: %v, want null", raw.Rows[2]["recovered_ms"])
	}
	tab := r.Table()
	for _, s := range []string{"| exposed | syscall | 70.0 | never | never | 8 | 8 | 0 | 2 |", "timeout 8", "NOT met", "11 of 14 checks met",
		"exposed/syscall: no new request succeeded", "grew from 17 before the kill to 47", "restarted 8 times"} {
		if !strings.Contains(tab, s) {
			t.Errorf("table lacks %q:\n%s", s, tab)
		}
	}
}

// TestFaultOptions: defaults, --quick, and names that are refused.
func TestFaultOptions(t *testing.T) {
	var o FaultOptions
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Servers, FaultServers) || !slices.Equal(o.Backends, FaultBackends) || o.Timeout != 10*time.Second {
		t.Errorf("defaults: %+v", o)
	}
	q := FaultOptions{Quick: true}
	if err := q.defaults(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(q.Servers, QuickFaultServers) || q.Timeout >= o.Timeout || q.Warmup >= o.Warmup {
		t.Errorf("quick: %+v", q)
	}
	for _, bad := range []FaultOptions{{Servers: []string{"kernel"}}, {Backends: []string{"linux"}}, {Keepalive: -1}} {
		if err := bad.defaults(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestFaultLoad: the load against a server in this process's own
// namespace: every request succeeds while the server answers; when it
// resets its connections instead, the keep-alive workers' connections
// count as lost and the fresh ones' requests fail; and once it answers
// again, a new request started after that succeeds.
func TestFaultLoad(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("entering a namespace needs root")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var resetting atomic.Bool
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveTwenty(c, &resetting)
		}
	}()
	l, err := startLoad(loadConfig{NS: "/proc/self/ns/net", Target: ln.Addr().String(), Path: "/20B.txt", Size: 20,
		Keepalive: 2, Fresh: 2, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	kill := l.now()
	resetting.Store(true)
	time.Sleep(200 * time.Millisecond)
	resetting.Store(false)
	back := l.now()
	l.countFrom(back)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := l.firstSuccess(); ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	end := l.now()
	recs := l.stop()
	w := summarize(recs, kill, back, end)
	if w.baselineOK == 0 || w.baselineFailed != 0 {
		t.Errorf("before the resets: %d served, %d failed", w.baselineOK, w.baselineFailed)
	}
	if w.lost < 2 || w.failed < w.lost {
		t.Errorf("while resetting: %d failed, %d connections lost (%v); want the 2 kept connections lost at least", w.failed, w.lost, w.failures)
	}
	first, ok := l.firstSuccess()
	if !ok || w.recovered == 0 || w.recovered != first {
		t.Errorf("recovered at %v, first success %v (%v)", w.recovered, first, ok)
	}
}

// serveTwenty answers HTTP requests on c with 20 bytes, or resets c when
// resetting is set.
func serveTwenty(c net.Conn, resetting *atomic.Bool) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if !strings.Contains(string(buf[:n]), "\r\n\r\n") {
			continue
		}
		if resetting.Load() {
			c.(*net.TCPConn).SetLinger(0)
			return
		}
		if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n%s", "twenty bytes, exact\n"); err != nil {
			return
		}
	}
}

package kernel

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
)

var t0 = time.Unix(1000, 0)

// newTestCore: a (1) may send to b (2); c (3) is linked to nobody.
func newTestCore(t *testing.T) *Core {
	t.Helper()
	k := NewCore()
	for i, n := range []string{"a", "b", "c"} {
		if err := k.Add(n, i+1); err != nil {
			t.Fatal(err)
		}
		k.Started(i + 1)
	}
	k.Allow(1, 2)
	k.Allow(2, 1)
	return k
}

func raw(m ipc.Message) []byte {
	b := make([]byte, ipc.MessageSize)
	m.Marshal(b)
	return b
}

func ep(slot int) ipc.Endpoint { return ipc.MakeEndpoint(slot, 1) }

func TestHandle(t *testing.T) {
	tests := []struct {
		name    string
		from    int
		msg     ipc.Message
		n       int // datagram length; 0 means 64
		wantTo  int // -1: nothing delivered
		wantTyp ipc.Type
		reason  Reason
		errno   ipc.Errno
	}{
		{"forward", 1, ipc.Message{Src: ep(1), Dst: ep(2), Type: ipc.Ping}, 0, 2, ipc.Ping, "", 0},
		{"forbidden", 1, ipc.Message{Src: ep(1), Dst: ep(3), Type: ipc.Ping}, 0, 1, ipc.Error, ReasonForbidden, ipc.EPERM},
		{"forged source", 1, ipc.Message{Src: ep(2), Dst: ep(2), Type: ipc.Ping}, 0, 1, ipc.Error, ReasonForged, ipc.EBADSRC},
		{"unknown type", 1, ipc.Message{Src: ep(1), Dst: ep(2), Type: 999}, 0, 1, ipc.Error, ReasonUnknown, ipc.ENOSYS},
		{"short", 1, ipc.Message{Src: ep(1), Dst: ep(2), Type: ipc.Ping}, 10, -1, 0, ReasonShort, 0},
		{"oversized", 1, ipc.Message{Src: ep(1), Dst: ep(2), Type: ipc.Ping}, 65, -1, 0, ReasonOversized, 0},
		{"stale generation", 1, ipc.Message{Src: ep(1), Dst: ipc.MakeEndpoint(2, 7), Type: ipc.Ping}, 0, 1, ipc.Error, ReasonDead, ipc.EDEADSRCDST},
		{"no such slot", 1, ipc.Message{Src: ep(1), Dst: ep(40), Type: ipc.Ping}, 0, 1, ipc.Error, ReasonBadDst, ipc.EDEADSRCDST},
		{"kernel call forwarded", 1, ipc.Message{Src: ep(1), Dst: ep(2), Type: ipc.Register}, 0, 1, ipc.Error, ReasonBadDst, ipc.EINVAL},
		{"a process passing for the kernel", 1, encode(ipc.Message{Src: ep(1), Dst: ep(2)}, kcall.EndpointDown{Slot: 3, Endpoint: ep(3)}), 0, 1, ipc.Error, ReasonKernelOnly, ipc.EPERM},
		{"a forged restart", 1, encode(ipc.Message{Src: ep(1), Dst: ep(2)}, kcall.EndpointUpdate{Slot: 3, Endpoint: ep(3)}), 0, 1, ipc.Error, ReasonKernelOnly, ipc.EPERM},
		{"register", 1, encode(ipc.Message{Src: ep(1), Dst: ipc.Kernel}, kcall.Register{MetricsPort: 9100}), 0, 1, ipc.Ack, "", 0},
		{"register bad port", 1, encode(ipc.Message{Src: ep(1), Dst: ipc.Kernel}, kcall.Register{MetricsPort: 1 << 20}), 0, 1, ipc.Error, ReasonBadRequest, ipc.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newTestCore(t)
			n := tt.n
			if n == 0 {
				n = ipc.MessageSize
			}
			b := raw(tt.msg)
			if n > len(b) {
				b = append(b, make([]byte, n-len(b))...)
			}
			out := k.Handle(tt.from, b[:min(n, len(b))], n, t0)
			if tt.wantTo < 0 {
				if len(out) != 0 {
					t.Fatalf("delivered %v, want nothing", out)
				}
			} else {
				if len(out) != 1 || out[0].To != tt.wantTo || out[0].Msg.Type != tt.wantTyp {
					t.Fatalf("out = %+v, want one %s to %d", out, tt.wantTyp, tt.wantTo)
				}
				if e := ipc.AsKernelError(&out[0].Msg); tt.errno != 0 && e.Errno != tt.errno {
					t.Fatalf("errno %v, want %v", e.Errno, tt.errno)
				}
			}
			if tt.reason != "" && k.Refused[tt.reason] != 1 {
				t.Fatalf("refused %v, want one %s", k.Refused, tt.reason)
			}
			if tt.reason == "" && len(k.Refused) != 0 {
				t.Fatalf("refused %v, want none", k.Refused)
			}
		})
	}
}

// TestTypeTable: the kernel holds every forwarded message to the type
// table (ipc.MaySend), by the classes of its sender and destination.
func TestTypeTable(t *testing.T) {
	const app, ip, tcp, syscall = 1, 2, 3, 4
	newCore := func(t *testing.T) *Core {
		k := NewCore()
		for i, r := range []string{"app", "ip", "tcp", "syscall"} {
			slot := i + 1
			if err := k.Add(r, slot); err != nil {
				t.Fatal(err)
			}
			k.SetClass(slot, ipc.ClassOf(r))
			k.Started(slot)
		}
		for a := 1; a <= 4; a++ {
			for b := 1; b <= 4; b++ {
				if a != b {
					k.Allow(a, b)
				}
			}
		}
		return k
	}
	tests := []struct {
		typ      ipc.Type
		from, to int
		reason   Reason // "": forwarded
	}{
		{ipc.Shutdown, app, tcp, ReasonKernelOnly},
		{ipc.Alarm, app, tcp, ReasonKernelOnly},
		{ipc.Notification, app, tcp, ReasonKernelOnly},
		{ipc.EndpointUpdate, ip, tcp, ReasonKernelOnly},
		{ipc.EndpointDown, syscall, tcp, ReasonKernelOnly},
		{ipc.Ack, tcp, app, ReasonKernelOnly},
		{ipc.Error, tcp, app, ReasonKernelOnly},
		{ipc.Datagram, app, tcp, ReasonWrongSender},
		{ipc.Datagram, syscall, tcp, ReasonWrongSender},
		{ipc.Datagram, ip, tcp, ""},
		{ipc.Datagram, tcp, ip, ""},
		{ipc.SocketReply, app, syscall, ReasonWrongSender},
		{ipc.SocketReply, ip, syscall, ReasonWrongSender},
		{ipc.SocketReply, tcp, syscall, ""},
		{ipc.SocketReply, syscall, app, ""},
		{ipc.FrameRx, app, ip, ReasonWrongSender},
		{ipc.ICMPError, app, tcp, ReasonWrongSender},
		{ipc.Unreachable, app, ip, ReasonWrongSender},
		{ipc.Socket, tcp, syscall, ReasonWrongSender},
		{ipc.Socket, app, syscall, ""},
		{ipc.Ping, app, tcp, ""},
		{ipc.BufFree, app, syscall, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s from %d to %d", tt.typ, tt.from, tt.to), func(t *testing.T) {
			k := newCore(t)
			out := k.Handle(tt.from, raw(ipc.Message{Src: ep(tt.from), Dst: ep(tt.to), Type: tt.typ}), ipc.MessageSize, t0)
			if len(out) != 1 {
				t.Fatalf("out = %+v, want one message", out)
			}
			if tt.reason == "" {
				if out[0].To != tt.to || out[0].Msg.Type != tt.typ || len(k.Refused) != 0 {
					t.Fatalf("out = %+v, refused %v: want it forwarded", out, k.Refused)
				}
				return
			}
			if out[0].To != tt.from || out[0].Msg.Type != ipc.Error || ipc.AsKernelError(&out[0].Msg).Errno != ipc.EPERM {
				t.Fatalf("out = %+v, want EPERM back to the sender", out)
			}
			if k.Refused[tt.reason] != 1 || len(k.Refused) != 1 {
				t.Fatalf("refused %v, want one %s", k.Refused, tt.reason)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	k := newTestCore(t)
	m := ipc.Message{Src: ep(3), Dst: ipc.Kernel, Type: ipc.Lookup}
	m.SetName("b")
	out := k.Handle(3, raw(m), ipc.MessageSize, t0)
	var ack kcall.Ack
	if len(out) == 1 {
		ack.Decode(&out[0].Msg)
	}
	if len(out) != 1 || out[0].Msg.Type != ipc.Ack || ack.Endpoint != ep(2) || !out[0].Reply {
		t.Fatalf("lookup b: %+v", out)
	}
	m.SetName("nope")
	out = k.Handle(3, raw(m), ipc.MessageSize, t0)
	if len(out) != 1 || out[0].Msg.Type != ipc.Error || ipc.AsKernelError(&out[0].Msg).Errno != ipc.ENOENT {
		t.Fatalf("lookup nope: %+v", out)
	}
}

func TestRestartBumpsGeneration(t *testing.T) {
	k := newTestCore(t)
	k.Died(2)
	m := ipc.Message{Src: ep(1), Dst: ep(2), Type: ipc.Ping}
	if out := k.Handle(1, raw(m), 64, t0); len(out) != 1 || out[0].Msg.Type != ipc.Error {
		t.Fatalf("send to dead process: %+v", out)
	}
	nep := k.Started(2)
	if nep.Generation() != 2 {
		t.Fatalf("new endpoint %s, want generation 2", nep)
	}
	m.Dst = nep
	if out := k.Handle(1, raw(m), 64, t0); len(out) != 1 || out[0].To != 2 {
		t.Fatalf("send to new incarnation: %+v", out)
	}
	if got := k.Peers(2); len(got) != 1 || got[0] != 1 {
		t.Fatalf("peers of 2 = %v, want [1]", got)
	}
}

func TestAlarms(t *testing.T) {
	k := newTestCore(t)
	set := func(slot int, d time.Duration, cookie uint64) {
		m := encode(ipc.Message{Src: ep(slot), Dst: ipc.Kernel}, kcall.SetAlarm{After: d, Cookie: cookie})
		if out := k.Handle(slot, raw(m), 64, t0); len(out) != 0 {
			t.Fatalf("set alarm answered %+v; it is asynchronous, with no reply", out)
		}
	}
	set(1, 30*time.Millisecond, 11)
	set(2, 10*time.Millisecond, 22)
	set(3, 20*time.Millisecond, 33)
	set(3, 50*time.Millisecond, 34) // replaces 3's alarm
	if at, ok := k.NextAlarm(); !ok || !at.Equal(t0.Add(10*time.Millisecond)) {
		t.Fatalf("next alarm %v %v", at, ok)
	}
	if out := k.Expire(t0.Add(5 * time.Millisecond)); len(out) != 0 {
		t.Fatalf("early expiry: %+v", out)
	}
	out := k.Expire(t0.Add(30 * time.Millisecond))
	cookie := func(o Out) uint64 {
		var a kcall.Alarm
		a.Decode(&o.Msg)
		return a.Cookie
	}
	if len(out) != 2 || out[0].To != 2 || cookie(out[0]) != 22 || out[1].To != 1 || cookie(out[1]) != 11 {
		t.Fatalf("expired %+v", out)
	}
	k.Died(3) // a dead process's alarm goes with it
	if _, ok := k.NextAlarm(); ok {
		t.Fatal("alarm of a dead process still set")
	}
}

func TestNotificationsCoalesce(t *testing.T) {
	k := newTestCore(t)
	k.Allow(3, 2)
	n1 := k.Handle(1, raw(ipc.Message{Src: ep(1), Dst: ep(2), Type: ipc.Notify}), 64, t0)
	n2 := k.Handle(3, raw(ipc.Message{Src: ep(3), Dst: ep(2), Type: ipc.Notify}), 64, t0)
	if len(n1) != 1 || n1[0].Msg.Type != ipc.Notification || len(n2) != 0 {
		t.Fatalf("notify: %+v then %+v; want one Notification", n1, n2)
	}
	m := n1[0].Msg
	k.TakeNotifications(2, &m)
	var n kcall.Notification
	if n.Decode(&m); n.Sources != 1<<1|1<<3 {
		t.Fatalf("bitmap %b, want slots 1 and 3", n.Sources)
	}
	if n := k.Handle(1, raw(ipc.Message{Src: ep(1), Dst: ep(2), Type: ipc.Notify}), 64, t0); len(n) != 1 {
		t.Fatalf("after delivery a new notify must produce a Notification: %+v", n)
	}
}

func FuzzHandle(f *testing.F) {
	f.Add(1, raw(ipc.Message{Src: ep(1), Dst: ep(2), Type: ipc.Ping}))
	f.Add(1, raw(encode(ipc.Message{Src: ep(1), Dst: ipc.Kernel}, kcall.SetAlarm{After: 1000})))
	f.Add(2, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, from int, b []byte) {
		k := newTestCore(t)
		if from < 0 {
			from = -from
		}
		from %= 5
		in := b
		if len(in) > ipc.MessageSize {
			in = in[:ipc.MessageSize]
		}
		for _, o := range k.Handle(from, in, len(b), t0) {
			if k.Entry(o.To) == nil {
				t.Fatalf("delivery to empty slot %d", o.To)
			}
			if o.To != from && !k.CanSend(from, o.To) {
				t.Fatalf("delivered %v from %d to %d against the privilege mask", o.Msg.Type, from, o.To)
			}
		}
		k.Expire(t0.Add(48 * time.Hour))
	})
}

// TestRestartPolicy drives the restart policy on a fake clock: each step
// happens at t0 plus at, and an exit wants its restart after want (-1: no
// restart).
// A death is announced at once to every process alive, peer or not,
// naming the endpoint that died; the dead and the kernel are not told.
func TestObituaries(t *testing.T) {
	k := newTestCore(t)
	k.Exited(3, t0) // c: dead, told nothing about b
	if _, again := k.Exited(2, t0); !again {
		t.Fatal("no restart scheduled")
	}
	out := k.Obituaries(2)
	if len(out) != 1 || out[0].To != 1 || out[0].Reply {
		t.Fatalf("announcements %+v, want one to a (slot 1) only", out)
	}
	var d kcall.EndpointDown
	d.Decode(&out[0].Msg)
	if m := out[0].Msg; m.Type != ipc.EndpointDown || m.Src != ipc.Kernel || m.Dst != ep(1) || d != (kcall.EndpointDown{Slot: 2, Endpoint: ep(2)}) {
		t.Fatalf("announcement %v (%+v), want EndpointDown of slot 2 endpoint %s from the kernel to %s", &m, d, ep(2), ep(1))
	}
	// c is told of a's death, once it is back, though they are not linked.
	k.Started(3)
	k.Exited(1, t0)
	if out := k.Obituaries(1); len(out) != 1 || out[0].To != 3 {
		t.Fatalf("announcements %+v, want one to c (slot 3), linked to nobody", out)
	}
}

func TestRestartPolicy(t *testing.T) {
	const ms = time.Millisecond
	type step struct {
		at   time.Duration
		op   string // launch, exit, fail (a start that failed), stop
		slot int
		want time.Duration // exit: the delay before the restart; -1: none
	}
	tests := []struct {
		name         string
		steps        []step
		wantRestarts int           // of slot 1
		wantNext     time.Duration // when the next restart is due; -1: none
	}{
		{"long run: at once", []step{
			{0, "launch", 1, 0}, {10 * time.Second, "exit", 1, 0},
		}, 1, 10 * time.Second},
		{"quick deaths wait, doubling", []step{
			{0, "launch", 1, 0}, {100 * ms, "exit", 1, 50 * ms},
			{200 * ms, "launch", 1, 0}, {300 * ms, "exit", 1, 100 * ms},
			{500 * ms, "launch", 1, 0}, {600 * ms, "exit", 1, 200 * ms},
		}, 3, 800 * ms},
		{"a long run, then quick deaths", []step{
			{0, "launch", 1, 0}, {2 * time.Second, "exit", 1, 0},
			{2 * time.Second, "launch", 1, 0}, {2100 * ms, "exit", 1, 50 * ms},
			{2150 * ms, "launch", 1, 0}, {2200 * ms, "exit", 1, 100 * ms},
		}, 3, 2300 * ms},
		{"doubling stops at five seconds", []step{
			{0, "launch", 1, 0}, {0, "exit", 1, 50 * ms},
			{0, "launch", 1, 0}, {0, "exit", 1, 100 * ms},
			{0, "launch", 1, 0}, {0, "exit", 1, 200 * ms},
			{0, "launch", 1, 0}, {0, "exit", 1, 400 * ms},
			{0, "launch", 1, 0}, {0, "exit", 1, 800 * ms},
			{0, "launch", 1, 0}, {0, "exit", 1, 1600 * ms},
			{0, "launch", 1, 0}, {0, "exit", 1, 3200 * ms},
			{0, "launch", 1, 0}, {0, "exit", 1, 5 * time.Second},
			{0, "launch", 1, 0}, {0, "exit", 1, 5 * time.Second},
		}, 9, 5 * time.Second},
		{"a run of a second or more makes it immediate again", []step{
			{0, "launch", 1, 0}, {0, "exit", 1, 50 * ms},
			{100 * ms, "launch", 1, 0}, {200 * ms, "exit", 1, 100 * ms},
			{400 * ms, "launch", 1, 0}, {1400 * ms, "exit", 1, 0},
		}, 3, 1400 * ms},
		{"a failed start is retried after the same delay", []step{
			{0, "launch", 1, 0}, {0, "exit", 1, 50 * ms},
			{100 * ms, "fail", 1, 0},
		}, 1, 150 * ms},
		{"a failed immediate start is retried after the first delay", []step{
			{0, "launch", 1, 0}, {5 * time.Second, "exit", 1, 0},
			{5 * time.Second, "fail", 1, 0},
		}, 1, 5*time.Second + 50*ms},
		{"stopping drops what is scheduled", []step{
			{0, "launch", 1, 0}, {0, "exit", 1, 50 * ms},
			{50 * ms, "stop", 0, 0},
		}, 1, -1},
		{"nothing restarts while stopping", []step{
			{0, "launch", 1, 0}, {0, "launch", 2, 0},
			{50 * ms, "stop", 0, 0},
			{60 * ms, "exit", 1, -1}, {70 * ms, "exit", 2, -1},
			{80 * ms, "fail", 2, 0},
		}, 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newTestCore(t)
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				switch s.op {
				case "launch":
					k.Started(s.slot)
					k.Launched(s.slot, now)
				case "exit":
					d, ok := k.Exited(s.slot, now)
					if s.want < 0 && ok || s.want >= 0 && (!ok || d != s.want) {
						t.Fatalf("step %d: exit of %d = %v, %v; want %v", i, s.slot, d, ok, s.want)
					}
					if e := k.Entry(s.slot); e.Alive || e.Ready {
						t.Fatalf("step %d: %d still alive after exit: %+v", i, s.slot, e)
					}
				case "fail":
					k.Retry(s.slot, now)
				case "stop":
					k.Stop()
				}
			}
			if got := k.Restarts(1); got != tt.wantRestarts {
				t.Errorf("restarts = %d, want %d", got, tt.wantRestarts)
			}
			next, ok := k.NextRestart()
			if tt.wantNext < 0 {
				if ok {
					t.Fatalf("next restart at %v, want none", next.Sub(t0))
				}
				return
			}
			if !ok || !next.Equal(t0.Add(tt.wantNext)) {
				t.Fatalf("next restart at %v (%v), want %v", next.Sub(t0), ok, tt.wantNext)
			}
		})
	}
}

// TestRestartDue: Due hands over each due restart once, in slot order, and
// nothing early.
func TestRestartDue(t *testing.T) {
	k := newTestCore(t)
	for slot := 1; slot <= 3; slot++ {
		k.Launched(slot, t0)
	}
	k.Exited(3, t0.Add(2*time.Second))        // long run: due at once, 2 s
	k.Exited(1, t0.Add(2*time.Second))        // due at 2 s
	k.Exited(2, t0.Add(500*time.Millisecond)) // quick: due at 0.55 s
	if due := k.Due(t0.Add(549 * time.Millisecond)); len(due) != 0 {
		t.Fatalf("due early: %v", due)
	}
	if due := k.Due(t0.Add(550 * time.Millisecond)); len(due) != 1 || due[0] != 2 {
		t.Fatalf("due at 0.55 s: %v, want [2]", due)
	}
	if next, ok := k.NextRestart(); !ok || !next.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("next restart at %v", next.Sub(t0))
	}
	if due := k.Due(t0.Add(time.Hour)); len(due) != 2 || due[0] != 1 || due[1] != 3 {
		t.Fatalf("due later: %v, want [1 3]", due)
	}
	if due := k.Due(t0.Add(2 * time.Hour)); len(due) != 0 {
		t.Fatalf("handed over twice: %v", due)
	}
	if _, ok := k.NextRestart(); ok {
		t.Fatal("a restart is still scheduled")
	}
}

// encode returns m carrying body.
func encode(m ipc.Message, body interface{ Encode(*ipc.Message) }) ipc.Message {
	body.Encode(&m)
	return m
}

// Deposits: only a transport deposits, only for an application it is
// linked to and that is alive, within MaxDeposits; only that application
// collects it, once; whatever is refused, or attached to anything else, is
// let go (TakeReleased), and every refusal is counted.
func TestDeposits(t *testing.T) {
	const app, ip, tcp, syscall, app2, app3 = 1, 2, 3, 4, 5, 6
	k := NewCore()
	for i, r := range []string{"app", "ip", "tcp", "syscall", "app2", "app3"} {
		slot := i + 1
		if err := k.Add(r, slot); err != nil {
			t.Fatal(err)
		}
		k.SetClass(slot, ipc.ClassOf(r))
		k.Started(slot)
	}
	for _, pair := range [][2]int{{tcp, app}, {tcp, app2}, {tcp, syscall}, {ip, app}, {syscall, app}, {app, app2}} {
		k.Allow(pair[0], pair[1])
		k.Allow(pair[1], pair[0])
	}
	deposit := func(from int, to ipc.Endpoint, id uint64) ipc.Message {
		return encode(ipc.Message{Src: ep(from), Dst: ipc.Kernel}, kcall.Deposit{App: to, ID: id})
	}
	collect := func(from, server int, id uint64) ipc.Message {
		return encode(ipc.Message{Src: ep(from), Dst: ipc.Kernel}, kcall.Collect{From: ep(server), ID: id})
	}
	steps := []struct {
		name   string
		from   int
		msg    ipc.Message
		file   int
		reason Reason // "": answered with Ack
		gone   []int  // descriptors let go
		handed int    // descriptor the Ack carries (0: none)
	}{
		{"tcp deposits for app", tcp, deposit(tcp, ep(app), 1), 100, "", nil, 0},
		{"again under the same id", tcp, deposit(tcp, ep(app), 1), 101, ReasonBadRequest, []int{101}, 0},
		{"from an application", app, deposit(app, ep(app2), 2), 102, ReasonWrongSender, []int{102}, 0},
		{"from syscall", syscall, deposit(syscall, ep(app), 2), 103, ReasonWrongSender, []int{103}, 0},
		{"from ip", ip, deposit(ip, ep(app), 2), 104, ReasonWrongSender, []int{104}, 0},
		{"for a server", tcp, deposit(tcp, ep(syscall), 2), 105, ReasonBadRequest, []int{105}, 0},
		{"without a descriptor", tcp, deposit(tcp, ep(app), 2), -1, ReasonBadRequest, nil, 0},
		{"for an application not linked", tcp, deposit(tcp, ep(app3), 2), 106, ReasonForbidden, []int{106}, 0},
		{"for a dead incarnation", tcp, deposit(tcp, ipc.MakeEndpoint(app, 2), 2), 107, ReasonDead, []int{107}, 0},
		{"collected by the wrong application", app2, collect(app2, tcp, 1), -1, ReasonNoDeposit, nil, 0},
		{"collected by tcp", tcp, collect(tcp, tcp, 1), -1, ReasonWrongSender, nil, 0},
		{"collected under another id", app, collect(app, tcp, 9), -1, ReasonNoDeposit, nil, 0},
		{"collected", app, collect(app, tcp, 1), -1, "", nil, 100},
		{"collected twice", app, collect(app, tcp, 1), -1, ReasonNoDeposit, nil, 0},
		{"collect with a descriptor", app, collect(app, tcp, 1), 108, ReasonNoDeposit, []int{108}, 0},
	}
	for _, st := range steps {
		before := maps.Clone(k.Refused)
		out := k.HandleFile(st.from, raw(st.msg), ipc.MessageSize, st.file, t0)
		if len(out) != 1 || out[0].To != st.from || !out[0].Reply {
			t.Fatalf("%s: out = %+v, want one reply", st.name, out)
		}
		fd, ok := out[0].File()
		switch {
		case st.reason == "" && out[0].Msg.Type != ipc.Ack:
			t.Errorf("%s: %v, want Ack", st.name, &out[0].Msg)
		case st.reason != "" && (out[0].Msg.Type != ipc.Error || k.Refused[st.reason] != before[st.reason]+1):
			t.Errorf("%s: %v, refused %v; want refused %s", st.name, &out[0].Msg, k.Refused, st.reason)
		case st.handed != 0 && (!ok || fd != st.handed), st.handed == 0 && ok:
			t.Errorf("%s: the reply carries %d, %v; want %d", st.name, fd, ok, st.handed)
		}
		if st.file == 108 && k.Refused[ReasonStrayFile] != 1 {
			t.Errorf("%s: stray descriptors %d, want 1", st.name, k.Refused[ReasonStrayFile])
		}
		if got := k.TakeReleased(); !slices.Equal(got, st.gone) {
			t.Errorf("%s: let go %v, want %v", st.name, got, st.gone)
		}
	}

	// The bound, then deaths: an application's deposits go with it, and a
	// server's with it.
	for i := range MaxDeposits {
		if out := k.HandleFile(tcp, raw(deposit(tcp, ep(app), uint64(10+i))), ipc.MessageSize, 1000+i, t0); out[0].Msg.Type != ipc.Ack {
			t.Fatalf("deposit %d: %v", i, &out[0].Msg)
		}
	}
	if out := k.HandleFile(tcp, raw(deposit(tcp, ep(app), 5)), ipc.MessageSize, 99, t0); out[0].Msg.Type != ipc.Error || k.Refused[ReasonDepositsFull] != 1 {
		t.Fatalf("past the bound: %v, refused %v", &out[0].Msg, k.Refused)
	}
	k.TakeReleased()
	k.HandleFile(tcp, raw(deposit(tcp, ep(app2), 1)), ipc.MessageSize, 50, t0)
	k.Died(app)
	if got := k.TakeReleased(); len(got) != MaxDeposits || k.Deposits(app) != 0 || k.Deposits(app2) != 1 {
		t.Fatalf("app died: let go %d, kept %d for it and %d for app2", len(got), k.Deposits(app), k.Deposits(app2))
	}
	k.Died(tcp)
	if got := k.TakeReleased(); !slices.Equal(got, []int{50}) || k.Deposits(app2) != 0 {
		t.Fatalf("tcp died: let go %v, kept %d for app2", got, k.Deposits(app2))
	}
}

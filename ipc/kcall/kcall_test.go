package kcall

import (
	"testing"
	"time"

	"github.com/newtsim/newtsim/ipc"
)

func TestRoundTrip(t *testing.T) {
	ep := ipc.MakeEndpoint(5, 3)
	var m ipc.Message
	check := func(name string, typ ipc.Type, ok bool) {
		t.Helper()
		if m.Type != typ || !ok {
			t.Errorf("%s: %v does not round-trip", name, &m)
		}
	}
	Register{MetricsPort: 9100}.Encode(&m)
	var r Register
	r.Decode(&m)
	check("register", ipc.Register, r.MetricsPort == 9100)
	Ack{Endpoint: ep}.Encode(&m)
	var a Ack
	a.Decode(&m)
	check("ack", ipc.Ack, a.Endpoint == ep)
	SetAlarm{After: 3 * time.Millisecond, Cookie: 42}.Encode(&m)
	var sa SetAlarm
	sa.Decode(&m)
	check("set-alarm", ipc.SetAlarm, sa == SetAlarm{After: 3 * time.Millisecond, Cookie: 42})
	Alarm{Cookie: 42}.Encode(&m)
	var al Alarm
	al.Decode(&m)
	check("alarm", ipc.Alarm, al.Cookie == 42)
	Notification{Sources: 1<<1 | 1<<3}.Encode(&m)
	var n Notification
	n.Decode(&m)
	check("notification", ipc.Notification, n.Sources == 1<<1|1<<3)
	EndpointUpdate{Slot: 5, Endpoint: ep}.Encode(&m)
	var u EndpointUpdate
	u.Decode(&m)
	check("endpoint-update", ipc.EndpointUpdate, u == EndpointUpdate{Slot: 5, Endpoint: ep})
	EndpointDown{Slot: 5, Endpoint: ep}.Encode(&m)
	var d EndpointDown
	d.Decode(&m)
	check("endpoint-down", ipc.EndpointDown, d == EndpointDown{Slot: 5, Endpoint: ep})
	Deposit{App: ep, ID: 7}.Encode(&m)
	var dp Deposit
	dp.Decode(&m)
	check("deposit", ipc.Deposit, dp == Deposit{App: ep, ID: 7})
	Collect{From: ep, ID: 7}.Encode(&m)
	var c Collect
	c.Decode(&m)
	check("collect", ipc.Collect, c == Collect{From: ep, ID: 7})
	e := ipc.KernelError{Errno: ipc.ENOENT, Type: ipc.Lookup, Dst: ep}
	e.Encode(&m)
	check("error", ipc.Error, *ipc.AsKernelError(&m) == e)
	ipc.BenchRequest{Count: 1000}.Encode(&m)
	var b ipc.BenchRequest
	b.Decode(&m)
	check("bench", ipc.Bench, b.Count == 1000)
}

// Encode clears what an earlier message left in the arguments.
func TestEncodeClears(t *testing.T) {
	m := ipc.Message{Arg: [ipc.NumArgs]uint64{1, 2, 3, 4, 5, 6}}
	Alarm{Cookie: 9}.Encode(&m)
	if m.Arg != [ipc.NumArgs]uint64{9} {
		t.Fatalf("arguments %v", m.Arg)
	}
}

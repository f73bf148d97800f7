package ipc

import "testing"

func TestMaySend(t *testing.T) {
	tests := []struct {
		typ      Type
		from, to Class
		want     Refusal
	}{
		{Shutdown, ClassApp, ClassTransport, RefuseKernelOnly},
		{Shutdown, ClassIP, ClassTransport, RefuseKernelOnly},
		{Shutdown, ClassKernel, ClassTransport, ""},
		{Alarm, ClassSyscall, ClassApp, RefuseKernelOnly},
		{Ack, ClassTransport, ClassApp, RefuseKernelOnly},
		{EndpointUpdate, ClassApp, ClassSyscall, RefuseKernelOnly},
		{EndpointDown, ClassApp, ClassSyscall, RefuseKernelOnly},
		{Notification, ClassApp, ClassTransport, RefuseKernelOnly},
		{Datagram, ClassIP, ClassTransport, ""},
		{Datagram, ClassTransport, ClassIP, ""},
		{Datagram, ClassApp, ClassTransport, RefuseWrongSender},
		{Datagram, ClassLink, ClassTransport, RefuseWrongSender},
		{Datagram, ClassTransport, ClassTransport, RefuseWrongSender},
		{SocketReply, ClassTransport, ClassSyscall, ""},
		{SocketReply, ClassTransport, ClassApp, ""},
		{SocketReply, ClassSyscall, ClassApp, ""},
		{SocketReply, ClassApp, ClassSyscall, RefuseWrongSender},
		{SocketReply, ClassApp, ClassApp, RefuseWrongSender},
		{FrameRx, ClassLink, ClassLink, ""},
		{FrameTx, ClassIP, ClassLink, ""},
		{FrameRx, ClassApp, ClassIP, RefuseWrongSender},
		{Socket, ClassApp, ClassSyscall, ""},
		{Socket, ClassTransport, ClassSyscall, RefuseWrongSender},
		{Ping, ClassApp, ClassTransport, ""},
		{BufFree, ClassApp, ClassSyscall, ""},
		{Deposit, ClassTransport, ClassKernel, ""},
		{Deposit, ClassApp, ClassKernel, RefuseWrongSender},
		{Deposit, ClassSyscall, ClassKernel, RefuseWrongSender},
		{Deposit, ClassTransport, ClassApp, RefuseWrongSender},
		{Collect, ClassApp, ClassKernel, ""},
		{Collect, ClassTransport, ClassKernel, RefuseWrongSender},
		{Collect, ClassApp, ClassTransport, RefuseWrongSender},
		{Type(999), ClassApp, ClassSyscall, ""},
	}
	for _, tt := range tests {
		if got := MaySend(tt.typ, tt.from, tt.to); got != tt.want {
			t.Errorf("MaySend(%s, %s, %s) = %q, want %q", tt.typ, tt.from, tt.to, got, tt.want)
		}
	}
}

func TestClassOf(t *testing.T) {
	for role, want := range map[string]Class{"kernel": ClassKernel, "nic": ClassLink, "pf": ClassLink,
		"ip": ClassIP, "tcp": ClassTransport, "udp": ClassTransport, "syscall": ClassSyscall, "httpd": ClassApp, "hostile": ClassApp} {
		if got := ClassOf(role); got != want {
			t.Errorf("ClassOf(%q) = %s, want %s", role, got, want)
		}
	}
}

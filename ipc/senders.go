package ipc

// Class is what a process is, as far as the message types it may send are
// concerned: the one table below (MaySend) says, for each message type,
// which class may send it to which. Its role decides a process's class
// (ClassOf).
type Class uint8

// Process classes.
const (
	// ClassApp is an application, and any role the table does not name
	// (diagnostics, benchmarks' measuring sides): the least trusted.
	ClassApp Class = iota
	// ClassKernel is the kernel, slot 0.
	ClassKernel
	// ClassLink is the packet path below ip: nic, driver, pf, and a
	// client host on the wire.
	ClassLink
	// ClassIP is the ip server.
	ClassIP
	// ClassTransport is a transport server: tcp or udp.
	ClassTransport
	// ClassSyscall is the syscall server.
	ClassSyscall
)

var classNames = [...]string{ClassApp: "app", ClassKernel: "kernel", ClassLink: "link",
	ClassIP: "ip", ClassTransport: "transport", ClassSyscall: "syscall"}

// String names the class.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "class(?)"
}

// ClassOf is the class of a process of the given role; "kernel" is the
// kernel's.
func ClassOf(role string) Class {
	switch role {
	case "kernel":
		return ClassKernel
	case "nic", "driver", "pf", "clienthost":
		return ClassLink
	case "ip":
		return ClassIP
	case "tcp", "udp":
		return ClassTransport
	case "syscall":
		return ClassSyscall
	}
	return ClassApp
}

// Refusal says why MaySend refuses a message; "" lets it through. Every
// refusal is counted under its value by whoever enforces it: the kernel on
// the kernel transport, the receiving server on shared memory.
type Refusal string

// Refusals of the type table.
const (
	// RefuseKernelOnly: a type only the kernel sends (Ack, Error, Alarm,
	// Notification, EndpointUpdate, Shutdown, EndpointDown) from a process.
	RefuseKernelOnly Refusal = "kernel-only"
	// RefuseWrongSender: a type the sender's class may not send to the
	// receiver's (a Datagram to a transport but from ip, a SocketReply but
	// from a transport or syscall, ...).
	RefuseWrongSender Refusal = "wrong-sender"
	// RefuseNotHolder: a BufFree for a buffer that was never given to its
	// sender (checked by the buffer's owner, see pool.Holders).
	RefuseNotHolder Refusal = "not-holder"
)

// Refusals lists every refusal of the type table, for metrics.
var Refusals = []Refusal{RefuseKernelOnly, RefuseWrongSender, RefuseNotHolder}

// pair is one permitted (sender class, receiver class) of a type.
type pair struct{ from, to Class }

// any is a wildcard class in a pair.
const anyClass Class = 255

// senders is the type table: for each type it restricts, the pairs of
// classes that may carry it. A type not listed may go between any two
// processes a privilege mask links (Ping, Pong, Bench, BufFree, whose
// holder the owner checks, Doorbell, Wake, Notify). Kernel calls go to the
// kernel, which answers them itself.
var senders = map[Type][]pair{
	Ack:            {{ClassKernel, anyClass}},
	Error:          {{ClassKernel, anyClass}},
	Alarm:          {{ClassKernel, anyClass}},
	Notification:   {{ClassKernel, anyClass}},
	EndpointUpdate: {{ClassKernel, anyClass}},
	Shutdown:       {{ClassKernel, anyClass}},
	EndpointDown:   {{ClassKernel, anyClass}},
	// Frames travel between the link classes and ip only.
	FrameRx: {{ClassLink, anyClass}, {ClassIP, anyClass}},
	FrameTx: {{ClassLink, anyClass}, {ClassIP, anyClass}},
	// A Datagram goes from ip up to a transport, or from a transport down
	// to ip; never from an application, nor around ip and pf.
	Datagram:    {{ClassIP, ClassTransport}, {ClassTransport, ClassIP}},
	Unreachable: {{ClassTransport, ClassIP}},
	ICMPError:   {{ClassIP, ClassTransport}},
	// Socket calls come from applications (to syscall, or to tcp for an
	// exposed socket) and from syscall passing them on.
	Socket: {{ClassApp, ClassSyscall}, {ClassApp, ClassTransport}, {ClassSyscall, ClassTransport}},
	// Replies come from the transports, to syscall or to an application
	// (an exposed socket's direct call), and from syscall passing them on
	// or refusing a call itself.
	SocketReply: {{ClassTransport, ClassSyscall}, {ClassTransport, ClassApp}, {ClassSyscall, ClassApp}},
	// A descriptor is deposited with the kernel by a transport (tcp's
	// exposed socket regions) and collected from it by an application;
	// neither goes to anyone but the kernel.
	Deposit: {{ClassTransport, ClassKernel}},
	Collect: {{ClassApp, ClassKernel}},
}

const numClasses = int(ClassSyscall) + 1

// permit is the table compiled for a lookup per message: for a restricted
// type, permit[t][from] has bit to set for each receiver class allowed.
var permit = func() (p [MaxType + 1]*[numClasses]uint8) {
	for t, pairs := range senders {
		row := new([numClasses]uint8)
		for _, pr := range pairs {
			mask := uint8(1<<numClasses - 1)
			if pr.to != anyClass {
				mask = 1 << pr.to
			}
			row[pr.from] |= mask
		}
		p[t] = row
	}
	return p
}()

// KernelOnly reports whether only the kernel may send t.
func (t Type) KernelOnly() bool {
	p := senders[t]
	return len(p) == 1 && p[0].from == ClassKernel
}

// MaySend reports whether a process of class from may send a message of
// type t to one of class to, and if not, why. The kernel may send
// anything; a type the table does not restrict goes anywhere.
func MaySend(t Type, from, to Class) Refusal {
	if t > MaxType || from == ClassKernel || int(from) >= numClasses || int(to) >= numClasses {
		return ""
	}
	row := permit[t]
	if row == nil || row[from]&(1<<to) != 0 {
		return ""
	}
	if t.KernelOnly() {
		return RefuseKernelOnly
	}
	return RefuseWrongSender
}

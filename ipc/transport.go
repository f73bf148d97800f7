package ipc

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
)

// Transport carries messages between one process and its peers. It is
// implemented by user-space channels (ipc/shm) and kernel messages
// (ipc/kmsg); server code is written against this interface alone.
//
// A Transport is used by one goroutine at a time, as a MINIX server's
// receive-dispatch-reply loop uses its endpoint.
type Transport interface {
	// Self is the process's own endpoint; Send fills it in as m.Src.
	Self() Endpoint
	// Send delivers m to m.Dst, waiting while the channel is full
	// (backpressure). It never drops or overwrites a message.
	Send(m *Message) error
	// TrySend is Send without waiting: ErrWouldBlock if the channel is full.
	TrySend(m *Message) error
	// Recv waits for the next message as the wait policy says.
	Recv(m *Message) error
	// TryRecv is Recv without waiting: ErrWouldBlock if nothing is queued.
	TryRecv(m *Message) error
	// RecvTimeout is Recv giving up after d: ErrTimeout.
	RecvTimeout(m *Message, d time.Duration) error
	// Stats returns the transport's counters.
	Stats() *Stats
	// Close releases the transport's resources.
	Close() error
}

// Errors shared by the transports.
var (
	// ErrWouldBlock says a non-waiting call found the channel full or empty.
	ErrWouldBlock = errors.New("ipc: operation would block")
	// ErrDeadEndpoint says the destination is not (or no longer) the
	// incarnation the message names: it died or was restarted.
	ErrDeadEndpoint = errors.New("ipc: destination endpoint is dead")
	// ErrNoRoute says the transport has no channel to the destination.
	ErrNoRoute = errors.New("ipc: no channel to destination")
	// ErrClosed says the transport was closed.
	ErrClosed = errors.New("ipc: transport closed")
	// ErrTimeout says RecvTimeout's time ran out.
	ErrTimeout = errors.New("ipc: receive timed out")
)

// Errno is the error code the kernel puts in an Error reply.
type Errno uint64

// Kernel error codes, named after their POSIX and MINIX counterparts.
const (
	EPERM       Errno = 1  // the privilege mask forbids the send
	ENOENT      Errno = 2  // no process of that name, or nothing deposited under that id
	EINVAL      Errno = 22 // malformed message
	EDEADSRCDST Errno = 3  // destination is dead or was restarted
	ENOSYS      Errno = 38 // unknown message type
	EBADSRC     Errno = 9  // the message's source is not the sender
	EAGAIN      Errno = 11 // destination queue full
)

var errnoNames = map[Errno]string{
	EPERM: "EPERM: send not permitted", ENOENT: "ENOENT: no such process",
	EINVAL: "EINVAL: malformed message", EDEADSRCDST: "EDEADSRCDST: dead destination",
	ENOSYS: "ENOSYS: unknown message type", EBADSRC: "EBADSRC: forged source",
	EAGAIN: "EAGAIN: destination full",
}

// Error formats the code.
func (e Errno) Error() string {
	if s, ok := errnoNames[e]; ok {
		return s
	}
	return fmt.Sprintf("errno %d", uint64(e))
}

// KernelError is a refusal the kernel sent back for a message.
type KernelError struct {
	Errno Errno    // why
	Type  Type     // the refused message's type
	Dst   Endpoint // the refused message's destination
}

func (e *KernelError) Error() string {
	return fmt.Sprintf("kernel refused %s to %s: %v", e.Type, e.Dst, e.Errno)
}

func (e *KernelError) Unwrap() error { return e.Errno }

// AsKernelError decodes an Error message into a KernelError.
func AsKernelError(m *Message) *KernelError {
	return &KernelError{Errno: Errno(m.Arg[0]), Type: Type(m.Arg[1]), Dst: Endpoint(m.Arg[2])}
}

// Encode writes e into m as an Error message: its type and arguments; the
// header (Src, Dst, Seq) is the sender's to set.
func (e *KernelError) Encode(m *Message) {
	m.Type, m.Flags = Error, 0
	m.Arg = [NumArgs]uint64{uint64(e.Errno), uint64(e.Type), uint64(e.Dst)}
}

// SpinForever is the spin budget of a receiver that never sleeps: pure
// polling, for a process with a dedicated core.
const SpinForever time.Duration = math.MaxInt64

// WaitPolicy says how a process waits for a message or for room in a full
// channel: spin (poll memory) for up to Spin, then sleep on a futex until a
// peer wakes it. Spin == 0 never spins; Spin == SpinForever never sleeps.
// With Yield, each turn of the spin gives the core away (sched_yield)
// instead of pausing on it: on a core shared with the peers it waits for,
// they run meanwhile, and a message that comes within Spin costs no sleep
// and no wake-up.
//
// A sleep first holds the process's place in the Go scheduler for a short
// while (futex.WaitHeld, in ipc/shm) and only then sleeps as any blocked
// thread does: on a shared core that saves the runtime's own hand-over of
// the sleeping thread's P, two context switches of every wake-up. GoSleep
// turns that off (the policy "block-go"), so every sleep goes through the
// Go scheduler, as before; it exists to measure the difference.
type WaitPolicy struct {
	Spin    time.Duration
	Yield   bool
	GoSleep bool
}

// DefaultYield is the budget of the policy "yield" written without one.
const DefaultYield = 200 * time.Microsecond

// String names the policy as the core plan prints it.
func (p WaitPolicy) String() string {
	switch {
	case p.Spin == 0 && p.GoSleep:
		return "block-go"
	case p.Spin == 0:
		return "block"
	case p.Spin == SpinForever && !p.Yield:
		return "poll"
	case p.Spin == SpinForever:
		return "yield"
	case p.Yield:
		return "yield " + p.Spin.String() + " then block"
	default:
		return "spin " + p.Spin.String() + " then block"
	}
}

// ParseWaitPolicy parses "block", "block-go" (block, every sleep through
// the Go scheduler), "poll", a duration such as "20us" (spin that long,
// then block), or "yield" or "yield:50us" (yield the core that long,
// DefaultYield if not given, then block).
func ParseWaitPolicy(s string) (WaitPolicy, error) {
	switch s {
	case "block", "0":
		return WaitPolicy{}, nil
	case "block-go":
		return WaitPolicy{GoSleep: true}, nil
	case "poll", "forever":
		return WaitPolicy{Spin: SpinForever}, nil
	case "yield":
		return WaitPolicy{Spin: DefaultYield, Yield: true}, nil
	}
	p := WaitPolicy{}
	if rest, ok := strings.CutPrefix(s, "yield:"); ok {
		s, p.Yield = rest, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 && p.Yield || d < 0 {
		return WaitPolicy{}, fmt.Errorf("ipc: wait policy %q: want block, block-go, poll, a duration like 20us, or yield or yield:50us", s)
	}
	p.Spin = d
	return p, nil
}

// Stats counts what a transport did. Counters are atomic so a metrics
// collector may read them while the owning goroutine runs.
type Stats struct {
	// Sent and Received count messages per peer slot.
	Sent, Received [MaxSlots]atomic.Uint64
	// Spins counts waits that ended while spinning (no sleep needed).
	Spins atomic.Uint64
	// Sleeps counts waits that went to sleep on a futex or in a system call.
	Sleeps atomic.Uint64
	// Wakeups counts futex wake-ups this process issued to sleeping peers.
	Wakeups atomic.Uint64
	// Refused counts messages refused (by the kernel, or as stale or
	// malformed on receipt).
	Refused atomic.Uint64
}

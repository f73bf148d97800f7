package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"slices"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/sys/unix"
)

// Filter is a seccomp filter: the system calls a role may make. Any other
// call fails with EPERM, and Linux logs it (SECCOMP_FILTER_FLAG_LOG: an
// audit record with the pid, the command and the call's number, in dmesg
// or the journal); the process is not killed, so a call that a rare path
// needs shows up as an error and a log line, not as a crash loop.
type Filter struct {
	Name     string
	Syscalls []string // sorted, each once
	// Only are calls allowed with one argument equal to a value alone.
	Only []Only
	// Root keeps the process root (it does not drop to its domain's
	// ids): a measuring process that counts its own system calls with a
	// perf event, which an unprivileged process may not open.
	Root bool
}

// Only allows a system call only when its argument Arg is Value.
type Only struct {
	Syscall string
	Arg     uint32
	Value   uint64
}

// Count is how many system calls f allows in any form.
func (f Filter) Count() int { return len(f.Syscalls) + len(f.Only) }

// The calls every process makes, from the first instruction of its
// runtime to its exit: found by running every role under `strace -f` in
// the end-to-end tests (docs/SANDBOX.md says how to redo it).
var (
	// goRuntime is what the Go runtime, and the C library threads of a
	// cgo binary, call on their own: memory, threads, signals, timers,
	// the network poller.
	goRuntime = []string{
		"brk", "mmap", "munmap", "mprotect", "madvise", "mremap",
		"clone", "clone3", "exit", "exit_group", "futex", "gettid", "getpid", "tgkill",
		"rseq", "set_robust_list", "set_tid_address", "sched_yield",
		"sched_getaffinity", "sched_setaffinity", "prlimit64",
		"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
		"nanosleep", "clock_gettime", "clock_nanosleep", "getrandom",
		"epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_wait", "eventfd2", "pipe2",
		"read", "write", "pread64", "pwrite64", "readv", "writev", "close", "fcntl", "lseek",
		"fstat", "newfstatat", "statfs", "readlinkat", "getdents64", "access", "uname",
		"getuid", "geteuid", "getgid", "getegid", "getppid",
	}
	// runtimeOnly: Go names its anonymous mappings for /proc/PID/maps
	// (prctl PR_SET_VMA); no other prctl.
	runtimeOnly = []Only{{"prctl", 0, unix.PR_SET_VMA}}
	// channels is what newtsim's own IPC calls: the kernel connection
	// (a seqpacket socket, which carries descriptors: the run files, and
	// exposed socket regions deposited and collected; waited on with a
	// timeout with ppoll: kmsg's RecvTimeout), a receiver's sleep on its
	// rings (futex_waitv), memfds made, sized and sealed (fcntl), shared
	// files opened, given and removed, results written whole and renamed
	// into place.
	channels = []string{
		"sendto", "recvfrom", "sendmsg", "recvmsg", "ppoll", "memfd_create", "futex_waitv",
		"openat", "ftruncate", "fchmod", "fchmodat", "fchown", "fchownat", "unlinkat", "renameat", "mkdirat",
	}
	// metrics is the process's Prometheus endpoint: a listening TCP
	// socket on loopback, made before the filter, and its connections.
	metrics = []string{"accept4", "getsockname", "getpeername", "setsockopt", "shutdown"}
	// linuxSockets is an application's Linux socket backend and the
	// measuring roles' Linux references: sockets of their own.
	linuxSockets = []string{
		"socket", "bind", "listen", "connect", "getsockopt", "poll",
		"sendmmsg", "recvmmsg", "socketpair",
	}
)

// Filters, by name. Neither allows, among others, execve, ptrace, mount,
// setns, unshare, setuid (the ids are final), kill (a signal to another
// process), bpf, perf_event_open, process_vm_* or module loading.
var filters = map[string]Filter{
	// FilterServer is a server of the stack, a nic included (its TAP
	// device is open before the filter).
	FilterServer: newFilter(FilterServer, runtimeOnly, goRuntime, channels, metrics),
	// FilterApp is an application or a benchmark's measuring side:
	// a server's calls and Linux sockets.
	FilterApp: newFilter(FilterApp, append(runtimeOnly, Only{"ioctl", 1, unix.TCGETS}), // is it a terminal?
		goRuntime, channels, metrics, linuxSockets),
	// FilterProbe is the measuring side of `bench eagain`, which counts
	// its own system calls (package syscount): an application's calls,
	// and a perf event opened, reset, enabled and disabled; it stays
	// root, which such an event needs.
	FilterProbe: func() Filter {
		f := newFilter(FilterProbe, append(runtimeOnly, Only{"ioctl", 1, unix.TCGETS},
			Only{"ioctl", 1, unix.PERF_EVENT_IOC_RESET}, Only{"ioctl", 1, unix.PERF_EVENT_IOC_ENABLE},
			Only{"ioctl", 1, unix.PERF_EVENT_IOC_DISABLE}),
			goRuntime, channels, metrics, linuxSockets, []string{"perf_event_open"})
		f.Root = true
		return f
	}(),
}

// Filter names.
const (
	FilterServer = "server"
	FilterApp    = "app"
	FilterProbe  = "probe"
)

func newFilter(name string, only []Only, sets ...[]string) Filter {
	f := Filter{Name: name, Only: only}
	for _, s := range sets {
		f.Syscalls = append(f.Syscalls, s...)
	}
	slices.Sort(f.Syscalls)
	f.Syscalls = slices.Compact(f.Syscalls)
	return f
}

// Lookup returns the filter called name.
func Lookup(name string) (Filter, bool) {
	f, ok := filters[name]
	return f, ok
}

// Filters lists the filters' names, sorted.
func Filters() []string {
	var names []string
	for n := range filters {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// policy is f as the filter builder assembles it.
func (f Filter) policy() seccomp.Policy {
	g := seccomp.SyscallGroup{Action: seccomp.ActionAllow, Names: f.Syscalls}
	for _, o := range f.Only {
		g.NamesWithCondtions = append(g.NamesWithCondtions, seccomp.NameWithConditions{Name: o.Syscall,
			Conditions: seccomp.ArgumentConditions{{Argument: o.Arg, Operation: seccomp.Equal, Value: o.Value}}})
	}
	return seccomp.Policy{DefaultAction: seccomp.ActionErrno, Syscalls: []seccomp.SyscallGroup{g}} // EPERM
}

// Check assembles the filter for this machine without installing it: an
// unknown call name is an error.
func (f Filter) Check() error {
	p := f.policy()
	if _, err := p.Assemble(); err != nil {
		return fmt.Errorf("sandbox: filter %s: %w", f.Name, err)
	}
	return nil
}

// ErrUnsupported says this kernel has no seccomp filters.
var ErrUnsupported = errors.New("sandbox: seccomp filters are not supported here")

// Install puts the calling process under f, every thread of it (TSYNC)
// and every thread it later makes, for good; it also sets no_new_privs,
// which an unprivileged process needs for a filter. It is the last step
// of a process's set-up, before it handles its first message.
func (f Filter) Install() error {
	if !seccomp.Supported() {
		return ErrUnsupported
	}
	// no_new_privs and the filter go on the same thread, then TSYNC
	// copies both to the others.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := seccomp.LoadFilter(seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync | seccomp.FilterFlagLog,
		Policy:     f.policy(),
	})
	if err != nil {
		return fmt.Errorf("sandbox: install filter %s: %w", f.Name, err)
	}
	return nil
}

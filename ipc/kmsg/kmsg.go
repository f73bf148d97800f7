// Package kmsg is the process side of kernel messages: every process has one
// Unix seqpacket connection to the kernel process, and each message is a
// real system call (a write to send, a blocking read to receive) that the
// kernel checks and forwards, like a microkernel's synchronous IPC.
//
// Conn implements ipc.Transport: with the kernel transport a server's
// messages to its peers travel through the kernel; with user-space channels
// the same connection carries only the process's calls to the kernel.
package kmsg

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/ipc"
)

// FD is the file descriptor a server process finds its kernel connection on:
// the kernel passes it as the first extra file.
const FD = 3

// Conn is a process's connection to the kernel.
type Conn struct {
	fd      int
	self    ipc.Endpoint
	pending []ipc.Message // messages read while waiting for a call's reply
	seq     uint32
	buf     [ipc.MessageSize + 1]byte
	stats   ipc.Stats
	closed  bool
	asleep  bool // in Recv's blocking read, with the trace recorder on
}

var _ ipc.Transport = (*Conn)(nil)

// New wraps a connected seqpacket socket, which must be in blocking mode.
func New(fd int, self ipc.Endpoint) *Conn { return &Conn{fd: fd, self: self} }

// Self returns the process's endpoint.
func (c *Conn) Self() ipc.Endpoint { return c.self }

// SetSelf records a new endpoint (only the kernel's own tests need this).
func (c *Conn) SetSelf(e ipc.Endpoint) { c.self = e }

// Stats returns the connection's counters.
func (c *Conn) Stats() *ipc.Stats { return &c.stats }

// Send writes m to the kernel, which forwards it to m.Dst (or handles it, for
// kernel calls). It blocks while the socket's buffer is full.
func (c *Conn) Send(m *ipc.Message) error { return c.send(m, 0) }

// TrySend is Send returning ipc.ErrWouldBlock instead of blocking.
func (c *Conn) TrySend(m *ipc.Message) error { return c.send(m, unix.MSG_DONTWAIT) }

func (c *Conn) send(m *ipc.Message, flags int) error {
	if c.closed {
		return ipc.ErrClosed
	}
	m.Src = c.self
	var b [ipc.MessageSize]byte
	m.Marshal(b[:])
	var stamp uint64
	if trace.On() {
		stamp = trace.Stamp() // before the send: the receiver may take it before Sendto returns
	}
	for {
		err := unix.Sendto(c.fd, b[:], flags, nil)
		switch {
		case err == nil:
			c.stats.Sent[m.Dst.Slot()%ipc.MaxSlots].Add(1)
			if stamp != 0 {
				trace.RecordAt(stamp, trace.Put, uint16(m.Type), m.Src.Slot(), m.Dst.Slot(), ID(m))
			}
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return ipc.ErrWouldBlock
		default:
			return fmt.Errorf("kmsg: send %s: %w", m.Type, err)
		}
	}
}

// Recv blocks in the kernel until a message arrives.
func (c *Conn) Recv(m *ipc.Message) error {
	if len(c.pending) > 0 {
		*m = c.pending[0]
		c.pending = c.pending[1:]
		return nil
	}
	c.stats.Sleeps.Add(1)
	if trace.On() {
		// The blocking read is the sleep; read stamps the wake-up when
		// it returns with a message, before the take.
		trace.Record(trace.Sleep, 0, 0, c.self.Slot(), 0)
		c.asleep = true
		defer func() { c.asleep = false }()
	}
	return c.read(m, 0)
}

// RecvTimeout waits at most d for a message (ppoll(2), then a read).
func (c *Conn) RecvTimeout(m *ipc.Message, d time.Duration) error {
	if len(c.pending) > 0 {
		return c.Recv(m)
	}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return ipc.ErrTimeout
		}
		// ppoll, not poll: a wait shorter than a millisecond (a server's
		// first retry of a full channel, servers/sys) is not rounded up to one.
		p := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		ts := unix.NsecToTimespec(left.Nanoseconds())
		n, err := unix.Ppoll(p, &ts, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("kmsg: poll: %w", err)
		}
		if n > 0 {
			if err := c.read(m, unix.MSG_DONTWAIT); !errors.Is(err, ipc.ErrWouldBlock) {
				return err
			}
		}
	}
}

// TryRecv returns a queued message or ipc.ErrWouldBlock.
func (c *Conn) TryRecv(m *ipc.Message) error {
	if len(c.pending) > 0 {
		*m = c.pending[0]
		c.pending = c.pending[1:]
		return nil
	}
	return c.read(m, unix.MSG_DONTWAIT)
}

func (c *Conn) read(m *ipc.Message, flags int) error {
	for {
		if c.closed {
			return ipc.ErrClosed
		}
		// MSG_TRUNC makes the call return a datagram's real length, so an
		// oversized one is seen as such rather than silently cut.
		n, _, err := unix.Recvfrom(c.fd, c.buf[:], flags|unix.MSG_TRUNC)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return ipc.ErrWouldBlock
		case err != nil:
			return fmt.Errorf("kmsg: receive: %w", err)
		case n == 0:
			return fmt.Errorf("kmsg: receive: %w", ipc.ErrClosed)
		case n != ipc.MessageSize:
			c.stats.Refused.Add(1)
			continue
		}
		if err := m.Unmarshal(c.buf[:n]); err != nil {
			c.stats.Refused.Add(1)
			continue
		}
		c.stats.Received[m.Src.Slot()%ipc.MaxSlots].Add(1)
		if trace.On() {
			if c.asleep {
				trace.Record(trace.Wake, 0, 0, c.self.Slot(), 0)
				c.asleep = false
			}
			trace.Record(trace.Take, uint16(m.Type), m.Src.Slot(), m.Dst.Slot(), ID(m))
		}
		return nil
	}
}

// Call sends a kernel call and waits for the kernel's reply (Ack or Error),
// keeping any other message that arrives meanwhile for Recv.
func (c *Conn) Call(m *ipc.Message) (ipc.Message, error) {
	c.seq++
	m.Seq = c.seq
	m.Dst = ipc.Kernel
	if err := c.Send(m); err != nil {
		return ipc.Message{}, err
	}
	for {
		var r ipc.Message
		if err := c.read(&r, 0); err != nil {
			return r, err
		}
		if r.Src == ipc.Kernel && r.Seq == m.Seq && (r.Type == ipc.Ack || r.Type == ipc.Error) {
			if r.Type == ipc.Error {
				return r, ipc.AsKernelError(&r)
			}
			return r, nil
		}
		c.pending = append(c.pending, r)
	}
}

// CallFile is Call with a descriptor each way: give, if not nil, goes
// attached to the call (SCM_RIGHTS; the caller keeps its own descriptor),
// and the descriptor the kernel's reply carries, if any, is returned
// (close-on-exec, the caller's to close). The replies of Deposit and
// Collect (ipc.Deposit, ipc.Collect) are read this way; a descriptor
// attached to any other message read meanwhile is closed and counted
// refused.
func (c *Conn) CallFile(m *ipc.Message, give *os.File) (ipc.Message, *os.File, error) {
	c.seq++
	m.Seq = c.seq
	m.Dst = ipc.Kernel
	if err := c.sendFile(m, give); err != nil {
		return ipc.Message{}, nil, err
	}
	var oob [OOBSize]byte
	for {
		var r ipc.Message
		file, err := c.readFile(&r, oob[:])
		if err != nil {
			return r, nil, err
		}
		if r.Src == ipc.Kernel && r.Seq == m.Seq && (r.Type == ipc.Ack || r.Type == ipc.Error) {
			var f *os.File
			if file >= 0 {
				f = os.NewFile(uintptr(file), "kernel-handed")
			}
			if r.Type == ipc.Error {
				if f != nil {
					f.Close()
				}
				return r, nil, ipc.AsKernelError(&r)
			}
			return r, f, nil
		}
		if file >= 0 {
			unix.Close(file)
			c.stats.Refused.Add(1)
		}
		c.pending = append(c.pending, r)
	}
}

// sendFile sends m with f attached (none if f is nil), waiting for room.
func (c *Conn) sendFile(m *ipc.Message, f *os.File) error {
	if f == nil {
		return c.Send(m)
	}
	if c.closed {
		return ipc.ErrClosed
	}
	m.Src = c.self
	var b [ipc.MessageSize]byte
	m.Marshal(b[:])
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("kmsg: send %s: %w", m.Type, err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		oob := unix.UnixRights(int(fd))
		for {
			serr = unix.Sendmsg(c.fd, b[:], oob, nil, unix.MSG_NOSIGNAL)
			if !errors.Is(serr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return fmt.Errorf("kmsg: send %s: %w", m.Type, err)
	}
	if serr != nil {
		return fmt.Errorf("kmsg: send %s with a descriptor: %w", m.Type, serr)
	}
	c.stats.Sent[ipc.KernelSlot].Add(1)
	return nil
}

// readFile is read with a control buffer: it returns the descriptor the
// message carries, or -1. It waits for a message even on a non-blocking
// connection.
func (c *Conn) readFile(m *ipc.Message, oob []byte) (int, error) {
	for {
		if c.closed {
			return -1, ipc.ErrClosed
		}
		n, file, stray, err := ReadMsg(c.fd, c.buf[:], oob, 0)
		c.stats.Refused.Add(uint64(stray))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			p := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(p, -1); err != nil && !errors.Is(err, unix.EINTR) {
				return -1, fmt.Errorf("kmsg: poll: %w", err)
			}
			continue
		case err != nil:
			return -1, fmt.Errorf("kmsg: receive: %w", err)
		case n == 0:
			return -1, fmt.Errorf("kmsg: receive: %w", ipc.ErrClosed)
		}
		if n != ipc.MessageSize || m.Unmarshal(c.buf[:n]) != nil {
			if file >= 0 {
				unix.Close(file)
			}
			c.stats.Refused.Add(1)
			continue
		}
		c.stats.Received[m.Src.Slot()%ipc.MaxSlots].Add(1)
		return file, nil
	}
}

// OOBSize is the control buffer a reader of kernel messages gives ReadMsg:
// room for several descriptors (a control message header is 16 bytes on
// 64-bit Linux, a descriptor 4), so that a sender attaching more than one
// is seen doing it, and every descriptor is closed, rather than its
// extras silently dropped.
const OOBSize = 64

// ReadMsg reads one packet from the kernel connection fd into b with
// recvmsg(2) (flags as recvmsg's; MSG_TRUNC is added, so n is the packet's
// real length even when b is shorter), with oob (OOBSize bytes) as its
// control buffer. file is the descriptor the packet carried (SCM_RIGHTS,
// close-on-exec), or -1; a packet that carried more than one, or whose
// control data did not fit, has every descriptor closed, file -1 and stray
// the number closed (at least 1), for the caller to count.
func ReadMsg(fd int, b, oob []byte, flags int) (n, file, stray int, err error) {
	n, oobn, rflags, _, err := unix.Recvmsg(fd, b, oob, flags|unix.MSG_TRUNC|unix.MSG_CMSG_CLOEXEC)
	if err != nil || oobn == 0 && rflags&unix.MSG_CTRUNC == 0 {
		return n, -1, 0, err
	}
	file = -1
	var fds []int
	if cmsgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
		for i := range cmsgs {
			if got, err := unix.ParseUnixRights(&cmsgs[i]); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	if len(fds) == 1 && rflags&unix.MSG_CTRUNC == 0 {
		return n, fds[0], 0, nil
	}
	for _, f := range fds {
		unix.Close(f)
	}
	return n, -1, max(len(fds), 1), nil
}

// Close closes the connection.
func (c *Conn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return unix.Close(c.fd)
}

// Pair makes a connected seqpacket socket pair, close-on-exec, for the
// kernel to hand one end to a process it starts.
func Pair() (kernelEnd, processEnd int, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("kmsg: socketpair: %w", err)
	}
	return fds[0], fds[1], nil
}

// ID names m for the trace recorder (package internal/trace) on both ends
// of a kernel message: a hash of what the kernel forwards unchanged (type,
// flags, sequence number, arguments, source and destination). Equal
// messages hash alike; the analysis matches those in order.
func ID(m *ipc.Message) uint32 {
	h := uint64(m.Src)<<32 | uint64(m.Dst)
	h = (h ^ (uint64(m.Type) | uint64(m.Flags)<<16 | uint64(m.Seq)<<32)) * 0x9e3779b97f4a7c15
	for _, a := range m.Arg {
		h = (h ^ a) * 0x9e3779b97f4a7c15
	}
	return uint32(h >> 32)
}

// MaxBoot bounds the boot arguments SendBoot hands over in one packet.
const MaxBoot = 64 << 10

// SendBoot hands a standby process (one started ahead of need, waiting in
// ReceiveBoot) the arguments of the server it is to become, on the
// kernel's end fd of its connection: one packet, the arguments separated
// by NUL bytes. It does not block, and fails at once if the process is gone.
func SendBoot(fd int, argv []string) error {
	var b []byte
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("kmsg: boot argument %q holds a NUL byte", a)
		}
		b = append(append(b, a...), 0)
	}
	if len(b) > MaxBoot {
		return fmt.Errorf("kmsg: boot arguments of %d bytes (at most %d)", len(b), MaxBoot)
	}
	if err := unix.Sendto(fd, b, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, nil); err != nil {
		return fmt.Errorf("kmsg: send boot arguments: %w", err)
	}
	return nil
}

// ReceiveBoot waits on a standby process's kernel connection fd for the
// arguments SendBoot hands it. It returns io.EOF when the kernel closed the
// connection first: the standby was not needed.
func ReceiveBoot(fd int) ([]string, error) {
	b := make([]byte, MaxBoot+1)
	for {
		n, _, err := unix.Recvfrom(fd, b, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, fmt.Errorf("kmsg: receive boot arguments: %w", err)
		case n == 0:
			return nil, io.EOF
		case n > MaxBoot || b[n-1] != 0:
			return nil, fmt.Errorf("kmsg: malformed boot arguments (%d bytes)", n)
		}
		return strings.Split(string(b[:n-1]), "\x00"), nil
	}
}

// MaxFiles bounds the descriptors SendFiles hands over in one packet (the
// socket layer's own bound, SCM_MAX_FD, is 253).
const MaxFiles = 250

// SendFiles hands a process the descriptors files on the kernel's end fd
// of its connection, with tag (what they are, for the process to read),
// in one packet with SCM_RIGHTS. The kernel sends it before anything else
// on a new connection, and to a standby right after its boot arguments.
// It does not block.
func SendFiles(fd int, tag []byte, files []*os.File) error {
	if len(files) > MaxFiles {
		return fmt.Errorf("kmsg: %d files to hand over (at most %d)", len(files), MaxFiles)
	}
	if len(tag) == 0 || len(tag) > MaxBoot {
		return fmt.Errorf("kmsg: a tag of %d bytes", len(tag))
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(fd, tag, oob, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL); err != nil {
		return fmt.Errorf("kmsg: hand over %d files: %w", len(files), err)
	}
	return nil
}

// ReceiveFiles waits on a process's kernel connection fd for the packet
// SendFiles sends, and returns its tag and descriptors (close-on-exec). A
// packet without descriptors, or with its control data cut short, is an
// error: nothing else may come first.
func ReceiveFiles(fd int) ([]byte, []*os.File, error) {
	b := make([]byte, MaxBoot+1)
	oob := make([]byte, unix.CmsgSpace(4*MaxFiles))
	for {
		n, oobn, flags, _, err := unix.Recvmsg(fd, b, oob, unix.MSG_CMSG_CLOEXEC)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("kmsg: receive files: %w", err)
		case n == 0 && oobn == 0:
			return nil, nil, fmt.Errorf("kmsg: receive files: %w", io.EOF)
		}
		var files []*os.File
		cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, nil, fmt.Errorf("kmsg: receive files: %w", err)
		}
		for _, c := range cmsgs {
			fds, err := unix.ParseUnixRights(&c)
			if err != nil {
				continue
			}
			for _, f := range fds {
				files = append(files, os.NewFile(uintptr(f), "kernel-handed"))
			}
		}
		if flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 || n > MaxBoot {
			for _, f := range files {
				f.Close()
			}
			return nil, nil, fmt.Errorf("kmsg: receive files: packet cut short (%d bytes, flags %#x)", n, flags)
		}
		return b[:n], files, nil
	}
}

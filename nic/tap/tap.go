// Package tap is the `tap` NIC backend: a Linux TAP device (IFF_TAP,
// IFF_NO_PI), so Linux's own stack and programs are the simulated host's
// peer. Each Read returns one Ethernet frame; each Write sends one.
//
// Opened with TSO, the device carries a virtio-net header before every
// frame (IFF_VNET_HDR, struct virtio_net_hdr), as a virtio-net guest's
// device does, and a Write may hand Linux a TCP segment of up to 64 KiB
// with the segment size it is to be cut into (TCP segmentation offload;
// see VnetHeader and docs/PACKET_PATH.md).
package tap

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// MaxFrame is the largest frame a Read returns: 1500 bytes of MTU and the
// 14-byte Ethernet header (no VLAN tags, no FCS).
const MaxFrame = 1514

// MaxTSOFrame is the largest frame a Write takes with a segment size: the
// largest IPv4 packet in an Ethernet header.
const MaxTSOFrame = 14 + 65535

// Device is an open TAP device.
type Device struct {
	name    string
	f       *os.File
	rc      syscall.RawConn
	vnet    bool          // every frame has a virtio-net header (TSO)
	dropped atomic.Uint64 // frames read whose header this package cannot take
	rd, wr  vectored      // the reads' and the writes'
}

// vectored is one direction's I/O on the descriptor, a readv or writev
// through the runtime's poller, with what it needs made once, so that a
// frame read or written allocates nothing: the header (with TSO) and the
// frame as one vector, and the function the poller calls.
type vectored struct {
	mu  sync.Mutex // one read (or write) at a time
	hdr [VnetHeaderLen]byte
	iov [][]byte // [hdr, frame] with TSO, else [frame]
	fn  func(fd uintptr) bool
	n   int
	err error
}

// init makes v's vector and its function: one (unix.Read or unix.Write)
// for a frame alone, vec (unix.Readv or unix.Writev) for a header and a
// frame.
func (v *vectored) init(vnet bool, one func(int, []byte) (int, error), vec func(int, [][]byte) (int, error)) {
	v.iov = [][]byte{nil}
	if vnet {
		v.iov = [][]byte{v.hdr[:], nil}
	}
	v.fn = func(fd uintptr) bool {
		if len(v.iov) == 1 {
			v.n, v.err = one(int(fd), v.iov[0])
		} else {
			v.n, v.err = vec(int(fd), v.iov)
		}
		return v.err != unix.EAGAIN // the poller waits and calls again
	}
}

// frame sets the vector's frame (nil after the call, so that v keeps no
// reference to the caller's buffer).
func (v *vectored) frame(b []byte) { v.iov[len(v.iov)-1] = b }

// Open creates (or attaches to) the TAP device called name; with tso, its
// frames carry virtio-net headers and Write takes segments for Linux to
// cut (TSO). The descriptor is made non-blocking before it is wrapped in
// an *os.File, so reads and writes go through the Go runtime's poller;
// calling Fd on it would turn it blocking again, so this package never
// does.
func Open(name string, tso bool) (*Device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tap: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: interface name %q: %w", name, err)
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if tso {
		// The header's size is the kernel's default, sizeof(struct
		// virtio_net_hdr). No TUNSETOFFLOAD: Linux sends us whole,
		// checksummed frames, as to a device without offloads.
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: TUNSETIFF %s: %w", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: non-blocking: %w", err)
	}
	d := &Device{name: ifr.Name(), f: os.NewFile(uintptr(fd), "tap:"+name), vnet: tso}
	d.rd.init(tso, unix.Read, unix.Readv)
	d.wr.init(tso, unix.Write, unix.Writev)
	if d.rc, err = d.f.SyscallConn(); err != nil {
		d.f.Close()
		return nil, fmt.Errorf("tap: %w", err)
	}
	return d, nil
}

// Name is the interface's name.
func (d *Device) Name() string { return d.name }

// TSO reports whether the device was opened with TSO: a Write may then
// carry a segment size.
func (d *Device) TSO() bool { return d.vnet }

// Dropped returns how many frames Read has dropped: with TSO, frames
// whose virtio-net header asks for what this package does not do
// (segmentation or a checksum on receive, which Linux never asks of a
// device that did not offer them).
func (d *Device) Dropped() uint64 { return d.dropped.Load() }

// Read reads one frame into b (which should hold MaxFrame bytes). With
// TSO, the virtio-net header goes first: a frame whose header asks the
// device to cut it or to finish its checksum (ReceiveVnetHeader) is
// dropped and counted (Dropped), the read going on to the next.
func (d *Device) Read(b []byte) (int, error) {
	v := &d.rd
	v.mu.Lock()
	v.frame(b)
	n, err := d.read(v)
	v.frame(nil)
	v.mu.Unlock()
	return n, err
}

// read reads frames into v until one is taken; v.mu is held.
func (d *Device) read(v *vectored) (int, error) {
	for {
		err := d.rc.Read(v.fn)
		if err == nil {
			err = v.err
		}
		if err != nil {
			return 0, fmt.Errorf("tap: read %s: %w", d.name, err)
		}
		if !d.vnet {
			return v.n, nil
		}
		if v.n < VnetHeaderLen || ReceiveVnetHeader(v.hdr) != nil {
			d.dropped.Add(1)
			continue
		}
		return v.n - VnetHeaderLen, nil
	}
}

// Pending reports whether a frame waits to be read, without reading it
// (poll(2) with no timeout); false when the descriptor cannot be asked.
func (d *Device) Pending() bool {
	ready := false
	d.rc.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 0)
		ready = err == nil && n > 0 && p[0].Revents&unix.POLLIN != 0
	})
	return ready
}

// ErrTooLong is the error of a Write whose frame the device does not take.
var ErrTooLong = errors.New("tap: frame too long")

// Write sends one frame. segSize, when not 0, is the TCP segment size a
// frame larger than the MTU is to be cut into: with TSO, Linux cuts it
// (see VnetHeader); without, such a frame is refused.
func (d *Device) Write(frame []byte, segSize int) error {
	var hdr [VnetHeaderLen]byte
	switch {
	case !d.vnet && len(frame) > MaxFrame:
		return fmt.Errorf("%w: %d bytes is over %d, and the device has no TSO", ErrTooLong, len(frame), MaxFrame)
	case d.vnet && (len(frame) > MaxFrame && segSize == 0 || len(frame) > MaxTSOFrame):
		return fmt.Errorf("%w: %d bytes in segments of %d", ErrTooLong, len(frame), segSize)
	case d.vnet:
		var err error
		if hdr, err = VnetHeader(frame, segSize); err != nil {
			return err
		}
	}
	v := &d.wr
	v.mu.Lock()
	v.hdr = hdr
	v.frame(frame)
	err := d.rc.Write(v.fn)
	if err == nil {
		err = v.err
	}
	v.frame(nil)
	v.mu.Unlock()
	if err != nil {
		return fmt.Errorf("tap: write %s: %w", d.name, err)
	}
	return nil
}

// Close closes the device; a TAP device that nobody holds disappears.
func (d *Device) Close() error { return d.f.Close() }

// OpenIn attaches to (or creates) the TAP device called name inside the
// network namespace whose file is nsPath (such as /var/run/netns/NAME),
// with TSO as Open has it. The calling goroutine's thread enters the
// namespace only for the open and is switched back before it is released;
// the descriptor then works from any thread. With a persistent device
// made there beforehand (`ip tuntap add`), a restarted process attaches to
// the same interface, addresses and all.
func OpenIn(nsPath, name string, tso bool) (*Device, error) {
	type result struct {
		d   *Device
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, fmt.Errorf("tap: own namespace: %w", err)}
			return
		}
		defer self.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, fmt.Errorf("tap: namespace: %w", err)}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, fmt.Errorf("tap: enter %s: %w", nsPath, err)}
			return
		}
		d, err := Open(name, tso)
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and dies with this goroutine, so no
			// other goroutine runs in the wrong namespace.
			done <- result{nil, fmt.Errorf("tap: leave %s: %w", nsPath, err)}
			if d != nil {
				d.Close()
			}
			return
		}
		runtime.UnlockOSThread()
		done <- result{d, err}
	}()
	r := <-done
	return r.d, r.err
}

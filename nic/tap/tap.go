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
}

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
	if !d.vnet {
		n, err := d.f.Read(b)
		if err != nil {
			return n, fmt.Errorf("tap: read %s: %w", d.name, err)
		}
		return n, nil
	}
	var hdr [VnetHeaderLen]byte
	for {
		var n int
		var rerr error
		err := d.rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Readv(int(fd), [][]byte{hdr[:], b})
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return 0, fmt.Errorf("tap: read %s: %w", d.name, err)
		}
		if n < VnetHeaderLen {
			d.dropped.Add(1)
			continue
		}
		n -= VnetHeaderLen
		if err := ReceiveVnetHeader(hdr); err != nil {
			d.dropped.Add(1)
			continue
		}
		return n, nil
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
	if !d.vnet {
		if len(frame) > MaxFrame {
			return fmt.Errorf("%w: %d bytes is over %d, and the device has no TSO", ErrTooLong, len(frame), MaxFrame)
		}
		if _, err := d.f.Write(frame); err != nil {
			return fmt.Errorf("tap: write %s: %w", d.name, err)
		}
		return nil
	}
	if len(frame) > MaxFrame && segSize == 0 || len(frame) > MaxTSOFrame {
		return fmt.Errorf("%w: %d bytes in segments of %d", ErrTooLong, len(frame), segSize)
	}
	hdr, err := VnetHeader(frame, segSize)
	if err != nil {
		return err
	}
	var werr error
	err = d.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Writev(int(fd), [][]byte{hdr[:], frame})
		return werr != unix.EAGAIN
	})
	if err == nil {
		err = werr
	}
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

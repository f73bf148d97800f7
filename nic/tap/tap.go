// Package tap is the `tap` NIC backend: a Linux TAP device (IFF_TAP,
// IFF_NO_PI), so Linux's own stack and programs are the simulated host's
// peer. Each Read returns one Ethernet frame; each Write sends one.
package tap

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// MaxFrame is the largest frame a Read returns: 1500 bytes of MTU and the
// 14-byte Ethernet header (no VLAN tags, no FCS).
const MaxFrame = 1514

// Device is an open TAP device.
type Device struct {
	name string
	f    *os.File
}

// Open creates (or attaches to) the TAP device called name. The descriptor
// is made non-blocking before it is wrapped in an *os.File, so reads and
// writes go through the Go runtime's poller; calling Fd on it would turn it
// blocking again, so this package never does.
func Open(name string) (*Device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tap: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: interface name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: TUNSETIFF %s: %w", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: non-blocking: %w", err)
	}
	return &Device{name: ifr.Name(), f: os.NewFile(uintptr(fd), "tap:"+name)}, nil
}

// Name is the interface's name.
func (d *Device) Name() string { return d.name }

// Read reads one frame into b (which should hold MaxFrame bytes).
func (d *Device) Read(b []byte) (int, error) {
	n, err := d.f.Read(b)
	if err != nil {
		return n, fmt.Errorf("tap: read %s: %w", d.name, err)
	}
	return n, nil
}

// Pending reports whether a frame waits to be read, without reading it
// (poll(2) with no timeout); false when the descriptor cannot be asked.
func (d *Device) Pending() bool {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return false
	}
	ready := false
	rc.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 0)
		ready = err == nil && n > 0 && p[0].Revents&unix.POLLIN != 0
	})
	return ready
}

// Write sends one frame.
func (d *Device) Write(frame []byte) error {
	if len(frame) > MaxFrame {
		return fmt.Errorf("tap: frame of %d bytes is over %d", len(frame), MaxFrame)
	}
	if _, err := d.f.Write(frame); err != nil {
		return fmt.Errorf("tap: write %s: %w", d.name, err)
	}
	return nil
}

// Close closes the device; a TAP device that nobody holds disappears.
func (d *Device) Close() error { return d.f.Close() }

// OpenIn attaches to (or creates) the TAP device called name inside the
// network namespace whose file is nsPath (such as /var/run/netns/NAME). The
// calling goroutine's thread enters the namespace only for the open and is
// switched back before it is released; the descriptor then works from any
// thread. With a persistent device made there beforehand (`ip tuntap add`),
// a restarted process attaches to the same interface, addresses and all.
func OpenIn(nsPath, name string) (*Device, error) {
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
		d, err := Open(name)
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

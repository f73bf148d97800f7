package kmsg

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/newtsim/newtsim/ipc"
)

var self = ipc.MakeEndpoint(4, 1)

// pair returns a Conn and the raw kernel end of its socket.
func pair(t *testing.T) (*Conn, int) {
	t.Helper()
	k, p, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	c := New(p, self)
	t.Cleanup(func() { c.Close(); unix.Close(k) })
	return c, k
}

func kernelSend(t *testing.T, fd int, m ipc.Message) {
	t.Helper()
	var b [ipc.MessageSize]byte
	m.Marshal(b[:])
	if _, err := unix.Write(fd, b[:]); err != nil {
		t.Fatal(err)
	}
}

func TestSendStampsSource(t *testing.T) {
	c, k := pair(t)
	if err := c.Send(&ipc.Message{Src: ipc.MakeEndpoint(9, 9), Dst: ipc.MakeEndpoint(5, 1), Type: ipc.Ping}); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 128)
	n, err := unix.Read(k, b)
	if err != nil || n != ipc.MessageSize {
		t.Fatalf("read %d, %v", n, err)
	}
	var m ipc.Message
	m.Unmarshal(b[:n])
	if m.Src != self || m.Type != ipc.Ping {
		t.Fatalf("kernel got %v", &m)
	}
	if c.Stats().Sent[5].Load() != 1 {
		t.Fatal("sent counter not counted")
	}
}

func TestRecvRefusesBadDatagrams(t *testing.T) {
	c, k := pair(t)
	unix.Write(k, make([]byte, 10))  // short
	unix.Write(k, make([]byte, 100)) // oversized
	kernelSend(t, k, ipc.Message{Src: ipc.Kernel, Dst: self, Type: ipc.Alarm, Arg: [6]uint64{7}})
	var m ipc.Message
	if err := c.Recv(&m); err != nil {
		t.Fatal(err)
	}
	if m.Type != ipc.Alarm || m.Arg[0] != 7 {
		t.Fatalf("got %v, want the alarm", &m)
	}
	if got := c.Stats().Refused.Load(); got != 2 {
		t.Fatalf("refused %d, want 2", got)
	}
	if err := c.TryRecv(&m); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatalf("TryRecv on empty: %v", err)
	}
}

// TestCallKeepsOtherMessages: what arrives before the reply is kept, in
// order, for Recv.
func TestCallKeepsOtherMessages(t *testing.T) {
	c, k := pair(t)
	done := make(chan error, 1)
	go func() {
		b := make([]byte, 128)
		n, err := unix.Read(k, b)
		if err != nil {
			done <- err
			return
		}
		var req ipc.Message
		req.Unmarshal(b[:n])
		kernelSend(t, k, ipc.Message{Src: ipc.MakeEndpoint(5, 1), Dst: self, Type: ipc.Ping, Seq: 100})
		kernelSend(t, k, ipc.Message{Src: ipc.Kernel, Dst: self, Type: ipc.Ack, Seq: req.Seq + 1}) // not ours
		kernelSend(t, k, ipc.Message{Src: ipc.Kernel, Dst: self, Type: ipc.Ack, Seq: req.Seq, Arg: [6]uint64{77}})
		done <- nil
	}()
	r, err := c.Call(&ipc.Message{Type: ipc.Lookup})
	if err != nil {
		t.Fatal(err)
	}
	if r.Arg[0] != 77 {
		t.Fatalf("reply %v", &r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var m ipc.Message
	for _, want := range []ipc.Type{ipc.Ping, ipc.Ack} {
		if err := c.Recv(&m); err != nil || m.Type != want {
			t.Fatalf("kept message: %v %v, want %s", &m, err, want)
		}
	}
}

func TestCallError(t *testing.T) {
	c, k := pair(t)
	go func() {
		b := make([]byte, 128)
		n, _ := unix.Read(k, b)
		var req ipc.Message
		req.Unmarshal(b[:n])
		kernelSend(t, k, ipc.Message{Src: ipc.Kernel, Dst: self, Type: ipc.Error, Seq: req.Seq,
			Arg: [6]uint64{uint64(ipc.ENOENT), uint64(ipc.Lookup)}})
	}()
	_, err := c.Call(&ipc.Message{Type: ipc.Lookup})
	var ke *ipc.KernelError
	if !errors.As(err, &ke) || !errors.Is(err, ipc.ENOENT) {
		t.Fatalf("Call: %v, want a KernelError with ENOENT", err)
	}
}

func TestRecvTimeout(t *testing.T) {
	c, fd := pair(t)
	var m ipc.Message
	if err := c.RecvTimeout(&m, 20*time.Millisecond); !errors.Is(err, ipc.ErrTimeout) {
		t.Fatalf("nothing sent: %v, want ErrTimeout", err)
	}
	kernelSend(t, fd, ipc.Message{Src: ipc.Kernel, Dst: c.Self(), Type: ipc.Alarm, Arg: [6]uint64{9}})
	if err := c.RecvTimeout(&m, time.Second); err != nil || m.Type != ipc.Alarm || m.Arg[0] != 9 {
		t.Fatalf("got %v %v", m, err)
	}
}

// TestBootHandoff: the arguments SendBoot hands over are what ReceiveBoot
// returns, empty ones included; a closed kernel end is io.EOF; what cannot
// be sent is refused; a send to a process that is gone fails at once.
func TestBootHandoff(t *testing.T) {
	k, p, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p)
	argv := []string{"--name", "ip", "", "--", "a b"}
	if err := SendBoot(k, argv); err != nil {
		t.Fatal(err)
	}
	got, err := ReceiveBoot(p)
	if err != nil || !slices.Equal(got, argv) {
		t.Fatalf("ReceiveBoot = %q, %v; want %q", got, err, argv)
	}
	if err := SendBoot(k, []string{"a\x00b"}); err == nil {
		t.Error("an argument with a NUL byte was sent")
	}
	if err := SendBoot(k, []string{strings.Repeat("x", MaxBoot)}); err == nil {
		t.Error("arguments over MaxBoot were sent")
	}
	unix.Close(k)
	if _, err := ReceiveBoot(p); !errors.Is(err, io.EOF) {
		t.Errorf("ReceiveBoot after the kernel closed = %v, want io.EOF", err)
	}

	k2, p2, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(k2)
	unix.Close(p2)
	if err := SendBoot(k2, argv); err == nil {
		t.Error("SendBoot to a closed process end succeeded")
	}
}

// TestFiles: descriptors SendFiles hands over arrive with their tag, as
// new descriptors of the same files; an empty tag is refused.
func TestFiles(t *testing.T) {
	kend, pend, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(kend)
	defer unix.Close(pend)
	dir := t.TempDir()
	var files []*os.File
	for _, n := range []string{"a", "b"} {
		f, err := os.Create(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.WriteString(n)
		files = append(files, f)
	}
	if err := SendFiles(kend, nil, files); err == nil {
		t.Error("SendFiles sent an empty tag")
	}
	if err := SendFiles(kend, []byte("ab"), files); err != nil {
		t.Fatal(err)
	}
	tag, got, err := ReceiveFiles(pend)
	if err != nil {
		t.Fatal(err)
	}
	if string(tag) != "ab" || len(got) != 2 {
		t.Fatalf("got tag %q and %d files", tag, len(got))
	}
	for i, f := range got {
		b := make([]byte, 4)
		n, _ := f.ReadAt(b, 0)
		if string(b[:n]) != string(tag[i]) {
			t.Errorf("file %d holds %q, want %q", i, b[:n], tag[i:i+1])
		}
		f.Close()
	}
	unix.Close(kend)
	if _, _, err := ReceiveFiles(pend); !errors.Is(err, io.EOF) {
		t.Errorf("after the kernel closed: %v, want EOF", err)
	}
}

// kernelSendFile sends m on the kernel's end fd with the descriptors fds
// attached.
func kernelSendFile(t *testing.T, fd int, m ipc.Message, fds ...int) {
	t.Helper()
	var b [ipc.MessageSize]byte
	m.Marshal(b[:])
	if err := unix.Sendmsg(fd, b[:], unix.UnixRights(fds...), nil, 0); err != nil {
		t.Fatal(err)
	}
}

// tempFile is a file holding text, for a descriptor to travel.
func tempFile(t *testing.T, text string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	return f
}

// CallFile sends its descriptor with the call, and returns the one the
// kernel's reply carries; one attached to another message on the way is
// closed and counted, and that message kept for Recv.
func TestCallFile(t *testing.T) {
	c, k := pair(t)
	give, back := tempFile(t, "given"), tempFile(t, "handed back")
	done := make(chan error, 1)
	go func() {
		b := make([]byte, ipc.MessageSize)
		oob := make([]byte, OOBSize)
		n, file, stray, err := ReadMsg(k, b, oob, 0)
		if err != nil || n != ipc.MessageSize || file < 0 || stray != 0 {
			done <- errors.New("the call came without its descriptor")
			return
		}
		got := make([]byte, 16)
		m, _ := unix.Pread(file, got, 0)
		unix.Close(file)
		if string(got[:m]) != "given" {
			done <- errors.New("the call's descriptor is not the file given")
			return
		}
		var call ipc.Message
		call.Unmarshal(b)
		kernelSendFile(t, k, ipc.Message{Src: ipc.Kernel, Dst: self, Type: ipc.Alarm}, int(give.Fd()))
		kernelSendFile(t, k, ipc.Message{Src: ipc.Kernel, Dst: self, Type: ipc.Ack, Seq: call.Seq}, int(back.Fd()))
		done <- nil
	}()
	r, f, err := c.CallFile(&ipc.Message{Type: ipc.Deposit}, give)
	if err != nil || r.Type != ipc.Ack || f == nil {
		t.Fatalf("CallFile = %v, %v, %v; want the Ack with a descriptor", &r, f, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, 32)
	n, _ := f.ReadAt(got, 0)
	if string(got[:n]) != "handed back" {
		t.Errorf("the reply's descriptor reads %q", got[:n])
	}
	if c.Stats().Refused.Load() != 1 {
		t.Errorf("refused %d, want the alarm's stray descriptor counted", c.Stats().Refused.Load())
	}
	var m ipc.Message
	if err := c.TryRecv(&m); err != nil || m.Type != ipc.Alarm {
		t.Errorf("kept %v, %v; want the alarm", &m, err)
	}
}

// ReadMsg closes every descriptor of a packet that carries more than one.
func TestReadMsgClosesExtras(t *testing.T) {
	c, k := pair(t)
	f1, f2 := tempFile(t, "1"), tempFile(t, "2")
	var b [ipc.MessageSize]byte
	if err := unix.Sendmsg(k, b[:], unix.UnixRights(int(f1.Fd()), int(f2.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	oob := make([]byte, OOBSize)
	n, file, stray, err := ReadMsg(c.fd, b[:], oob, 0)
	if err != nil || n != ipc.MessageSize || file != -1 || stray != 2 {
		t.Fatalf("ReadMsg = %d, %d, %d, %v; want 64 bytes, no descriptor, 2 closed", n, file, stray, err)
	}
	kernelSend(t, k, ipc.Message{})
	if n, file, stray, err = ReadMsg(c.fd, b[:], oob, 0); err != nil || n != ipc.MessageSize || file != -1 || stray != 0 {
		t.Fatalf("ReadMsg = %d, %d, %d, %v; want a plain packet", n, file, stray, err)
	}
}

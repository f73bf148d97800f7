// Package pcap records the frames a NIC sends and receives in a pcap file
// (`--pcap FILE`), which tshark, tcpdump and Wireshark read. It uses
// gopacket's pcapgo writer.
package pcap

import (
	"bufio"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Snaplen is the most bytes of a frame recorded: tcpdump's default, room
// for the largest frame the nic sends with TCP segmentation offload (an
// IPv4 packet of 65535 bytes in an Ethernet header), recorded whole as
// tcpdump records it on an interface with TSO.
const Snaplen = 262144

// Writer appends Ethernet frames to a pcap file. It is safe for concurrent
// use (a NIC's send and receive sides may both record).
type Writer struct {
	mu sync.Mutex
	f  *os.File
	b  *bufio.Writer
	w  *pcapgo.Writer
}

// Create creates the file at path and writes the pcap file header.
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	b := bufio.NewWriter(f)
	w := pcapgo.NewWriter(b)
	if err := w.WriteFileHeader(Snaplen, layers.LinkTypeEthernet); err != nil {
		f.Close()
		return nil, fmt.Errorf("pcap: header: %w", err)
	}
	return &Writer{f: f, b: b, w: w}, nil
}

// Write records one frame seen at t.
func (w *Writer) Write(t time.Time, frame []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(frame), Snaplen)
	ci := gopacket.CaptureInfo{Timestamp: t, CaptureLength: n, Length: len(frame)}
	if err := w.w.WritePacket(ci, frame[:n]); err != nil {
		return fmt.Errorf("pcap: write: %w", err)
	}
	return nil
}

// Flush writes what is buffered to the file.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Flush()
}

// Close flushes and closes the file.
func (w *Writer) Close() error {
	if err := w.Flush(); err != nil {
		w.f.Close()
		return err
	}
	return w.f.Close()
}

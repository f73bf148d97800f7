package tcp

import (
	"encoding/binary"

	"github.com/newtsim/newtsim/servers/checksum"
	"github.com/newtsim/newtsim/servers/proto"
)

// TCP segmentation offload (docs/TCP.md): towards a destination on the
// link, with Config.TSOMax set, the data segments a connection sends back
// to back, each of a whole MSS but the last, go to ip as one segment of
// up to TSOMax data bytes, tagged with the MSS (Segment.SegSize); the NIC
// cuts it into the segments the engine would have sent, as Linux's
// tcp_gso_segment does: each with the first's header, its sequence number
// advanced, PSH and FIN only on the last. Everything else in the engine
// (windows, congestion control, timers, retransmission, the counters) works
// on those segments, one MSS each, as it does without offload: the run is
// made where they are queued for ip, so a connection sends exactly what it
// sent before, in fewer, larger messages.

// MaxHeaderLen is the largest TCP header, options included.
const MaxHeaderLen = 60

// MaxTSO is the most data bytes a segment sent for the NIC to cut holds:
// an IPv4 packet's most, less its header and the largest TCP header.
const MaxTSO = MaxIPPacket - proto.IPv4HeaderLen - MaxHeaderLen

// tsoRun is the segment of Out that the next segment of the same
// connection may extend: its index and its header as sent. While it is the
// last segment of Out its bytes end the arena: only emit, which queues a
// segment after it, and tsoExtend take bytes from the arena.
type tsoRun struct {
	c    *tcb
	idx  int
	h    Header
	data int // data bytes in it so far
}

// tsoFits reports whether a segment of c with header h and payload may
// start or extend a run: data to a destination on the link, with offload
// on.
func (c *tcb) tsoFits(h *Header, payload []byte) bool {
	return c.s.c.TSOMax > 0 && len(payload) > 0 && h.Flags&(SYN|RST|URG) == 0 && len(h.Opts.SACK) == 0 &&
		!c.s.isLocal(c.remote.Addr())
}

// tsoExtend appends payload, the data of segment h of c, to the run,
// when it continues it: the same connection, the segment just before in
// Out, every segment in the run a whole MSS, the next sequence number, the
// same header but for PSH and FIN, and room under TSOMax. It reports
// whether it did.
func (s *Stack) tsoExtend(c *tcb, h *Header, payload []byte) bool {
	r := &s.tso
	if r.c != c || r.idx != len(s.out)-1 || r.data%c.mss != 0 || r.data+len(payload) > s.c.TSOMax ||
		r.h.Seq.Add(r.data) != h.Seq || !sameButLast(&r.h, h) {
		return false
	}
	seg := &s.out[r.idx]
	n := len(seg.Data)
	if end := len(s.arena); end+len(payload) <= cap(s.arena) {
		s.arena = s.arena[:end+len(payload)] // in place: the run's bytes end the arena
		seg.Data = s.arena[end-n : len(s.arena) : len(s.arena)]
	} else {
		b := s.segBuf(n + len(payload))
		copy(b, seg.Data)
		seg.Data = b
	}
	copy(seg.Data[n:], payload)
	seg.Data[13] |= h.Flags // PSH, FIN: the last segment's
	seg.SegSize = c.mss
	r.data += len(payload)
	s.stats.SegmentsOut++
	return true
}

// tsoStart makes the segment just queued, of c with header h, the run
// that later segments may extend, if it is a whole MSS without PSH or
// FIN; otherwise there is no run.
func (s *Stack) tsoStart(c *tcb, h *Header, data int) {
	if data != c.mss || h.Flags&(PSH|FIN) != 0 {
		s.tso = tsoRun{}
		return
	}
	s.tso = tsoRun{c: c, idx: len(s.out) - 1, h: *h, data: data}
}

// sameButLast reports whether b, a run's next segment, has a's header but
// for its sequence number and the flags only the last segment has.
func sameButLast(a, b *Header) bool {
	return a.SrcPort == b.SrcPort && a.DstPort == b.DstPort && a.Ack == b.Ack && a.Window == b.Window &&
		a.Flags == b.Flags&^(PSH|FIN) && a.Opts.TS == b.Opts.TS && a.Opts.TSVal == b.Opts.TSVal &&
		a.Opts.TSEcr == b.Opts.TSEcr && len(b.Opts.SACK) == 0
}

// checksum fills in seg's TCP checksum.
func (seg *Segment) checksum() {
	binary.BigEndian.PutUint16(seg.Data[16:], 0)
	binary.BigEndian.PutUint16(seg.Data[16:], checksum.Pseudo(proto.TCP, seg.Src, seg.Dst, seg.Data))
}

package tcp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/newtsim/newtsim/servers/proto"
)

// Flags of a TCP header.
const (
	FIN = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

// HeaderLen is the length of a TCP header without options.
const HeaderLen = proto.TCPHeaderLen

// Option kinds (RFC 9293, RFC 7323, RFC 2018).
const (
	optEnd       = 0
	optNOP       = 1
	optMSS       = 2
	optWS        = 3
	optSACKPerm  = 4
	optSACK      = 5
	optTimestamp = 8
)

// MaxWindowShift is the largest window scale RFC 7323 allows.
const MaxWindowShift = 14

// Options are the TCP options newtsim reads and writes.
type Options struct {
	MSS      uint16 // 0: absent
	WS       int8   // window scale shift; -1: absent
	SACKPerm bool   // SACK permitted (SYN only)
	TS       bool   // timestamps present
	TSVal    uint32
	TSEcr    uint32
	SACK     []Block // SACK blocks (at most 4)
}

// Block is a SACK block: the bytes [Start, End) were received.
type Block struct{ Start, End Seq }

// Header is a parsed TCP header.
type Header struct {
	SrcPort, DstPort uint16
	Seq, Ack         Seq
	Flags            uint8
	Window           uint16
	Urgent           uint16
	Opts             Options
}

// Has reports whether all of flags are set.
func (h *Header) Has(flags uint8) bool { return h.Flags&flags == flags }

// errMalformed is what Parse wraps.
var errMalformed = errors.New("tcp: malformed segment")

// Parse reads a segment: its header and its payload (a slice of b). It
// checks the lengths and the options' framing, nothing else.
func Parse(b []byte) (Header, []byte, error) {
	var h Header
	h.Opts.WS = -1
	if len(b) < HeaderLen {
		return h, nil, fmt.Errorf("%w: %d bytes, shorter than a header", errMalformed, len(b))
	}
	h.SrcPort = binary.BigEndian.Uint16(b[0:])
	h.DstPort = binary.BigEndian.Uint16(b[2:])
	h.Seq = Seq(binary.BigEndian.Uint32(b[4:]))
	h.Ack = Seq(binary.BigEndian.Uint32(b[8:]))
	off := int(b[12]>>4) * 4
	h.Flags = b[13]
	h.Window = binary.BigEndian.Uint16(b[14:])
	h.Urgent = binary.BigEndian.Uint16(b[18:])
	if off < HeaderLen || off > len(b) {
		return h, nil, fmt.Errorf("%w: data offset %d of %d bytes", errMalformed, off, len(b))
	}
	if err := parseOptions(&h.Opts, b[HeaderLen:off]); err != nil {
		return h, nil, err
	}
	return h, b[off:], nil
}

func parseOptions(o *Options, b []byte) error {
	for len(b) > 0 {
		kind := b[0]
		if kind == optEnd {
			return nil
		}
		if kind == optNOP {
			b = b[1:]
			continue
		}
		if len(b) < 2 || int(b[1]) < 2 || int(b[1]) > len(b) {
			return fmt.Errorf("%w: option %d overruns the header", errMalformed, kind)
		}
		n := int(b[1])
		v := b[2:n]
		switch kind {
		case optMSS:
			if n == 4 {
				o.MSS = binary.BigEndian.Uint16(v)
			}
		case optWS:
			if n == 3 {
				o.WS = int8(min(v[0], MaxWindowShift)) // RFC 7323 2.3: use 14 for larger
			}
		case optSACKPerm:
			o.SACKPerm = n == 2
		case optTimestamp:
			if n == 10 {
				o.TS = true
				o.TSVal = binary.BigEndian.Uint32(v)
				o.TSEcr = binary.BigEndian.Uint32(v[4:])
			}
		case optSACK:
			if (n-2)%8 == 0 {
				o.SACK = o.SACK[:0]
				for i := 0; i+8 <= len(v) && len(o.SACK) < 4; i += 8 {
					o.SACK = append(o.SACK, Block{Seq(binary.BigEndian.Uint32(v[i:])), Seq(binary.BigEndian.Uint32(v[i+4:]))})
				}
			}
		}
		b = b[n:]
	}
	return nil
}

// optionsLen is the length of o's options when written, padded to 4.
func optionsLen(o *Options, syn bool) int {
	n := 0
	if syn {
		if o.MSS != 0 {
			n += 4
		}
		if o.WS >= 0 {
			n += 4 // NOP + 3
		}
		if o.SACKPerm && !o.TS {
			n += 4 // NOP NOP + 2; with timestamps it shares their padding
		}
	}
	if o.TS {
		n += 12 // NOP NOP + 10, or SACK-permitted + 10
	}
	if len(o.SACK) > 0 {
		n += 4 + 8*len(o.SACK)
	}
	return n
}

// Marshal writes h with its options and payload into b, which must hold
// HeaderLen + options + payload bytes, and returns the segment's length.
// The checksum field is left zero.
func (h *Header) Marshal(b []byte, payload []byte) int {
	syn := h.Flags&SYN != 0
	olen := optionsLen(&h.Opts, syn)
	off := HeaderLen + olen
	binary.BigEndian.PutUint16(b[0:], h.SrcPort)
	binary.BigEndian.PutUint16(b[2:], h.DstPort)
	binary.BigEndian.PutUint32(b[4:], uint32(h.Seq))
	binary.BigEndian.PutUint32(b[8:], uint32(h.Ack))
	b[12] = byte(off/4) << 4
	b[13] = h.Flags
	binary.BigEndian.PutUint16(b[14:], h.Window)
	binary.BigEndian.PutUint16(b[16:], 0)
	binary.BigEndian.PutUint16(b[18:], h.Urgent)
	o := b[HeaderLen:off]
	i := 0
	if syn {
		if h.Opts.MSS != 0 {
			o[i], o[i+1] = optMSS, 4
			binary.BigEndian.PutUint16(o[i+2:], h.Opts.MSS)
			i += 4
		}
		if h.Opts.WS >= 0 {
			o[i], o[i+1], o[i+2], o[i+3] = optNOP, optWS, 3, byte(h.Opts.WS)
			i += 4
		}
		if h.Opts.SACKPerm {
			if h.Opts.TS {
				o[i], o[i+1] = optSACKPerm, 2
				i += 2
			} else {
				o[i], o[i+1], o[i+2], o[i+3] = optNOP, optNOP, optSACKPerm, 2
				i += 4
			}
		}
	}
	if h.Opts.TS {
		if !(syn && h.Opts.SACKPerm) {
			o[i], o[i+1] = optNOP, optNOP
			i += 2
		}
		o[i], o[i+1] = optTimestamp, 10
		binary.BigEndian.PutUint32(o[i+2:], h.Opts.TSVal)
		binary.BigEndian.PutUint32(o[i+6:], h.Opts.TSEcr)
		i += 10
	}
	if len(h.Opts.SACK) > 0 {
		o[i], o[i+1], o[i+2], o[i+3] = optNOP, optNOP, optSACK, byte(2+8*len(h.Opts.SACK))
		i += 4
		for _, s := range h.Opts.SACK {
			binary.BigEndian.PutUint32(o[i:], uint32(s.Start))
			binary.BigEndian.PutUint32(o[i+4:], uint32(s.End))
			i += 8
		}
	}
	clear(o[i:]) // b may hold an earlier segment's bytes
	return off + copy(b[off:], payload)
}

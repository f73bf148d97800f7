package ipc

// BenchRequest is a benchmark's request to a role that measures (Bench):
// what the role does with Count depends on the benchmark (the reflector
// answers that many pings on a shared cache line), and it answers with a
// Pong when it is done.
type BenchRequest struct {
	Count uint64
}

// Encode writes b into m: its type and arguments; the header is the
// sender's to set.
func (b BenchRequest) Encode(m *Message) {
	m.Type, m.Flags = Bench, 0
	m.Arg = [NumArgs]uint64{b.Count}
}

// Decode reads b from m.
func (b *BenchRequest) Decode(m *Message) { b.Count = m.Arg[0] }

package tcp

// State is a connection state of RFC 9293 section 3.3.2. The zero State is
// Closed.
type State uint8

// Connection states.
const (
	Closed State = iota
	Listen
	SynSent
	SynReceived
	Established
	FinWait1
	FinWait2
	CloseWait
	Closing
	LastAck
	TimeWait
	numStates
)

var stateNames = [numStates]string{"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED",
	"FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"}

// String names the state as the RFC writes it.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "INVALID"
}

// States lists every state, for metrics.
func States() []State {
	s := make([]State, numStates)
	for i := range s {
		s[i] = State(i)
	}
	return s
}

// synchronized reports whether the state is past the handshake.
func (s State) synchronized() bool { return s >= Established }

// canSend reports whether the user may still queue data.
func (s State) canSend() bool { return s == Established || s == CloseWait }

// canReceive reports whether segment text is still accepted.
func (s State) canReceive() bool {
	return s == Established || s == FinWait1 || s == FinWait2 || s == SynReceived
}

package loadgen

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// kind is a kind of error, as the report counts them.
type kind int

const (
	kindConnect  kind = iota // connecting failed, other than refused
	kindRefused              // the connection was refused
	kindReset                // the connection was reset or broken
	kindTimeout              // a request or connect took longer than Config.Timeout
	kindStatus               // a response's status was not 2xx or 3xx
	kindProtocol             // a response was not valid HTTP/1.1 or had no length
	kindEOF                  // the server closed the connection before a response ended
	numKinds
)

var kindNames = [numKinds]string{"connect", "refused", "reset", "timeout", "status", "protocol", "eof"}

func (k kind) String() string { return kindNames[k] }

// failure is an error that ends one connection and fails the requests on
// it; the run goes on. Errors of other types end the run.
type failure struct {
	kind kind
	err  error
}

func (f *failure) Error() string { return f.kind.String() + ": " + f.err.Error() }

func (f *failure) Unwrap() error { return f.err }

// connectFailure classifies an error of connect(2), whether returned at once
// or read later as SO_ERROR. Errors the server or the network cause fail the
// connection; others (a bad address, a bug) end the run.
func connectFailure(target fmt.Stringer, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("loadgen: connect to %s: %w", target, err)
	}
	switch errno {
	case unix.ECONNREFUSED:
		return &failure{kindRefused, err}
	case unix.ETIMEDOUT, unix.ENETUNREACH, unix.EHOSTUNREACH, unix.ENETDOWN, unix.EHOSTDOWN,
		unix.ECONNRESET, unix.ECONNABORTED, unix.EADDRNOTAVAIL, unix.EAGAIN:
		return &failure{kindConnect, err}
	}
	return fmt.Errorf("loadgen: connect to %s: %w", target, err)
}

// ioFailure classifies an error of sending (op "write") or receiving ("read")
// on a connected socket.
func ioFailure(op string, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("loadgen: %s: %w", op, err)
	}
	switch errno {
	case unix.ECONNRESET, unix.EPIPE, unix.ECONNABORTED, unix.ENOTCONN,
		unix.ENETUNREACH, unix.EHOSTUNREACH, unix.ENETDOWN, unix.EHOSTDOWN:
		return &failure{kindReset, fmt.Errorf("%s: %w", op, err)}
	case unix.ETIMEDOUT:
		return &failure{kindTimeout, fmt.Errorf("%s: %w", op, err)}
	}
	return fmt.Errorf("loadgen: %s: %w", op, err)
}

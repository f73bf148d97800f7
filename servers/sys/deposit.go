package sys

import (
	"fmt"
	"os"

	"github.com/newtsim/newtsim/ipc"
	"github.com/newtsim/newtsim/ipc/kcall"
)

// Descriptors handed from a server to an application through the kernel
// (ipc.Deposit, ipc.Collect): tcp's exposed socket regions, sealed memfds
// that nobody else can open (docs/EXPOSED.md).

// Deposit hands the kernel f for the application app to collect under id,
// and waits for the kernel's answer: once it returns nil, app's Collect
// finds it. f stays the caller's (the kernel has its own copy).
func (s *Server) Deposit(app ipc.Endpoint, id uint64, f *os.File) error {
	var m ipc.Message
	kcall.Deposit{App: app, ID: id}.Encode(&m)
	if _, _, err := s.K.CallFile(&m, f); err != nil {
		return fmt.Errorf("sys: deposit %d for %s: %w", id, app, err)
	}
	return nil
}

// Collect takes from the kernel the descriptor the named peer deposited
// for this process under id. The file is the caller's to close.
func (s *Server) Collect(peer string, id uint64) (*os.File, error) {
	ep, ok := s.peers[peer]
	if !ok {
		return nil, fmt.Errorf("sys: collect %d: %s is not a peer", id, peer)
	}
	var m ipc.Message
	kcall.Collect{From: ep, ID: id}.Encode(&m)
	_, f, err := s.K.CallFile(&m, nil)
	if err != nil {
		return nil, fmt.Errorf("sys: collect %d from %s: %w", id, peer, err)
	}
	if f == nil {
		return nil, fmt.Errorf("sys: collect %d from %s: the kernel's answer carried no descriptor", id, peer)
	}
	return f, nil
}

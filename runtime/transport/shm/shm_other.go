//go:build !linux

package shm

import (
	"context"
	"errors"
	"fmt"

	"github.com/gorun-hpc/gorun/runtime/transport"
)

// Endpoint is a rank's shared-memory endpoint; this platform has none.
type Endpoint struct{}

var errUnsupported = fmt.Errorf("shm: shared-memory transport needs Linux: %w", errors.ErrUnsupported)

// Supported reports whether this platform has the transport: not this one.
const Supported = false

// Create fails: the transport needs Linux (futexes, process_vm_readv).
func Create(cfg Config) (*Endpoint, error) { return nil, errUnsupported }

// Attach fails on this platform.
func (e *Endpoint) Attach(ctx context.Context) error { return errUnsupported }

// Unlink fails on this platform.
func (e *Endpoint) Unlink() error { return errUnsupported }

// Send fails on this platform.
func (e *Endpoint) Send(h transport.Header, payload []byte) error { return errUnsupported }

// SendHeader fails on this platform.
func (e *Endpoint) SendHeader(h *transport.Header, payload []byte) error { return errUnsupported }

// Outcomes of Take.
const (
	Took = iota
	TakeEmpty
	TakeNo
)

// Take never takes a frame on this platform.
func (e *Endpoint) Take(src int, ctx uint32, tag int32, typ uint8, buf []byte, h *transport.Header, spin func() (more, yield bool)) int {
	return TakeNo
}

// Poll delivers nothing on this platform.
func (e *Endpoint) Poll() bool { return false }

// PollAll does nothing on this platform.
func (e *Endpoint) PollAll() bool { return false }

// Close does nothing on this platform.
func (e *Endpoint) Close() error { return nil }
